//! Logging setup. Log lines never carry credentials: the access record holds
//! the normalized path (no query string), the route and the outcome.
//!
//! Logging never holds up or fails a request: a formatted line is appended to
//! a shared buffer, and a thread of its own writes the buffer to stderr in
//! batches (at most every [`BATCH_WINDOW`], at once for warnings and errors
//! or when [`HIGH_WATER`] bytes wait). One `write` and one wake-up per batch
//! rather than per line is what keeps the access record cheap at tens of
//! thousands of requests a second. When stderr cannot take lines (a pipe
//! nobody reads, a full disk: `ENOSPC`), lines are dropped, never waited
//! for, and once it takes lines again one warning says how many were lost.

use std::{
    io::Write,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError,
    },
    time::{Duration, Instant},
};

use tracing::{Level, Metadata};
use tracing_subscriber::{fmt, fmt::MakeWriter, EnvFilter};

use crate::config::LogFormat;

mod access;
pub use access::Access;
use access::Style;

/// Bytes waiting to be written, at most; past it new lines are dropped.
const BUFFER_CAP: usize = 4 << 20;
/// This many bytes waiting start a batch without waiting for the window.
const HIGH_WATER: usize = 64 << 10;
/// How long a line may wait for others to share its write.
const BATCH_WINDOW: Duration = Duration::from_millis(10);
/// How long stopping waits for the waiting lines to be written.
const FLUSH_WAIT: Duration = Duration::from_secs(1);

/// What the request threads and the writer thread share.
struct Shared {
    state: Mutex<State>,
    /// The writer waits on it for lines or a flush request.
    wake: Condvar,
    /// Flush requesters wait on it for the writer to catch up.
    flushed: Condvar,
    /// Lines lost since the last report, for either reason.
    dropped: AtomicU64,
    cap: usize,
}

#[derive(Default)]
struct State {
    /// Whole lines, waiting.
    buf: Vec<u8>,
    /// A warning or error waits: write without the batch window.
    urgent: bool,
    /// Flush requests made, and the last one the writer has answered.
    flush_asked: u64,
    flush_done: u64,
}

impl Shared {
    fn new(cap: usize) -> Self {
        Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            flushed: Condvar::new(),
            dropped: AtomicU64::new(0),
            cap,
        }
    }

    /// The lock survives a panic elsewhere: the buffer only ever holds
    /// whole lines, so there is nothing half-done to protect.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, line: &[u8], urgent: bool) {
        let mut s = self.lock();
        let before = s.buf.len();
        if before + line.len() > self.cap {
            drop(s);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        s.buf.extend_from_slice(line);
        s.urgent |= urgent;
        // The writer sleeps on an empty buffer, or waits out the window
        // after the first line: only those two moments need a wake-up.
        let wake = urgent || before == 0 || (before < HIGH_WATER && s.buf.len() >= HIGH_WATER);
        drop(s);
        if wake {
            self.wake.notify_one();
        }
    }

    /// Asks the writer to write everything pushed so far and flush `out`;
    /// true once it has, false when `within` passed first.
    fn flush(&self, within: Duration) -> bool {
        let mut s = self.lock();
        s.flush_asked += 1;
        let ticket = s.flush_asked;
        self.wake.notify_one();
        let (_s, waited) = self
            .flushed
            .wait_timeout_while(s, within, |s| s.flush_done < ticket)
            .unwrap_or_else(PoisonError::into_inner);
        !waited.timed_out()
    }

    /// Waits for lines (and the batch window) and takes them into `batch`,
    /// which must be empty; returns the flush request the batch answers.
    fn take(&self, batch: &mut Vec<u8>, answered: u64) -> u64 {
        let s = self.lock();
        let mut s = self
            .wake
            .wait_while(s, |s| s.buf.is_empty() && s.flush_asked == answered)
            .unwrap_or_else(PoisonError::into_inner);
        let deadline = Instant::now() + BATCH_WINDOW;
        loop {
            if s.urgent || s.flush_asked != answered || s.buf.len() >= HIGH_WATER {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            s = self
                .wake
                .wait_timeout(s, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        std::mem::swap(&mut s.buf, batch);
        s.urgent = false;
        s.flush_asked
    }

    fn answer(&self, ticket: u64) {
        self.lock().flush_done = ticket;
        self.flushed.notify_all();
    }
}

/// The writer thread's loop: batches from `shared` to `out`. Lines `out`
/// refuses are counted as dropped; the count is reported (through the
/// subscriber, so in the configured format) after the next batch `out`
/// takes whole.
fn write_lines(shared: &Shared, mut out: impl Write) {
    let mut batch = Vec::new();
    let mut answered = 0;
    loop {
        let ticket = shared.take(&mut batch, answered);
        let lost = unwritten_lines(&mut out, &batch);
        // A burst's buffer is not kept for ever.
        if batch.capacity() > 4 * HIGH_WATER {
            batch = Vec::new();
        } else {
            batch.clear();
        }
        if lost > 0 {
            shared.dropped.fetch_add(lost, Ordering::Relaxed);
        } else {
            let lost = shared.dropped.swap(0, Ordering::Relaxed);
            if lost > 0 {
                tracing::warn!(
                    dropped = lost,
                    "log lines were dropped: the log output was full or not read"
                );
            }
        }
        // Answered last, so a flusher sees the drop count settled.
        if ticket != answered {
            let _ = out.flush();
            shared.answer(ticket);
            answered = ticket;
        }
    }
}

/// Writes `batch` to `out`; how many of its lines did not get there whole
/// (0 when all did).
fn unwritten_lines(out: &mut impl Write, batch: &[u8]) -> u64 {
    let mut rest = batch;
    while !rest.is_empty() {
        match out.write(rest) {
            Ok(0) => break,
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    // A line cut short counts as lost: its start got out, its end did not.
    memchr::memchr_iter(b'\n', rest).count() as u64
}

/// The subscriber's writer: `make_writer` hands out a borrow, so an event
/// costs no allocation and no reference count of its own.
#[derive(Clone)]
struct Queue(Arc<Shared>);

/// One event's writer; the formatter writes the whole line in one call.
struct Line<'a> {
    shared: &'a Shared,
    urgent: bool,
}

impl Write for Line<'_> {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        self.shared.push(line, self.urgent);
        Ok(line.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Queue {
    type Writer = Line<'a>;
    fn make_writer(&'a self) -> Line<'a> {
        Line {
            shared: &self.0,
            urgent: false,
        }
    }
    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line<'a> {
        Line {
            shared: &self.0,
            urgent: *meta.level() <= Level::WARN,
        }
    }
}

/// Where access records go, once [`init`] has installed the log.
struct AccessSink {
    shared: Arc<Shared>,
    style: Style,
}

static ACCESS: OnceLock<AccessSink> = OnceLock::new();

/// Whether access records are written: the log is installed and its filter
/// (`log.level`, `RUST_LOG`) passes `scopegate::access` at `info`.
pub fn access_on() -> bool {
    ACCESS.get().is_some() && tracing::enabled!(target: access::TARGET, Level::INFO)
}

/// Writes one access record; for when [`access_on`] says so.
pub fn access(record: &Access<'_>) {
    thread_local! {
        static LINE: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(512));
    }
    let Some(sink) = ACCESS.get() else { return };
    let _ = LINE.try_with(|line| {
        let mut line = line.borrow_mut();
        line.clear();
        record.write_line(&mut line, sink.style, std::time::SystemTime::now());
        sink.shared.push(&line, false);
        // An odd, huge record does not keep its buffer for the thread's life.
        if line.capacity() > 16 << 10 {
            *line = Vec::with_capacity(512);
        }
    });
}

/// Keeps the log output of a running scopegate; dropping it writes what is
/// still waiting (for at most a second, for a stuck output).
#[must_use = "dropping the guard at once loses waiting log lines at exit"]
pub struct LogGuard(Option<Queue>);

impl Drop for LogGuard {
    fn drop(&mut self) {
        if let Some(q) = &self.0 {
            q.0.flush(FLUSH_WAIT);
        }
    }
}

/// Installs the global subscriber. `RUST_LOG`, when set, overrides `level`.
/// Logs go to stderr so that command output (`check`) stays clean on stdout.
/// Human lines are coloured only on a terminal (and without `NO_COLOR`): a
/// file, a pipe or journald gets plain text.
pub fn init(format: LogFormat, level: &str) -> LogGuard {
    use std::io::IsTerminal as _;
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    init_with(format, level, colour, std::io::stderr())
}

fn init_with(
    format: LogFormat,
    level: &str,
    colour: bool,
    out: impl Write + Send + 'static,
) -> LogGuard {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let queue = Queue(Arc::new(Shared::new(BUFFER_CAP)));
    let shared = Arc::clone(&queue.0);
    let spawned = std::thread::Builder::new()
        .name("scopegate-log".into())
        .spawn(move || write_lines(&shared, out));
    if spawned.is_err() {
        return LogGuard(None);
    }
    // Internal errors would be reported with `eprintln!`, which panics when
    // stderr fails; the queue never fails anyway.
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(queue.clone())
        .with_ansi(colour)
        .log_internal_errors(false);
    let installed = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Human => builder.try_init(),
    };
    if installed.is_err() {
        return LogGuard(None);
    }
    let style = match format {
        LogFormat::Json => Style::Json,
        LogFormat::Human if colour => Style::Colour,
        LogFormat::Human => Style::Plain,
    };
    let _ = ACCESS.set(AccessSink {
        shared: Arc::clone(&queue.0),
        style,
    });
    LogGuard(Some(queue))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Takes what fits in `room` bytes and fails once full (a disk that
    /// fills up: a short write, then `ENOSPC`).
    #[derive(Clone, Default)]
    struct Filling {
        room: Arc<AtomicUsize>,
        taken: Arc<Mutex<Vec<u8>>>,
        writes: Arc<AtomicUsize>,
    }

    impl Write for Filling {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.writes.fetch_add(1, Ordering::Relaxed);
            let mut t = self.taken.lock().unwrap();
            let fit = b.len().min(self.room.load(Ordering::Relaxed) - t.len());
            if fit == 0 {
                return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
            }
            t.extend_from_slice(&b[..fit]);
            Ok(fit)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn writer(room: usize) -> (Arc<Shared>, Filling) {
        let shared = Arc::new(Shared::new(BUFFER_CAP));
        let out = Filling::default();
        out.room.store(room, Ordering::Relaxed);
        let (s, o) = (Arc::clone(&shared), out.clone());
        std::thread::spawn(move || write_lines(&s, o));
        (shared, out)
    }

    #[test]
    fn a_failing_output_drops_lines_and_counts_them_until_it_works_again() {
        let (shared, out) = writer(10);
        for line in ["012345678\n", "lost\n", "lost too\n"] {
            shared.push(line.as_bytes(), false);
        }
        assert!(shared.flush(Duration::from_secs(10)));
        assert_eq!(&*out.taken.lock().unwrap(), b"012345678\n");
        assert_eq!(shared.dropped.load(Ordering::Relaxed), 2);

        // Room again: the next batch goes out whole and the count is
        // reported (here to no subscriber) and reset.
        out.room.store(1000, Ordering::Relaxed);
        shared.push(b"back\n", false);
        assert!(shared.flush(Duration::from_secs(10)));
        assert_eq!(&*out.taken.lock().unwrap(), b"012345678\nback\n");
        assert_eq!(shared.dropped.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_line_cut_short_counts_as_lost() {
        let (shared, out) = writer(12);
        shared.push(b"012345678\n", false);
        shared.push(b"cut\n", false);
        assert!(shared.flush(Duration::from_secs(10)));
        assert_eq!(&*out.taken.lock().unwrap(), b"012345678\ncu");
        assert_eq!(shared.dropped.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn lines_share_writes() {
        let (shared, out) = writer(1 << 20);
        for _ in 0..1000 {
            shared.push(b"an access record\n", false);
        }
        assert!(shared.flush(Duration::from_secs(10)));
        assert_eq!(out.taken.lock().unwrap().len(), 17_000);
        // One batch in the usual case; far fewer than one write per line
        // even on a machine busy enough to stretch the window.
        let writes = out.writes.load(Ordering::Relaxed);
        assert!(writes < 100, "{writes} writes for 1000 lines");
    }

    #[test]
    fn a_full_buffer_drops_without_blocking() {
        // No writer at all: a push that waited would hang here.
        let shared = Shared::new(10);
        let mut line = Line {
            shared: &shared,
            urgent: false,
        };
        for _ in 0..1000 {
            assert_eq!(line.write(b"line\n").unwrap(), 5);
        }
        assert_eq!(shared.lock().buf, b"line\nline\n");
        assert_eq!(shared.dropped.load(Ordering::Relaxed), 998);
    }

    #[test]
    fn flushing_a_stuck_output_gives_up() {
        struct Stuck;
        impl Write for Stuck {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                std::thread::park();
                Ok(0)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let shared = Arc::new(Shared::new(BUFFER_CAP));
        let s = Arc::clone(&shared);
        std::thread::spawn(move || write_lines(&s, Stuck));
        shared.push(b"never written\n", true);
        assert!(!shared.flush(Duration::from_millis(50)));
        // Meanwhile lines are still taken (and dropped only past the cap).
        shared.push(b"still taken\n", false);
        assert_eq!(shared.dropped.load(Ordering::Relaxed), 0);
    }
}
