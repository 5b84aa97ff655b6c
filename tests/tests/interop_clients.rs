//! Interop matrix, part 2: our clients against third-party mTLS servers.
//!
//! Clients: mtls-reqwest (`mtls_reqwest::builder(&mtls::Client)` → `reqwest::Client`) and mtls-hyper
//! (`Connector` + hyper-util's legacy client). Servers: nginx (`ssl_verify_client on`,
//! `ssl_client_certificate`, `ssl_crl`), HAProxy (`bind … ssl crt server.pem ca-file
//! ca.crt verify required crl-file crl.pem`, echoing the client's CN) and `openssl
//! s_server -Verify 1 -verify_return_error -CRL crl.pem -crl_check -www`.
//!
//! All on the openssl-made guide PKI (`tests/scripts/guide-pki.sh`). Each test starts
//! its peer once and runs four cases: alice's certificate is accepted (and the CN the
//! server saw is checked), and no certificate, a certificate from another CA and bob's
//! revoked certificate are refused. nginx completes the handshake either way and
//! refuses with HTTP 400; HAProxy and s_server refuse in the handshake. Run with
//! `--nocapture` to see the matrix lines.
//!
//! A missing server program fails the test under `MTLS_REQUIRE_PEERS=1` and is
//! otherwise reported as `skipped: <peer> not installed`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::error::Error as StdError;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use support::check::{Outcome, assert_http, assert_refused, record};
use support::pki::{Case, guide};
use support::proc::{self, Daemon, require};
use tokio::process::Command;

const TIMEOUT: Duration = Duration::from_secs(10);

// === our clients ===

/// The core client for `case`: the guide CA to verify the server, and the case's
/// certificate. The other CA's certificate does not chain to the configured CA, which
/// the builder checks by default (a likely mistake); here it is the point.
fn mtls_client(case: Case) -> mtls::Client {
    let mut builder = mtls::Client::builder().ca(guide().ca());
    if let Some((cert, key)) = case.identity() {
        builder = builder.identity(cert, key);
    }
    if case == Case::OtherCa {
        builder = builder.check_identity_chain(false);
    }
    builder.build().unwrap()
}

/// The error and its sources, joined.
fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[derive(Debug, Clone, Copy)]
enum Ours {
    Reqwest,
    Hyper,
}

impl Ours {
    fn name(self) -> &'static str {
        match self {
            Self::Reqwest => "reqwest (mtls-reqwest)",
            Self::Hyper => "hyper client (mtls-hyper)",
        }
    }

    async fn get(self, case: Case, url: &str) -> Outcome {
        match self {
            Self::Reqwest => reqwest_get(case, url).await,
            Self::Hyper => hyper_get(case, url).await,
        }
    }
}

async fn reqwest_get(case: Case, url: &str) -> Outcome {
    let http = mtls_reqwest::builder(&mtls_client(case))
        .timeout(TIMEOUT)
        .build()
        .unwrap();
    match http.get(url).send().await {
        Ok(response) => Outcome::Http {
            status: response.status().as_u16(),
            body: response.text().await.unwrap_or_default(),
        },
        Err(e) => Outcome::Failed {
            // `classify` names the alert when one arrived (`RefusedByServer(..)`).
            error: format!("{:?}: {}", mtls_reqwest::classify(&e), chain(&e)),
        },
    }
}

async fn hyper_get(case: Case, url: &str) -> Outcome {
    let client = HyperClient::builder(TokioExecutor::new())
        .build::<_, Empty<Bytes>>(mtls_hyper::Connector::new(&mtls_client(case)));
    let response = match tokio::time::timeout(TIMEOUT, client.get(url.parse().unwrap())).await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => return Outcome::Failed { error: chain(&e) },
        Err(_) => panic!("hyper client: no answer from {url} within {TIMEOUT:?}"),
    };
    let status = response.status().as_u16();
    match tokio::time::timeout(TIMEOUT, response.into_body().collect()).await {
        Ok(Ok(body)) => Outcome::Http {
            status,
            body: String::from_utf8_lossy(&body.to_bytes()).into_owned(),
        },
        Ok(Err(e)) => Outcome::Failed { error: chain(&e) },
        Err(_) => panic!("hyper client: body from {url} not complete within {TIMEOUT:?}"),
    }
}

// === the peers ===

/// nginx requiring a client certificate, with the guide CRL; answers
/// `$ssl_client_s_dn`. One process (`master_process off`), logging to stderr.
async fn nginx() -> Daemon {
    let g = guide();
    let dir = proc::scratch_dir("nginx-server-");
    let d = dir.display();
    let port = proc::free_port();
    let conf = format!(
        r#"
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
        listen 127.0.0.1:{port} ssl http2;
        server_name localhost;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_client_certificate {ca};
        ssl_verify_client on;
        ssl_crl {crl};
        location / {{
            default_type text/plain;
            return 200 "$ssl_client_s_dn";
        }}
    }}
}}
"#,
        cert = g.server_crt().display(),
        key = g.server_key().display(),
        ca = g.ca().display(),
        crl = g.crl().display(),
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

/// HAProxy 2.6 terminating mTLS with the guide's combined `server.pem`, answering with
/// the client certificate's CN.
async fn haproxy() -> Daemon {
    let g = guide();
    let dir = proc::scratch_dir("haproxy-");
    let port = proc::free_port();
    let conf = format!(
        r#"
global
    log stderr format raw local0 info

defaults
    mode http
    log global
    option httplog
    timeout connect 5s
    timeout client 10s
    timeout server 10s

frontend mtls
    bind 127.0.0.1:{port} ssl crt {pem} ca-file {ca} verify required crl-file {crl} alpn h2,http/1.1
    http-request return status 200 content-type text/plain lf-string "CN=%[ssl_c_s_dn(cn)]"
"#,
        pem = g.server_pem().display(),
        ca = g.ca().display(),
        crl = g.crl().display(),
    );
    let conf_path = dir.join("haproxy.cfg");
    std::fs::write(&conf_path, conf).unwrap();
    let mut cmd = Command::new("haproxy");
    cmd.arg("-db").arg("-f").arg(&conf_path);
    Daemon::start("haproxy", cmd, port, &dir).await
}

/// `openssl s_server` requiring a verified client certificate, with the CRL checked
/// for the leaf. (The guide's server certificate is issued by the root itself; for a
/// chain with intermediates, s_server needs `-cert_chain`, as `-cert` sends only the
/// first certificate of its file.)
async fn s_server() -> Daemon {
    let g = guide();
    let dir = proc::scratch_dir("s_server-");
    let port = proc::free_port();
    let mut cmd = Command::new("openssl");
    cmd.arg("s_server")
        .args(["-accept", &format!("127.0.0.1:{port}")])
        .arg("-cert")
        .arg(g.server_crt())
        .arg("-key")
        .arg(g.server_key())
        .arg("-CAfile")
        .arg(g.ca())
        .arg("-CRL")
        .arg(g.crl())
        .args(["-crl_check", "-Verify", "1", "-verify_return_error", "-www"]);
    Daemon::start("openssl s_server", cmd, port, &dir).await
}

// === the matrix ===

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    Nginx,
    Haproxy,
    SServer,
}

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Self::Nginx => "nginx",
            Self::Haproxy => "haproxy",
            Self::SServer => "openssl s_server",
        }
    }

    fn program(self) -> &'static str {
        match self {
            Self::Nginx => "nginx",
            Self::Haproxy => "haproxy",
            Self::SServer => "openssl",
        }
    }

    async fn start(self) -> Daemon {
        match self {
            Self::Nginx => nginx().await,
            Self::Haproxy => haproxy().await,
            Self::SServer => s_server().await,
        }
    }

    /// Checks `out` for `case`; `before` is the length of the peer's log before the
    /// request.
    async fn check(
        self,
        who: &str,
        case: Case,
        out: &Outcome,
        peer: &Daemon,
        before: usize,
    ) -> String {
        match (self, case) {
            // `$ssl_client_s_dn` (RFC 2253 order), `CN=%[ssl_c_s_dn(cn)]`, and the
            // s_server `-www` page, which prints the client certificate's subject.
            (Self::Nginx, Case::Good) => assert_http(who, out, 200, "CN=alice,OU=clients"),
            (Self::Haproxy, Case::Good) => assert_http(who, out, 200, "CN=alice"),
            (Self::SServer, Case::Good) => assert_http(who, out, 200, "OU=clients, CN=alice"),
            // nginx completes the handshake and answers 400; its log says why.
            (Self::Nginx, Case::NoCert) => {
                assert_http(who, out, 400, "No required SSL certificate was sent")
            }
            (Self::Nginx, Case::OtherCa | Case::Revoked) => {
                let seen = assert_http(who, out, 400, "The SSL certificate error");
                let reason = if case == Case::Revoked {
                    "certificate revoked"
                } else {
                    "unable to verify the first certificate"
                };
                let log = peer.log_since(before, reason).await;
                assert!(
                    log.contains(reason),
                    "{who}: nginx did not log {reason:?}: {log}"
                );
                format!("{seen}; nginx log: {reason}")
            }
            // HAProxy and s_server refuse in the handshake; their logs say why.
            (Self::Haproxy | Self::SServer, _) => {
                let seen = assert_refused(who, out, case);
                let reason = match (self, case) {
                    (Self::Haproxy, Case::NoCert) => "SSL handshake failure",
                    (Self::Haproxy, _) => "SSL client certificate not trusted",
                    (_, Case::NoCert) => "peer did not return a certificate",
                    (_, Case::OtherCa) => "unable to get local issuer certificate",
                    (_, _) => "certificate revoked",
                };
                let log = peer.log_since(before, reason).await;
                assert!(
                    log.contains(reason),
                    "{who}: {} did not log {reason:?}: {log}",
                    self.name()
                );
                format!("{seen}; {} log: {reason}", self.name())
            }
        }
    }
}

async fn matrix(client: Ours, peer: Peer) {
    if !require(peer.program()) {
        return;
    }
    let daemon = peer.start().await;
    let url = format!("https://localhost:{}/", daemon.port);
    let who = format!("{} -> {}", client.name(), peer.name());
    for case in Case::ALL {
        let before = daemon.log_text().len();
        let out = client.get(case, &url).await;
        let seen = peer.check(&who, case, &out, &daemon, before).await;
        record(client.name(), peer.name(), case, &seen);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn reqwest_to_nginx() {
    matrix(Ours::Reqwest, Peer::Nginx).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hyper_client_to_nginx() {
    matrix(Ours::Hyper, Peer::Nginx).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reqwest_to_haproxy() {
    matrix(Ours::Reqwest, Peer::Haproxy).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hyper_client_to_haproxy() {
    matrix(Ours::Hyper, Peer::Haproxy).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reqwest_to_openssl_s_server() {
    matrix(Ours::Reqwest, Peer::SServer).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hyper_client_to_openssl_s_server() {
    matrix(Ours::Hyper, Peer::SServer).await;
}
