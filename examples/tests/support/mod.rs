//! Running the example programs and curl against them.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

pub mod peers;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// `target/debug/examples/<name>`, next to this test's `deps` directory.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let bin = dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: run `cargo test -p mtls-examples`, which builds the examples",
        bin.display()
    );
    bin
}

/// Kills the server when dropped.
pub struct Running {
    pub child: Child,
    pub port: u16,
    /// The lines it prints on stdout after `listening on`.
    pub lines: mpsc::Receiver<String>,
}

impl Running {
    /// The next line on its stdout (within 30 s).
    pub fn next_line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(30))
            .expect("no further line on stdout within 30 s")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the example `name` on 127.0.0.1:0 and waits for its `listening on` line.
pub fn start(name: &str, args: &[&str]) -> Running {
    let mut child = Command::new(binary(name))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("no `listening on` line within 30 s");
    let mut running = Running {
        child,
        port: 0,
        lines: rx,
    };
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    running.port = addr.rsplit_once(':').unwrap().1.parse().unwrap();
    running
}

/// curl with `--cacert` and optionally `--cert`/`--key`; the output ends with the status.
pub fn curl(port: u16, path: &str, ca: &Path, identity: Option<(&Path, &Path)>) -> Output {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .arg("--cacert")
        .arg(ca);
    if let Some((cert, key)) = identity {
        cmd.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    cmd.arg(format!("https://localhost:{port}{path}"));
    cmd.output().expect("curl is needed for this test")
}

/// (HTTP status, body) of a curl call that completed.
pub fn curl_ok(
    port: u16,
    path: &str,
    ca: &Path,
    identity: Option<(&Path, &Path)>,
) -> (u16, String) {
    let out = curl(port, path, ca, identity);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "curl {path} failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (body, code) = stdout.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_owned())
}

/// Whether `MTLS_REQUIRE_PEERS=1` (set by `.ci/run`).
pub fn peers_required() -> bool {
    std::env::var("MTLS_REQUIRE_PEERS").as_deref() == Ok("1")
}

/// Whether `program` is on `PATH`. A missing one fails the test under
/// `MTLS_REQUIRE_PEERS=1`; otherwise prints `skipped: <program> not installed`.
pub fn require(program: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()));
    if !found {
        assert!(
            !peers_required(),
            "{program} is required (MTLS_REQUIRE_PEERS=1) but not installed"
        );
        println!("skipped: {program} not installed");
    }
    found
}

/// A port that was free a moment ago (for programs that cannot report the port they got).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
