//! The `hyper_server` and `reqwest_client` example programs, against each other and curl.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use mtls_testing::TestPki;
use support::{binary, curl, curl_ok, start};

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn curl_and_reqwest_client_against_hyper_server() {
    let pki = TestPki::new();
    let (_, server) = pki.server("localhost");
    let (_, alice) = pki.client("alice");
    let (_, bob) = pki.client("bob");
    let ca = pki.ca_file();
    let running = start(
        "hyper_server",
        &[
            "--cert",
            s(&server.cert),
            "--key",
            s(&server.key),
            "--client-ca",
            s(&ca),
            "--allow",
            "cn:alice",
        ],
    );

    // curl: the identity JSON for alice; bob and an anonymous client are refused.
    let (status, body) = curl_ok(running.port, "/", &ca, Some((&alice.cert, &alice.key)));
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["common_name"], "alice");
    for identity in [None, Some((bob.cert.as_path(), bob.key.as_path()))] {
        assert!(!curl(running.port, "/", &ca, identity).status.success());
    }

    // The reqwest_client example prints the status and the body.
    let url = format!("https://localhost:{}/", running.port);
    let out = Command::new(binary("reqwest_client"))
        .args([
            "--cert",
            s(&alice.cert),
            "--key",
            s(&alice.key),
            "--ca",
            s(&ca),
            &url,
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("200"), "{stdout}");
    assert!(
        stdout.contains("\"common_name\":\"alice\"")
            || stdout.contains("\"common_name\": \"alice\""),
        "{stdout}"
    );

    // Refused (bob is not allowed): a clear message and exit code 2.
    let out = Command::new(binary("reqwest_client"))
        .args([
            "--cert",
            s(&bob.cert),
            "--key",
            s(&bob.key),
            "--ca",
            s(&ca),
            &url,
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).is_empty());
}

#[test]
fn reqwest_client_bad_flags_and_files_exit_2() {
    let pki = TestPki::new();
    let (_, alice) = pki.client("alice");
    let ca = pki.ca_file();
    for (args, says) in [
        (vec!["https://localhost:1/"], "--cert"),
        (
            vec![
                "--cert",
                s(&alice.cert),
                "--key",
                s(&alice.cert),
                "--ca",
                s(&ca),
                "https://localhost:1/",
            ],
            "private key",
        ),
        (
            vec![
                "--cert",
                "/nonexistent.crt",
                "--key",
                s(&alice.key),
                "--ca",
                s(&ca),
                "https://localhost:1/",
            ],
            "/nonexistent.crt",
        ),
        (vec!["--bogus"], "--bogus"),
    ] {
        let out = Command::new(binary("reqwest_client"))
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn hyper_server_bad_flags_exit_2() {
    for args in [vec!["--listen", "127.0.0.1:0"], vec!["--nope"]] {
        let out = Command::new(binary("hyper_server"))
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            !stderr.is_empty() && !stderr.contains("panicked"),
            "{stderr}"
        );
    }
}
