//! The `axum_server` example binary, with curl as the client.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mtls_testing::TestPki;

/// `target/debug/examples/axum_server`, next to this test's `deps` directory.
fn binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let bin = dir
        .join("examples")
        .join(format!("axum_server{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: run `cargo test -p mtls-examples`, which builds the examples",
        bin.display()
    );
    bin
}

/// Kills the server when dropped.
struct Running {
    child: Child,
    port: u16,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str]) -> Running {
    let mut child = Command::new(binary())
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
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let mut running = Running { child, port: 0 };
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("no `listening on` line within 30 s");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    running.port = addr.rsplit_once(':').unwrap().1.parse().unwrap();
    running
}

fn curl(port: u16, path: &str, ca: &Path, identity: Option<(&Path, &Path)>) -> Output {
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
fn curl_ok(port: u16, path: &str, ca: &Path, identity: Option<(&Path, &Path)>) -> (u16, String) {
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

#[test]
fn whoami_admin_and_anonymous_under_optional_client_auth() {
    let pki = TestPki::new();
    let (_, server) = pki.server("localhost");
    let (alice_leaf, alice) = pki.client("alice");
    let (_, root) = pki.client("root-admin");
    let ca = pki.ca_file();
    let running = start(&[
        "--cert",
        server.cert.to_str().unwrap(),
        "--key",
        server.key.to_str().unwrap(),
        "--client-ca",
        ca.to_str().unwrap(),
        "--allow-any",
        "--optional-client-auth",
        "--admin-cn",
        "root-admin",
    ]);

    let (status, body) = curl_ok(
        running.port,
        "/whoami",
        &ca,
        Some((&alice.cert, &alice.key)),
    );
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["common_name"], "alice");
    assert_eq!(json["subject"], "CN=alice");
    assert_eq!(json["serial"], alice_leaf_serial(&alice_leaf));
    for key in [
        "subject",
        "common_name",
        "dns_names",
        "ip_addresses",
        "uris",
        "spiffe_id",
        "serial",
        "fingerprint_sha256",
        "not_before",
        "not_after",
    ] {
        assert!(json.get(key).is_some(), "no `{key}` in {body}");
    }

    // Without a certificate: connected, but refused by the route.
    let (status, body) = curl_ok(running.port, "/whoami", &ca, None);
    assert_eq!(status, 401, "{body}");
    let (status, _) = curl_ok(running.port, "/admin", &ca, None);
    assert_eq!(status, 401);

    // A client certificate that is not the admin's.
    let (status, body) = curl_ok(running.port, "/admin", &ca, Some((&alice.cert, &alice.key)));
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains("cn:root-admin"), "the rule leaked: {body}");
    let (status, body) = curl_ok(running.port, "/admin", &ca, Some((&root.cert, &root.key)));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("root-admin"), "{body}");
}

fn alice_leaf_serial(leaf: &mtls_testing::Leaf) -> String {
    leaf.serial().iter().map(|b| format!("{b:02X}")).collect()
}

#[test]
fn required_client_auth_refuses_no_certificate_and_unlisted_clients() {
    let pki = TestPki::new();
    let (_, server) = pki.server("localhost");
    let (_, alice) = pki.client("alice");
    let (_, bob) = pki.client("bob");
    let ca = pki.ca_file();
    let running = start(&[
        "--cert",
        server.cert.to_str().unwrap(),
        "--key",
        server.key.to_str().unwrap(),
        "--client-ca",
        ca.to_str().unwrap(),
        "--allow",
        "cn:alice",
        "--allow",
        "cn:carol",
    ]);
    let (status, body) = curl_ok(
        running.port,
        "/whoami",
        &ca,
        Some((&alice.cert, &alice.key)),
    );
    assert_eq!(status, 200, "{body}");
    // Refused in the handshake: curl fails without an HTTP status.
    for identity in [None, Some((bob.cert.as_path(), bob.key.as_path()))] {
        let out = curl(running.port, "/whoami", &ca, identity);
        assert!(
            !out.status.success(),
            "curl succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(!String::from_utf8_lossy(&out.stdout).contains("common_name"));
    }
}

#[test]
fn watch_reloads_a_changed_crl() {
    let pki = TestPki::new();
    let (_, server) = pki.server("localhost");
    let (alice_leaf, alice) = pki.client("alice");
    let (unrelated, _) = pki.client("unrelated");
    let ca = pki.ca_file();
    // First a CRL revoking someone else.
    let crl = pki
        .intermediate
        .crl(&[&unrelated])
        .write(pki.dir.path(), "ca.crl");
    let running = start(&[
        "--cert",
        server.cert.to_str().unwrap(),
        "--key",
        server.key.to_str().unwrap(),
        "--client-ca",
        ca.to_str().unwrap(),
        "--crl",
        crl.to_str().unwrap(),
        "--allow-any",
        "--watch",
    ]);
    let (status, _) = curl_ok(
        running.port,
        "/whoami",
        &ca,
        Some((&alice.cert, &alice.key)),
    );
    assert_eq!(status, 200);

    // Replace the CRL (write + rename) with one revoking alice: she is refused soon after.
    let tmp = pki
        .intermediate
        .crl(&[&alice_leaf])
        .write(pki.dir.path(), "ca.crl.new");
    std::fs::rename(&tmp, &crl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = curl(
            running.port,
            "/whoami",
            &ca,
            Some((&alice.cert, &alice.key)),
        );
        if !out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alice still accepted after the CRL change"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn run_bad(args: &[&str]) -> String {
    let out = Command::new(binary())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "args {args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "args {args:?} printed on stdout");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn bad_flags_and_files_exit_2_with_a_message() {
    let pki = TestPki::new();
    let (_, server) = pki.server("localhost");
    let ca = pki.ca_file();
    let cert = server.cert.to_str().unwrap();
    let key = server.key.to_str().unwrap();
    let ca = ca.to_str().unwrap();
    let base = [
        "--listen",
        "127.0.0.1:0",
        "--cert",
        cert,
        "--key",
        key,
        "--client-ca",
        ca,
    ];

    assert!(run_bad(&[]).contains("--listen"));
    assert!(run_bad(&["--bogus"]).contains("unknown flag `--bogus`"));
    assert!(run_bad(&["--listen"]).contains("--listen needs a value"));
    let no_policy = run_bad(&base);
    assert!(no_policy.contains("--allow-any"), "{no_policy}");
    let both = [&base[..], &["--allow", "cn:a", "--allow-any"]].concat();
    assert!(run_bad(&both).contains("exclude each other"));
    let bad_spec = [&base[..], &["--allow", "cn"]].concat();
    assert!(run_bad(&bad_spec).contains("bad --allow value"));
    let missing = pki.path("missing.crt");
    let missing = missing.to_str().unwrap();
    let missing_file = [
        "--listen",
        "127.0.0.1:0",
        "--cert",
        missing,
        "--key",
        key,
        "--client-ca",
        ca,
        "--allow-any",
    ];
    assert!(run_bad(&missing_file).contains("missing.crt"));
    // The key of another certificate.
    let (_, other) = pki.client("other");
    let mismatch = [
        "--listen",
        "127.0.0.1:0",
        "--cert",
        cert,
        "--key",
        other.key.to_str().unwrap(),
        "--client-ca",
        ca,
        "--allow-any",
    ];
    let msg = run_bad(&mismatch);
    assert!(msg.to_lowercase().contains("key"), "{msg}");
    let bad_addr = [&base[..], &["--allow-any"]].concat();
    let bad_addr: Vec<&str> = bad_addr
        .iter()
        .map(|a| {
            if *a == "127.0.0.1:0" {
                "not-an-address"
            } else {
                a
            }
        })
        .collect();
    assert!(run_bad(&bad_addr).contains("cannot listen on not-an-address"));
}

#[test]
fn help_exits_0() {
    let out = Command::new(binary()).arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("--allow SPEC") && text.contains("GET /whoami"),
        "{text}"
    );
}
