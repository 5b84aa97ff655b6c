//! Third-party servers and curl, for the interop tests of this crate. These are copies of
//! the tests crate's `tests/tests/support` helpers (`Daemon`, `record`), made synchronous
//! like the rest of this crate's tests.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server process of a third party, killed on drop. It must run as one process in
/// the foreground (nginx with `master_process off`, `haproxy -db`, `apache2 -X`), so
/// that killing it leaves nothing behind.
#[derive(Debug)]
pub struct Daemon {
    pub name: &'static str,
    pub port: u16,
    log: PathBuf,
    child: Child,
}

impl Daemon {
    /// Starts `cmd` with stdout and stderr going to `dir/<name>.log`, and waits (10 s at
    /// most) until it accepts TCP connections on `port`.
    pub fn start(name: &'static str, mut cmd: Command, port: u16, dir: &Path) -> Self {
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let mut daemon = Self {
            name,
            port,
            log,
            child,
        };
        daemon.wait_listening();
        daemon
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited ({status}): {}", self.name, self.log_text());
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not listen on 127.0.0.1:{} within 10 s: {}",
                self.name,
                self.port,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// What the server has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What curl got for one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// An HTTP answer.
    Http { status: u16, body: String },
    /// No HTTP answer: curl's error message.
    Failed { error: String },
}

impl Reply {
    /// The status, or 0 without an HTTP answer.
    pub fn status(&self) -> u16 {
        match self {
            Self::Http { status, .. } => *status,
            Self::Failed { .. } => 0,
        }
    }

    /// A short description for the matrix and for failure messages.
    pub fn describe(&self) -> String {
        match self {
            Self::Http { status, body } => {
                let body: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
                let short: String = body.chars().take(160).collect();
                format!("HTTP {status}: {short}")
            }
            Self::Failed { error } => format!("no HTTP answer: {}", error.trim()),
        }
    }

    /// The JSON body of a 200, or a failed test.
    pub fn json(&self, who: &str) -> serde_json::Value {
        match self {
            Self::Http { status: 200, body } => serde_json::from_str(body)
                .unwrap_or_else(|e| panic!("{who}: the body is not JSON ({e}): {body}")),
            other => panic!("{who}: expected 200, got {}", other.describe()),
        }
    }
}

/// One HTTPS request with curl to `https://localhost:PORT/PATH` (localhost resolved to
/// 127.0.0.1), verifying the server with `ca`, presenting `client` (certificate and
/// key) if given, and sending `headers` besides curl's own.
pub fn https(
    port: u16,
    path: &str,
    ca: &Path,
    client: Option<(&Path, &Path)>,
    headers: &[(String, String)],
) -> Reply {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .arg("--resolve")
        .arg(format!("localhost:{port}:127.0.0.1"))
        .arg("--cacert")
        .arg(ca);
    if let Some((cert, key)) = client {
        cmd.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    for (name, value) in headers {
        cmd.arg("-H").arg(format!("{name}: {value}"));
    }
    let out = cmd
        .arg(format!("https://localhost:{port}{path}"))
        .stdin(Stdio::null())
        .output()
        .expect("curl is needed for this test");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Reply::Failed {
            error: format!("{} {}", out.status, String::from_utf8_lossy(&out.stderr)),
        };
    }
    let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    Reply::Http {
        status: code.trim().parse().unwrap_or(0),
        body: body.to_owned(),
    }
}

/// Prints one cell of the matrix (visible with `--nocapture`).
pub fn record(path: &str, server: &str, case: &str, what: &str) {
    println!("MATRIX | {path} | {server} | {case} | {what}");
}
