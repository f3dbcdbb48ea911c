//! The real binary with a log output that fails or stops: stdout and stderr
//! on `/dev/full` (every write is `ENOSPC`), and stderr on a pipe nobody
//! reads (full after 64 KiB). Logging at `trace` must neither stop nor slow
//! the request path: every proxied request reaches the upstream, and
//! `SIGTERM` still ends the process cleanly.

mod common;

use std::{
    net::{SocketAddr, TcpListener},
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use common::{process::*, *};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A config on fixed free ports (the log, where the test would read them
/// from, is what fails here).
fn gate_config(upstream: SocketAddr) -> (String, SocketAddr, SocketAddr) {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let toml = config(upstream, PUBLIC_ROUTES)
        .replacen("127.0.0.1:0", &addr.to_string(), 1)
        .replacen("127.0.0.1:0", &admin.to_string(), 1);
    (toml, addr, admin)
}

async fn wait_healthy(child: &mut Child, admin: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while admin_status(admin, "/healthz").await != Some(200) {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("scopegate exited before serving: {status}");
        }
        assert!(Instant::now() < deadline, "scopegate not healthy in 10s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `n` proxied GETs, one after another, each within 5 s; the slowest.
async fn serve(addr: SocketAddr, n: usize) -> Duration {
    let mut slowest = Duration::ZERO;
    for i in 0..n {
        let started = Instant::now();
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            get(&format!("http://{addr}/v2/bookings?i={i}")),
        )
        .await
        .unwrap_or_else(|_| panic!("request {i} got no answer in 5 s"));
        assert_eq!(r.status, 200, "request {i}");
        slowest = slowest.max(started.elapsed());
    }
    slowest
}

fn sigterm(child: &Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

async fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("scopegate did not stop within {within:?} of SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_on_a_full_disk_are_dropped_and_requests_are_served() {
    let up = Upstream::start(Behavior::Ok).await;
    let (toml, addr, admin) = gate_config(up.addr);
    let file = ConfigFile::new(&toml);
    let full = || {
        Stdio::from(
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap(),
        )
    };
    for level in ["info", "trace"] {
        let before = up.count();
        let mut child = command()
            .args(["run", "--config", file.path_str(), "--log-format", "json"])
            .env("RUST_LOG", level)
            .stdin(Stdio::null())
            .stdout(full())
            .stderr(full())
            .spawn()
            .unwrap();
        wait_healthy(&mut child, admin).await;
        let slowest = serve(addr, 200).await;
        assert_eq!(up.count() - before, 200, "{level}: every request forwarded");
        assert!(
            child.try_wait().unwrap().is_none(),
            "{level}: still running"
        );
        sigterm(&child);
        let status = wait_exit(&mut child, Duration::from_secs(10)).await;
        assert!(status.success(), "{level}: exit {status}");
        eprintln!("/dev/full at {level}: 200 requests served, slowest {slowest:?}, clean exit");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_pipe_nobody_reads_does_not_hold_up_requests() {
    let up = Upstream::start(Behavior::Ok).await;
    let (toml, addr, admin) = gate_config(up.addr);
    let file = ConfigFile::new(&toml);
    let (mut reader, writer) = std::io::pipe().unwrap();
    let mut cmd = command();
    cmd.args(["run", "--config", file.path_str(), "--log-format", "json"])
        .env("RUST_LOG", "trace")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(writer);
    let mut child = cmd.spawn().unwrap();
    drop(cmd); // our copy of the write end
    wait_healthy(&mut child, admin).await;
    // Each request logs a few KiB at trace: the 64 KiB pipe is full after
    // a few dozen; 500 go well past it.
    let slowest = serve(addr, 500).await;
    assert_eq!(up.count(), 500);
    assert!(slowest < Duration::from_secs(2), "slowest {slowest:?}");
    assert_eq!(admin_status(admin, "/healthz").await, Some(200));
    sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(10)).await;
    assert!(status.success(), "exit {status}");
    // What did get through is whole lines of the configured format.
    let mut logged = Vec::new();
    std::io::Read::read_to_end(&mut reader, &mut logged).unwrap();
    let text = String::from_utf8_lossy(&logged);
    assert!(
        text.lines().next().is_some_and(|l| l.starts_with('{')),
        "{}",
        &text[..text.len().min(300)]
    );
    eprintln!(
        "unread pipe at trace: 500 requests served, slowest {slowest:?}, {} KiB logged, clean exit",
        logged.len() / 1024
    );
}

/// Runs scopegate with human logs to a file under `RUST_LOG=filter`, serves
/// three proxied requests, stops it; the log.
async fn human_log(filter: &str) -> String {
    let up = Upstream::start(Behavior::Ok).await;
    let (toml, addr, admin) = gate_config(up.addr);
    let file = ConfigFile::new(&toml);
    let log_path = file.dir().join("stderr.log");
    let mut child = command()
        .args(["run", "--config", file.path_str(), "--log-format", "human"])
        .env("RUST_LOG", filter)
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    wait_healthy(&mut child, admin).await;
    serve(addr, 3).await;
    sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(10)).await;
    assert!(status.success(), "exit {status}");
    std::fs::read_to_string(&log_path).unwrap()
}

/// Human logs in a file are plain text: no colour codes (they are for a
/// terminal), and the access record keeps its documented shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn human_logs_in_a_file_are_plain_text() {
    let log = human_log("info").await;
    assert!(!log.contains('\x1b'), "colour codes in a log file:\n{log}");
    let access: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" scopegate::access: "))
        .collect();
    assert_eq!(access.len(), 3, "{log}");
    for line in access {
        // 2026-12-07T05:25:51.969938Z  INFO scopegate::access: request_id="…" peer=…
        let (time, rest) = line.split_once("  INFO scopegate::access: ").expect(line);
        assert!(
            time.len() == 27 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
            "{line}"
        );
        assert!(rest.starts_with("request_id=\""), "{line}");
        assert!(
            rest.contains(
                " peer=127.0.0.1 method=GET path=\"/v2/bookings\" route=\"v2\" status=200 \
                 scheme=\"public\" outcome=\"forwarded\" cause=\"-\" origin=\"-\" app=\"-\" \
                 business=\"-\" subject=\"-\" upstream_status=200 verify_micros="
            ),
            "{line}"
        );
        assert!(rest.contains(" upstream_micros="), "{line}");
        let micros = rest.rsplit_once(" micros=").expect(line).1;
        assert!(micros.parse::<u64>().is_ok(), "{line}");
    }
}

/// The access record obeys the log filter like any other target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_record_can_be_filtered_out() {
    let log = human_log("info,scopegate::access=off").await;
    assert!(log.contains("scopegate listening"), "{log}");
    assert!(!log.contains("scopegate::access"), "{log}");
}
