//! Keys in a PKCS#11 token (SoftHSM2, Debian's `softhsm2`): a server whose key is in
//! the token serves mTLS to curl, and a client whose key is in the token connects to
//! nginx (which requires and verifies its certificate). The token is initialised by the
//! test with `softhsm2-util`, and the guide PKI's keys are imported into it.
//!
//! SoftHSM2 finds its tokens through the `SOFTHSM2_CONF` environment variable, which a
//! test cannot set for itself without `unsafe`: the test runs itself again as a child
//! process with the variable set (a fresh token directory under this run's directory).
//! A missing `softhsm2-util` or module fails under `MTLS_REQUIRE_PEERS=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::time::Duration;

use mtls::pkcs11::{Pkcs11Config, Pkcs11Key};
use mtls::{Error, Password, Policy};
use support::check::{Outcome, assert_http, assert_whoami};
use support::ours::{self, Kind};
use support::pki::guide;
use support::proc::{self, CLIENT_TIMEOUT, Daemon, present, require, run};
use tokio::process::Command;

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const TOKEN: &str = "mtls-test";
const PIN: &str = "1234";
const CHILD: &str = "MTLS_PKCS11_CHILD";

/// Runs `test` in a child process with `SOFTHSM2_CONF` pointing at a fresh token
/// directory; in the child, runs nothing (the caller's body runs).
fn in_child(test: &str) -> bool {
    if std::env::var_os(CHILD).is_some() {
        return true;
    }
    if !present(
        "softhsm2 (softhsm2-util and its module)",
        proc::on_path("softhsm2-util").is_some() && Path::new(MODULE).exists(),
    ) {
        return false;
    }
    let dir = proc::scratch_dir("softhsm-");
    std::fs::create_dir_all(dir.join("tokens")).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            dir.join("tokens").display()
        ),
    )
    .unwrap();
    let out = StdCommand::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("SOFTHSM2_CONF", &conf)
        .env(CHILD, &dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "the SoftHSM2 child failed: {text}");
    assert!(text.contains("1 passed"), "the child ran no test: {text}");
    false
}

fn softhsm2_util(args: &[&str]) {
    let out = StdCommand::new("softhsm2-util")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "softhsm2-util {args:?}: {out:?}");
}

fn openssl(args: &[&str]) {
    let out = StdCommand::new("openssl")
        .args(args)
        .current_dir(&guide().dir)
        .env("OPENSSL_CONF", "/dev/null")
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// A token with the guide's server key (label `server`, id 01), alice's (`alice`, 02)
/// and a P-256 server key (`ec-server`, 03) whose certificate the guide CA signs here.
fn token() -> PathBuf {
    let g = guide();
    openssl(&[
        "ecparam",
        "-genkey",
        "-name",
        "prime256v1",
        "-noout",
        "-out",
        "ec-server.key",
    ]);
    openssl(&[
        "req",
        "-new",
        "-key",
        "ec-server.key",
        "-subj",
        "/CN=localhost",
        "-out",
        "ec-server.csr",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "ec-server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "30",
        "-sha256",
        "-extfile",
        "server.ext",
        "-out",
        "ec-server.crt",
    ]);
    softhsm2_util(&[
        "--init-token",
        "--free",
        "--label",
        TOKEN,
        "--pin",
        PIN,
        "--so-pin",
        "5678",
    ]);
    for (who, id) in [("server", "01"), ("alice", "02"), ("ec-server", "03")] {
        // softhsm2-util imports unencrypted PKCS#8 PEM.
        let p8 = g.file(&format!("{who}.p8.pem"));
        let out = StdCommand::new("openssl")
            .args(["pkcs8", "-topk8", "-nocrypt", "-in"])
            .arg(g.file(&format!("{who}.key")))
            .arg("-out")
            .arg(&p8)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        softhsm2_util(&[
            "--import",
            p8.to_str().unwrap(),
            "--token",
            TOKEN,
            "--label",
            who,
            "--id",
            id,
            "--pin",
            PIN,
        ]);
    }
    let pin = g.file("hsm.pin");
    std::fs::write(&pin, format!("{PIN}\n")).unwrap();
    pin
}

fn key(label: &str, pin: &Path) -> Pkcs11Key {
    Pkcs11Key::open(
        &Pkcs11Config::new(MODULE)
            .token_label(TOKEN)
            .key_label(label)
            .pin(Password::from_file(pin)),
    )
    .unwrap_or_else(|e| panic!("open {label}: {e}"))
}

async fn curl_alice(port: u16) -> Outcome {
    let g = guide();
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .arg("--resolve")
        .arg(format!("localhost:{port}:127.0.0.1"))
        .arg("--cacert")
        .arg(g.ca())
        .arg("--cert")
        .arg(g.file("alice.crt"))
        .arg("--key")
        .arg(g.file("alice.key"))
        .arg(format!("https://localhost:{port}/whoami"));
    let out = run(&mut cmd, None, CLIENT_TIMEOUT).await;
    if !out.status.success() {
        return Outcome::Failed {
            error: out.stderr.trim().to_owned(),
        };
    }
    let (body, code) = out.stdout.rsplit_once('\n').unwrap_or(("", ""));
    Outcome::Http {
        status: code.trim().parse().unwrap_or(0),
        body: body.to_owned(),
    }
}

async fn nginx() -> Daemon {
    let g = guide();
    let dir = proc::scratch_dir("nginx-pkcs11-");
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
        listen 127.0.0.1:{port} ssl;
        server_name localhost;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_client_certificate {ca};
        ssl_verify_client on;
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

#[tokio::test(flavor = "multi_thread")]
async fn server_and_client_keys_in_a_softhsm2_token() {
    if !in_child("server_and_client_keys_in_a_softhsm2_token") {
        return;
    }
    let g = guide();
    let pin = token();
    // A wrong PIN, before anything logged in to the token: refused, saying so.
    let wrong = g.file("wrong.pin");
    std::fs::write(&wrong, "9999").unwrap();
    let e = Pkcs11Key::open(
        &Pkcs11Config::new(MODULE)
            .token_label(TOKEN)
            .key_label("server")
            .pin(Password::from_file(&wrong)),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Pkcs11 { .. }), "{e:?}");
    assert!(
        e.to_string().contains("PIN") && e.to_string().contains("wrong.pin"),
        "{e}"
    );
    assert!(!e.to_string().contains("9999"), "the PIN leaked: {e}");

    // Our server, its key in the token, serves mTLS to curl.
    let server = mtls::Server::builder()
        .identity_signer(g.server_crt(), key("server", &pin))
        .client_ca(g.ca())
        .policy(Policy::any_verified())
        .alpn(mtls::HTTP_ALPN)
        .build()
        .unwrap();
    let running = ours::serve(Kind::Axum, server).await;
    for _ in 0..2 {
        let out = curl_alice(running.port()).await;
        let seen = assert_whoami("curl -> our server (RSA key in SoftHSM2)", &out, "alice");
        println!("MATRIX | curl | axum server, RSA key in SoftHSM2 | {seen}");
    }
    // The same with a P-256 key (ECDSA: hashed here, CKM_ECDSA in the token).
    let server = mtls::Server::builder()
        .identity_signer(g.file("ec-server.crt"), key("ec-server", &pin))
        .client_ca(g.ca())
        .policy(Policy::any_verified())
        .alpn(mtls::HTTP_ALPN)
        .build()
        .unwrap();
    let ec = ours::serve(Kind::Hyper, server).await;
    let out = curl_alice(ec.port()).await;
    let seen = assert_whoami("curl -> our server (P-256 key in SoftHSM2)", &out, "alice");
    println!("MATRIX | curl | hyper server, P-256 key in SoftHSM2 | {seen}");

    // Our client, its key in the token, connects to nginx.
    if require("nginx") {
        let daemon = nginx().await;
        let client = mtls::Client::builder()
            .identity_signer(g.file("alice.crt"), key("alice", &pin))
            .ca(g.ca())
            .build()
            .unwrap();
        let http = mtls_reqwest::builder(&client)
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let url = format!("https://localhost:{}/", daemon.port);
        let out = match http.get(&url).send().await {
            Ok(r) => Outcome::Http {
                status: r.status().as_u16(),
                body: r.text().await.unwrap_or_default(),
            },
            Err(e) => Outcome::Failed {
                error: format!("{e:?}"),
            },
        };
        let seen = assert_http(
            "reqwest (key in SoftHSM2) -> nginx",
            &out,
            200,
            "CN=alice,OU=clients",
        );
        println!("MATRIX | reqwest client, key in SoftHSM2 | nginx | {seen}");
    }

    // The key of another certificate is refused at build; a missing key, token or
    // module says so.
    let e = mtls::Server::builder()
        .identity_signer(g.server_crt(), key("alice", &pin))
        .client_ca(g.ca())
        .policy(Policy::any_verified())
        .build()
        .unwrap_err();
    assert!(matches!(e, Error::SignerKeyMismatch { .. }), "{e:?}");
    assert!(e.to_string().contains("key \"alice\""), "{e}");
    let e = Pkcs11Key::open(
        &Pkcs11Config::new(MODULE)
            .token_label(TOKEN)
            .key_label("nobody")
            .pin(Password::from_file(&pin)),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Pkcs11 { .. }), "{e:?}");
    assert!(e.to_string().contains("no private key matches"), "{e}");
    let e = Pkcs11Key::open(&Pkcs11Config::new(MODULE).token_label("no-such-token")).unwrap_err();
    assert!(
        e.to_string().contains(TOKEN),
        "lists the tokens present: {e}"
    );
    let e = Pkcs11Key::open(&Pkcs11Config::new("/nonexistent/libpkcs11.so")).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/libpkcs11.so"), "{e}");
}
