//! The real `scopegate` binary as a child process: start it with a config,
//! learn its addresses from its own JSON log, wait until the admin listener
//! answers `/healthz`, read its memory high-water mark, signal it.
//!
//! Children run with every `SCOPEGATE_*` variable and `RUST_LOG` removed from
//! their environment, so the test runner's environment cannot leak in; tests
//! add exactly the variables they mean to.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// The binary cargo built for this test run.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_scopegate")
}

/// A `scopegate` command with a clean environment (no `SCOPEGATE_*`, no `RUST_LOG`).
pub fn command() -> Command {
    let mut cmd = Command::new(bin());
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("SCOPEGATE_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// Runs `scopegate <args>` with extra environment variables and waits for it.
pub fn run_to_end(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = command();
    cmd.args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("scopegate runs")
}

/// A directory holding a config file; removed when dropped.
pub struct ConfigFile {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl ConfigFile {
    pub fn new(toml: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("scopegate.toml");
        std::fs::write(&path, toml).expect("write config");
        Self { dir, path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn path_str(&self) -> &str {
        self.path.to_str().expect("temp paths are UTF-8")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// A running `scopegate run` process. Killed (by its own pid) when dropped.
pub struct Proc {
    child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    stderr: Arc<Mutex<Vec<String>>>,
    _config: ConfigFile,
}

/// How to start a [`Proc`].
#[derive(Default)]
pub struct Launch<'a> {
    pub env: &'a [(&'a str, &'a str)],
    /// Extra arguments after `run --config F --log-format json`.
    pub args: &'a [&'a str],
}

impl Proc {
    /// `scopegate run --config <toml> --log-format json`; the config must have
    /// an `[admin]` listener. Both listeners may use port 0: the addresses are
    /// read from the "scopegate listening" log line.
    pub async fn start(toml: &str) -> Self {
        Self::launch(toml, Launch::default()).await
    }

    pub async fn launch(toml: &str, launch: Launch<'_>) -> Self {
        let config = ConfigFile::new(toml);
        let mut cmd = command();
        cmd.args(["run", "--config", config.path_str(), "--log-format", "json"])
            .args(launch.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in launch.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn scopegate");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = tokio::sync::oneshot::channel::<(SocketAddr, SocketAddr)>();
        let pipe = child.stderr.take().expect("piped stderr");
        let lines = Arc::clone(&stderr);
        // Drains stderr for the whole life of the child: a full pipe would block its logging.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if tx.is_some() {
                    if let Some(addrs) = listening_addrs(&line) {
                        let _ = tx.take().unwrap().send(addrs);
                    }
                }
                lines.lock().unwrap().push(line);
            }
        });
        let (addr, admin) = match tokio::time::timeout(Duration::from_secs(10), rx).await {
            Ok(Ok(a)) => a,
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "scopegate did not report its listeners; stderr:\n{}",
                    stderr.lock().unwrap().join("\n")
                );
            }
        };
        let proc = Self {
            child,
            addr,
            admin,
            stderr,
            _config: config,
        };
        proc.wait_healthy(Duration::from_secs(10)).await;
        proc
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every stderr line so far.
    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// Polls the admin `/healthz` until it answers 200.
    pub async fn wait_healthy(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if admin_status(self.admin, "/healthz").await == Some(200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "scopegate not healthy within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The status `/readyz` answers with, if the admin listener answers at all.
    pub async fn readyz(&self) -> Option<u16> {
        admin_status(self.admin, "/readyz").await
    }

    /// Peak resident set size so far (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> u64 {
        proc_status_kib(self.pid(), "VmHWM").expect("VmHWM in /proc/<pid>/status") * 1024
    }

    /// Sends a signal (`"TERM"`, `"INT"`) to this child with `kill(1)`.
    /// The configuration file the process was started with.
    #[allow(dead_code)]
    pub fn config_path(&self) -> &Path {
        self._config.path()
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([format!("-{sig}"), self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} {} failed", self.pid());
    }

    /// Waits for the child to exit, polling; `None` if it is still running after `within`.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The proxy and admin addresses of a JSON "scopegate listening" log line.
fn listening_addrs(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    if v["message"] != "scopegate listening" {
        return None;
    }
    let addr = v["addr"].as_str()?.parse().ok()?;
    // `admin` is logged with `?`: "Some(127.0.0.1:9090)".
    let admin = v["admin"]
        .as_str()?
        .strip_prefix("Some(")?
        .strip_suffix(')')?
        .parse()
        .ok()?;
    Some((addr, admin))
}

/// A numeric `kB` field of `/proc/<pid>/status`, such as `VmHWM` or `VmRSS`.
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

/// One `GET` on its own connection; the status, or `None` if the connection failed.
pub async fn admin_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut s = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr))
        .await
        .ok()?
        .ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut out))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&out);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}
