//! Running the built `mtls` binary, and the third-party peers (nginx, curl) of the
//! examples' tests (`examples/tests/support/peers.rs`, shared by path).

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../../examples/tests/support/peers.rs"]
pub mod peers;

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// What one run of `mtls` printed.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout and stderr together, for assertions on the text.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs the built `mtls` with `args`.
pub fn mtls<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_mtls"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the mtls binary runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `mtls` and fails the test unless it exits 0.
pub fn mtls_ok<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    let run = mtls(args);
    assert_eq!(
        run.code,
        0,
        "mtls {:?} failed: {}",
        args.iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect::<Vec<_>>(),
        run.text()
    );
    run
}

/// Whether `MTLS_REQUIRE_PEERS=1` (set by `.ci/run`).
pub fn peers_required() -> bool {
    std::env::var("MTLS_REQUIRE_PEERS").as_deref() == Ok("1")
}

/// Whether `program` is on `PATH`; prints `skipped` if not, and fails under
/// `MTLS_REQUIRE_PEERS=1`.
pub fn require(program: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()));
    present(program, found)
}

/// Whether `python3` can import `module` (see [`require`]).
pub fn require_python(module: &str) -> bool {
    let found = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    present(&format!("python3 {module}"), found)
}

fn present(peer: &str, found: bool) -> bool {
    if !found {
        assert!(
            !peers_required(),
            "{peer} is required (MTLS_REQUIRE_PEERS=1) but not installed"
        );
        println!("skipped: {peer} not installed");
    }
    found
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// nginx in the foreground with these `server` blocks (each with its own `listen`),
/// its temp files in `dir`, waiting until `port` listens.
pub fn nginx(dir: &Path, servers: &str, port: u16) -> peers::Daemon {
    let d = dir.display();
    let conf = format!(
        "daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log stderr info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
{servers}
}}
"
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let mut cmd = Command::new("nginx");
    cmd.args(["-e", "stderr", "-p"])
        .arg(dir)
        .arg("-c")
        .arg(&path);
    peers::Daemon::start("nginx", cmd, port, dir)
}

/// One mTLS `server` block: `cert`/`key` served, clients verified against `client_ca`
/// (with `verify` = `on`, `optional`, … or `None` for no client authentication), an
/// optional `ssl_crl`; answers 200 with the client's subject.
pub fn nginx_server(
    port: u16,
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
    crl: Option<&Path>,
) -> String {
    let mut block = format!(
        "server {{
    listen 127.0.0.1:{port} ssl;
    server_name localhost;
    ssl_certificate {};
    ssl_certificate_key {};
",
        cert.display(),
        key.display()
    );
    if let Some(ca) = client_ca {
        block.push_str(&format!(
            "    ssl_client_certificate {};\n    ssl_verify_client on;\n    ssl_verify_depth 3;\n",
            ca.display()
        ));
    }
    if let Some(crl) = crl {
        block.push_str(&format!("    ssl_crl {};\n", crl.display()));
    }
    block.push_str(
        "    location / { default_type text/plain; return 200 \"subject=$ssl_client_s_dn\\n\"; }\n}\n",
    );
    block
}
