//! Interop matrix, part 1: third-party clients against our servers.
//!
//! Clients: curl, `openssl s_client`, Python `requests` and `httpx`, Node's `https`
//! module, Go's `crypto/tls`, and nginx as an mTLS client (`proxy_pass https://…` with
//! `proxy_ssl_certificate`). Servers: ours on axum (mtls-axum) and on hyper (mtls-hyper),
//! in this process on 127.0.0.1, answering `GET /whoami` with the identity as JSON.
//!
//! Everything uses the openssl-made guide PKI (`tests/scripts/guide-pki.sh`); the
//! server is built from `server.pem` (certificate + key in one file), `ca.crt` and the
//! CRL from `openssl ca -gencrl`, in required client-auth mode. Each test runs four
//! cases against one server: alice's certificate is accepted (the identity in the
//! answer is checked), and no certificate, a certificate from another CA and bob's
//! revoked certificate are refused in the handshake. Run with `--nocapture` to see the
//! matrix lines (`MATRIX | client | server | case | what was seen`).
//!
//! A missing client program fails the test under `MTLS_REQUIRE_PEERS=1` and is
//! otherwise reported as `skipped: <peer> not installed`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::future::Future;
use std::path::PathBuf;

use mtls::ClientAuth;
use support::check::{Outcome, assert_http, assert_refused, assert_whoami, record};
use support::ours::{self, Kind};
use support::pki::{Case, guide};
use support::proc::{self, CLIENT_TIMEOUT, Daemon, require, require_python, run};
use tokio::process::Command;
use tokio::sync::OnceCell;

/// Runs the four cases of `client` against our `kind` server.
async fn matrix<F, Fut>(client: &str, kind: Kind, request: F)
where
    F: Fn(u16, Case) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let server = ours::start(kind, ClientAuth::Required).await;
    let who = format!("{client} -> our {}", kind.name());
    for case in Case::ALL {
        let out = request(server.port(), case).await;
        let seen = match case {
            Case::Good => assert_whoami(&who, &out, "alice"),
            _ => assert_refused(&who, &out, case),
        };
        record(client, kind.name(), case, &seen);
    }
}

fn path(p: &std::path::Path) -> &str {
    p.to_str().expect("paths of the test PKI are UTF-8")
}

/// `(cert, key)` as strings, `("-", "-")` without a certificate.
fn identity_args(case: Case) -> (String, String) {
    match case.identity() {
        Some((c, k)) => (path(&c).to_owned(), path(&k).to_owned()),
        None => ("-".to_owned(), "-".to_owned()),
    }
}

// === curl ===

async fn curl(port: u16, case: Case) -> Outcome {
    let g = guide();
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .arg("--resolve")
        .arg(format!("localhost:{port}:127.0.0.1"))
        .arg("--cacert")
        .arg(g.ca());
    if let Some((cert, key)) = case.identity() {
        cmd.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    cmd.arg(format!("https://localhost:{port}/whoami"));
    let out = run(&mut cmd, None, CLIENT_TIMEOUT).await;
    if !out.status.success() {
        return Outcome::Failed {
            error: format!("{} {}", out.status, out.stderr.trim()),
        };
    }
    let (body, code) = out.stdout.rsplit_once('\n').unwrap_or(("", &out.stdout));
    Outcome::Http {
        status: code.trim().parse().unwrap_or(0),
        body: body.to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn curl_to_axum_server() {
    if require("curl") {
        matrix("curl", Kind::Axum, curl).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn curl_to_hyper_server() {
    if require("curl") {
        matrix("curl", Kind::Hyper, curl).await;
    }
}

/// In optional client-auth mode the handshake succeeds without a certificate and
/// `/whoami` answers 401; a certificate is still verified (the revoked one is refused).
#[tokio::test(flavor = "multi_thread")]
async fn curl_to_optional_mode_servers_anonymous_gets_401() {
    if !require("curl") {
        return;
    }
    for kind in [Kind::Axum, Kind::Hyper] {
        let server = ours::start(kind, ClientAuth::Optional).await;
        let who = format!("curl -> our {} (optional client auth)", kind.name());
        let out = curl(server.port(), Case::NoCert).await;
        let seen = assert_http(&who, &out, 401, "");
        record(
            "curl",
            &format!("{} (optional)", kind.name()),
            Case::NoCert,
            &seen,
        );
        assert_whoami(&who, &curl(server.port(), Case::Good).await, "alice");
        let out = curl(server.port(), Case::Revoked).await;
        let seen = assert_refused(&who, &out, Case::Revoked);
        record(
            "curl",
            &format!("{} (optional)", kind.name()),
            Case::Revoked,
            &seen,
        );
    }
}

// === openssl s_client ===

async fn s_client(port: u16, case: Case) -> Outcome {
    let g = guide();
    let mut cmd = Command::new("openssl");
    cmd.arg("s_client")
        .args(["-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", "localhost", "-verify_hostname", "localhost"])
        .arg("-CAfile")
        .arg(g.ca())
        .args(["-verify_return_error", "-quiet"]);
    if let Some((cert, key)) = case.identity() {
        cmd.arg("-cert").arg(cert).arg("-key").arg(key);
    }
    let request = b"GET /whoami HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let out = run(&mut cmd, Some(request), CLIENT_TIMEOUT).await;
    Outcome::from_raw_http(&out.stdout, out.stderr.trim())
}

#[tokio::test(flavor = "multi_thread")]
async fn openssl_s_client_to_axum_server() {
    if require("openssl") {
        matrix("openssl s_client", Kind::Axum, s_client).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn openssl_s_client_to_hyper_server() {
    if require("openssl") {
        matrix("openssl s_client", Kind::Hyper, s_client).await;
    }
}

/// Our server names no CAs in its CertificateRequest (its verifier's CAs can be
/// reloaded, so it has no fixed list to send). Clients that pick a certificate by those
/// names then fall back to "any": Go sends its first certificate when the list is empty
/// (`go_client_to_*` are accepted), and OpenSSL, curl, Python and Node send the one they
/// were given. This pins the empty list, which those results depend on.
#[tokio::test(flavor = "multi_thread")]
async fn openssl_s_client_sees_no_client_ca_names() {
    if !require("openssl") {
        return;
    }
    let server = ours::start(Kind::Hyper, ClientAuth::Required).await;
    let g = guide();
    let (cert, key) = Case::Good.identity().unwrap();
    let mut cmd = Command::new("openssl");
    cmd.arg("s_client")
        .args(["-connect", &format!("127.0.0.1:{}", server.port())])
        .args([
            "-servername",
            "localhost",
            "-verify_return_error",
            "-ign_eof",
        ])
        .arg("-CAfile")
        .arg(g.ca())
        .arg("-cert")
        .arg(cert)
        .arg("-key")
        .arg(key);
    let request = b"GET /whoami HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let out = run(&mut cmd, Some(request), CLIENT_TIMEOUT).await;
    assert!(
        out.stdout.contains("No client certificate CA names sent"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("\"common_name\":\"alice\""),
        "{}",
        out.stdout
    );
}

// === Python requests and httpx ===

const REQUESTS: &str = r#"
import sys
import requests
url, ca, cert, key = sys.argv[1:5]
try:
    r = requests.get(url, verify=ca, cert=None if cert == "-" else (cert, key), timeout=10)
except Exception as e:
    print("ERROR", type(e).__name__, e)
    sys.exit(0)
print("STATUS", r.status_code)
print(r.text, end="")
"#;

/// httpx as its 0.28 docs say: an `ssl.SSLContext` with the CA and the client chain.
/// (httpx 0.28.1 still takes the older `verify="ca.crt", cert=(crt, key)`, deprecated,
/// but then silently drops the client certificate: `create_ssl_context` returns early
/// for a string `verify`, so the server sees no certificate.)
const HTTPX: &str = r#"
import ssl
import sys
import httpx
url, ca, cert, key = sys.argv[1:5]
try:
    context = ssl.create_default_context(cafile=ca)
    if cert != "-":
        context.load_cert_chain(cert, key)
    with httpx.Client(verify=context, timeout=10) as c:
        r = c.get(url)
except Exception as e:
    print("ERROR", type(e).__name__, e, repr(e.__context__))
    sys.exit(0)
print("STATUS", r.status_code)
print(r.text, end="")
"#;

async fn python(script: &str, port: u16, case: Case) -> Outcome {
    let (cert, key) = identity_args(case);
    let mut cmd = Command::new("python3");
    cmd.args(["-c", script])
        .arg(format!("https://localhost:{port}/whoami"))
        .arg(guide().ca())
        .args([cert, key]);
    Outcome::from_script(&run(&mut cmd, None, CLIENT_TIMEOUT).await)
}

#[tokio::test(flavor = "multi_thread")]
async fn python_requests_to_axum_server() {
    if require_python("requests") {
        matrix("python requests", Kind::Axum, |p, c| python(REQUESTS, p, c)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn python_requests_to_hyper_server() {
    if require_python("requests") {
        matrix("python requests", Kind::Hyper, |p, c| {
            python(REQUESTS, p, c)
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn python_httpx_to_axum_server() {
    if require_python("httpx") {
        matrix("python httpx", Kind::Axum, |p, c| python(HTTPX, p, c)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn python_httpx_to_hyper_server() {
    if require_python("httpx") {
        matrix("python httpx", Kind::Hyper, |p, c| python(HTTPX, p, c)).await;
    }
}

// === Node's https module ===

const NODE: &str = r#"
const fs = require('fs');
const https = require('https');
const [port, ca, cert, key] = process.argv.slice(1);
const options = {
  host: '127.0.0.1', port: Number(port), path: '/whoami', servername: 'localhost',
  ca: fs.readFileSync(ca), agent: false, timeout: 10000,
};
if (cert !== '-') {
  options.cert = fs.readFileSync(cert);
  options.key = fs.readFileSync(key);
}
const req = https.get(options, (res) => {
  let body = '';
  res.setEncoding('utf8');
  res.on('data', (d) => { body += d; });
  res.on('end', () => { process.stdout.write('STATUS ' + res.statusCode + '\n' + body); });
});
req.on('timeout', () => req.destroy(new Error('timeout')));
req.on('error', (e) => { process.stdout.write('ERROR ' + (e.code || '') + ' ' + e.message + '\n'); });
"#;

async fn node(port: u16, case: Case) -> Outcome {
    let (cert, key) = identity_args(case);
    let mut cmd = Command::new("node");
    cmd.args(["-e", NODE])
        .arg(port.to_string())
        .arg(guide().ca())
        .args([cert, key]);
    Outcome::from_script(&run(&mut cmd, None, CLIENT_TIMEOUT).await)
}

#[tokio::test(flavor = "multi_thread")]
async fn node_https_to_axum_server() {
    if require("node") {
        matrix("node https", Kind::Axum, node).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn node_https_to_hyper_server() {
    if require("node") {
        matrix("node https", Kind::Hyper, node).await;
    }
}

// === Go crypto/tls ===

/// Builds `tests/fixtures/go-client/main.go` once per test binary (standard library
/// only: no module downloads, `GOPROXY=off`), with GOCACHE and GOPATH in this run's
/// directory.
async fn go_client() -> &'static PathBuf {
    static BINARY: OnceCell<PathBuf> = OnceCell::const_new();
    BINARY
        .get_or_init(|| async {
            let dir = proc::scratch_dir("go-");
            let source = dir.join("main.go");
            std::fs::write(&source, include_str!("../fixtures/go-client/main.go")).unwrap();
            let binary = dir.join("go-client");
            let mut cmd = Command::new("go");
            cmd.current_dir(&dir)
                .env("GOCACHE", dir.join("cache"))
                .env("GOPATH", dir.join("gopath"))
                .env("GOFLAGS", "-mod=mod")
                .env("GOPROXY", "off")
                .env("GOTOOLCHAIN", "local")
                .env("GO111MODULE", "off")
                .arg("build")
                .arg("-o")
                .arg(&binary)
                .arg("main.go");
            let out = run(&mut cmd, None, std::time::Duration::from_secs(300)).await;
            assert!(
                out.status.success(),
                "go build failed: {}{}",
                out.stdout,
                out.stderr
            );
            binary
        })
        .await
}

async fn go(port: u16, case: Case) -> Outcome {
    let (cert, key) = identity_args(case);
    let mut cmd = Command::new(go_client().await);
    cmd.arg(format!("127.0.0.1:{port}"))
        .arg("localhost")
        .arg(guide().ca())
        .args([cert, key]);
    Outcome::from_script(&run(&mut cmd, None, CLIENT_TIMEOUT).await)
}

#[tokio::test(flavor = "multi_thread")]
async fn go_client_to_axum_server() {
    if require("go") {
        matrix("go crypto/tls", Kind::Axum, go).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn go_client_to_hyper_server() {
    if require("go") {
        matrix("go crypto/tls", Kind::Hyper, go).await;
    }
}

// === nginx as an mTLS client ===

/// nginx proxying plain HTTP to our server over mTLS, one location per case:
/// `/accepted`, `/no-cert`, `/other-CA`, `/revoked`.
async fn nginx_proxy(upstream: u16) -> Daemon {
    let dir = proc::scratch_dir("nginx-proxy-");
    let d = dir.display();
    let ca = guide().ca();
    let mut locations = String::new();
    for case in Case::ALL {
        let cert = match case.identity() {
            Some((c, k)) => format!(
                "proxy_ssl_certificate {};\n            proxy_ssl_certificate_key {};",
                c.display(),
                k.display()
            ),
            None => String::new(),
        };
        locations.push_str(&format!(
            r"
        location = /{label} {{
            proxy_pass https://127.0.0.1:{upstream}/whoami;
            proxy_http_version 1.1;
            {cert}
            proxy_ssl_trusted_certificate {ca};
            proxy_ssl_verify on;
            proxy_ssl_name localhost;
            proxy_ssl_server_name on;
            # The locations share one implicit upstream; without this a later location
            # could resume an earlier one's TLS session (and identity).
            proxy_ssl_session_reuse off;
        }}",
            label = case.label(),
            ca = ca.display(),
        ));
    }
    let port = proc::free_port();
    let conf = format!(
        r"
daemon off;
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
    server {{
        listen 127.0.0.1:{port};
        {locations}
    }}
}}
"
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let mut cmd = Command::new("nginx");
    cmd.arg("-e")
        .arg("stderr")
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(&conf_path);
    Daemon::start("nginx", cmd, port, &dir).await
}

async fn nginx_proxy_to(kind: Kind) {
    let server = ours::start(kind, ClientAuth::Required).await;
    let nginx = nginx_proxy(server.port()).await;
    let who = format!("nginx proxy -> our {}", kind.name());
    for case in Case::ALL {
        let before = nginx.log_text().len();
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
            .arg(format!("http://127.0.0.1:{}/{}", nginx.port, case.label()));
        let out = run(&mut cmd, None, CLIENT_TIMEOUT).await;
        let (body, code) = out.stdout.rsplit_once('\n').unwrap_or(("", &out.stdout));
        let out = Outcome::Http {
            status: code.trim().parse().unwrap_or(0),
            body: body.to_owned(),
        };
        let seen = if case == Case::Good {
            assert_whoami(&who, &out, "alice")
        } else {
            // nginx answers 502 and logs why the upstream handshake failed.
            assert_http(&who, &out, 502, "Bad Gateway");
            let error = nginx.log_since(before, "upstream").await;
            format!(
                "502; nginx log: {}",
                assert_refused(&who, &Outcome::Failed { error }, case)
            )
        };
        record("nginx proxy_pass", kind.name(), case, &seen);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn nginx_proxy_to_axum_server() {
    if require("nginx") && require("curl") {
        nginx_proxy_to(Kind::Axum).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn nginx_proxy_to_hyper_server() {
    if require("nginx") && require("curl") {
        nginx_proxy_to(Kind::Hyper).await;
    }
}
