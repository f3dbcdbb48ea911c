//! Logging setup. Log lines never carry credentials: the access record holds
//! the normalized path (no query string), the route and the outcome.
//!
//! Logging never holds up or fails a request: lines go through a bounded
//! queue to a thread of their own that writes them to stderr. When stderr
//! cannot take them (a pipe nobody reads, a full disk: `ENOSPC`), lines are
//! dropped, never waited for, and once it takes lines again one warning says
//! how many were lost.

use std::{
    io::Write,
    sync::{
        atomic::{AtomicU64, Ordering},
        mpsc, Arc,
    },
    time::{Duration, Instant},
};

use tracing_subscriber::{fmt, fmt::MakeWriter, EnvFilter};

use crate::config::LogFormat;

/// Lines waiting to be written, at most; past it new lines are dropped.
const QUEUE_LINES: usize = 16_384;
/// How long stopping waits for the queued lines to be written.
const FLUSH_WAIT: Duration = Duration::from_secs(1);

enum Msg {
    Line(Vec<u8>),
    /// Everything queued before this is written (or given up on).
    Flush(mpsc::SyncSender<()>),
}

/// Hands each formatted line to the writer thread.
#[derive(Clone)]
struct Queue {
    tx: mpsc::SyncSender<Msg>,
    dropped: Arc<AtomicU64>,
}

impl std::io::Write for Queue {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        // The formatter writes each event in one call.
        if self.tx.try_send(Msg::Line(line.to_vec())).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        Ok(line.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Queue {
    type Writer = Queue;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Writes queued lines to `out`. A line `out` refuses is counted as
/// dropped; the count is reported (through the queue, so in the configured
/// format) after the next line `out` takes.
fn write_lines(rx: mpsc::Receiver<Msg>, mut out: impl Write, dropped: Arc<AtomicU64>) {
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Line(line) => {
                if out.write_all(&line).is_err() {
                    dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let lost = dropped.swap(0, Ordering::Relaxed);
                if lost > 0 {
                    tracing::warn!(
                        dropped = lost,
                        "log lines were dropped: the log output was full or not read"
                    );
                }
            }
            Msg::Flush(done) => {
                let _ = out.flush();
                let _ = done.try_send(());
            }
        }
    }
}

/// Keeps the log output of a running scopegate; dropping it writes what is
/// still queued (waiting at most a second for a stuck output).
#[must_use = "dropping the guard at once loses queued log lines at exit"]
pub struct LogGuard(Option<Queue>);

impl Drop for LogGuard {
    fn drop(&mut self) {
        let Some(q) = &self.0 else { return };
        let deadline = Instant::now() + FLUSH_WAIT;
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        let mut msg = Msg::Flush(done_tx);
        loop {
            match q.tx.try_send(msg) {
                Ok(()) => break,
                Err(mpsc::TrySendError::Full(m)) if Instant::now() < deadline => {
                    msg = m;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return,
            }
        }
        let _ = done_rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    }
}

/// Installs the global subscriber. `RUST_LOG`, when set, overrides `level`.
/// Logs go to stderr so that command output (`check`) stays clean on stdout.
pub fn init(format: LogFormat, level: &str) -> LogGuard {
    init_with(format, level, std::io::stderr())
}

fn init_with(format: LogFormat, level: &str, out: impl Write + Send + 'static) -> LogGuard {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (tx, rx) = mpsc::sync_channel(QUEUE_LINES);
    let queue = Queue {
        tx,
        dropped: Arc::new(AtomicU64::new(0)),
    };
    let dropped = Arc::clone(&queue.dropped);
    let spawned = std::thread::Builder::new()
        .name("scopegate-log".into())
        .spawn(move || write_lines(rx, out, dropped));
    if spawned.is_err() {
        return LogGuard(None);
    }
    // Internal errors would be reported with `eprintln!`, which panics when
    // stderr fails; the queue never fails anyway.
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(queue.clone())
        .log_internal_errors(false);
    let installed = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Human => builder.try_init(),
    };
    LogGuard(installed.is_ok().then_some(queue))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes `room` bytes, then fails every write (a disk that fills up).
    struct Filling {
        room: usize,
        taken: Arc<std::sync::Mutex<Vec<u8>>>,
    }

    impl Write for Filling {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let mut t = self.taken.lock().unwrap();
            if t.len() + b.len() > self.room {
                return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
            }
            t.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_failing_output_drops_lines_and_says_how_many_once_it_works() {
        let (tx, rx) = mpsc::sync_channel(16);
        let dropped = Arc::new(AtomicU64::new(0));
        let taken = Arc::new(std::sync::Mutex::new(Vec::new()));
        let out = Filling {
            room: 10,
            taken: Arc::clone(&taken),
        };
        for line in ["0123456789", "lost", "lost too"] {
            tx.send(Msg::Line(line.as_bytes().to_vec())).unwrap();
        }
        drop(tx);
        write_lines(rx, out, Arc::clone(&dropped));
        assert_eq!(&*taken.lock().unwrap(), b"0123456789");
        assert_eq!(dropped.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_full_queue_drops_without_blocking() {
        let (tx, _rx) = mpsc::sync_channel(2);
        let mut q = Queue {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        };
        let started = Instant::now();
        for _ in 0..1000 {
            assert_eq!(q.write(b"line\n").unwrap(), 5);
        }
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(q.dropped.load(Ordering::Relaxed), 998);
    }
}
