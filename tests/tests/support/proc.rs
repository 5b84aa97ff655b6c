//! Third-party programs: is a peer installed, run a client with a deadline, keep a
//! server running (killed on drop), wait for it to listen.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};

/// Upper bound for one client run (start-up included).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);

/// Whether `MTLS_REQUIRE_PEERS=1` (set by `.ci/run`).
pub fn peers_required() -> bool {
    std::env::var("MTLS_REQUIRE_PEERS").as_deref() == Ok("1")
}

/// `program` found on `PATH`.
pub fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Reports a missing peer: fails under `MTLS_REQUIRE_PEERS=1`, otherwise prints
/// `skipped: <peer> not installed`. Returns whether the test may go on.
pub fn present(peer: &str, found: bool) -> bool {
    if !found {
        assert!(
            !peers_required(),
            "{peer} is required (MTLS_REQUIRE_PEERS=1) but not installed"
        );
        println!("skipped: {peer} not installed");
    }
    found
}

/// Whether `program` is installed (see [`present`]).
pub fn require(program: &str) -> bool {
    present(program, on_path(program).is_some())
}

/// Whether `python3` can import `module` (see [`present`]).
pub fn require_python(module: &str) -> bool {
    let found = on_path("python3").is_some()
        && std::process::Command::new("python3")
            .args(["-c", &format!("import {module}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    present(&format!("python3 {module}"), found)
}

/// What a finished client printed.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` to completion, feeding `stdin` (then closing it), killing it after
/// `timeout` (and failing the test).
pub async fn run(cmd: &mut Command, stdin: Option<&[u8]>, timeout: Duration) -> Output {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    let what = format!("{:?}", cmd.as_std());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        // A client that dies early closes its stdin; that shows in its output.
        let _ = pipe.write_all(input).await;
        drop(pipe);
    }
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(out)) => Output {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        },
        Ok(Err(e)) => panic!("waiting for {what}: {e}"),
        // The child is killed when the future holding it is dropped.
        Err(_) => panic!("{what} did not finish within {timeout:?}"),
    }
}

/// A server process of a third party, killed on drop. It must run as one process in
/// the foreground (nginx with `master_process off`, `haproxy -db`, `openssl s_server`),
/// so that killing it leaves nothing behind.
#[derive(Debug)]
pub struct Daemon {
    pub name: &'static str,
    pub port: u16,
    pub dir: PathBuf,
    log: PathBuf,
    child: Child,
}

impl Daemon {
    /// Starts `cmd` with stdout and stderr into `dir/<name>.log` and waits (10 s at
    /// most) until it accepts TCP connections on `port`.
    pub async fn start(name: &'static str, mut cmd: Command, port: u16, dir: &Path) -> Self {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let mut daemon = Self {
            name,
            port,
            dir: dir.to_owned(),
            log,
            child,
        };
        daemon.wait_listening().await;
        daemon
    }

    async fn wait_listening(&mut self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited ({status}): {}", self.name, self.log_text());
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} did not listen on 127.0.0.1:{} within 10 s: {}",
                self.name,
                self.port,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// What the server logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (3 s at most) until the log after byte `from` contains `needle`; returns
    /// the log after `from`.
    pub async fn log_since(&self, from: usize, needle: &str) -> String {
        let tail = || {
            let text = self.log_text();
            text.get(from..).unwrap_or_default().to_owned()
        };
        for _ in 0..60 {
            let text = tail();
            if text.contains(needle) {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tail()
    }
}

/// A port that was free a moment ago (for peers that cannot report the port they got).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fresh directory inside this run's directory.
pub fn scratch_dir(prefix: &str) -> PathBuf {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(super::pki::run_dir())
        .unwrap()
        .keep()
}
