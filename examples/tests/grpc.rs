//! The `grpc_server` and `grpc_client` example binaries against each other over loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::{Command, Output};

use mtls_testing::TestPki;
use support::{binary, start};

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

fn client(
    port: u16,
    identity: &mtls_testing::LeafFiles,
    ca: &std::path::Path,
    method: &str,
) -> Output {
    Command::new(binary("grpc_client"))
        .args([
            "--cert",
            s(&identity.cert),
            "--key",
            s(&identity.key),
            "--ca",
            s(ca),
            "--method",
            method,
            &format!("https://localhost:{port}"),
        ])
        .output()
        .unwrap()
}

#[test]
fn grpc_client_against_grpc_server() {
    let pki = TestPki::new();
    let (_, server) = pki.server("localhost");
    let (alice_leaf, alice) = pki.client("alice");
    let (_, admin) = pki.client("admin");
    let (_, mallory) = pki.client("mallory");
    let ca = pki.ca_file();
    let running = start(
        "grpc_server",
        &[
            "--cert",
            s(&server.cert),
            "--key",
            s(&server.key),
            "--client-ca",
            s(&ca),
            "--allow",
            "cn:alice",
            "--allow",
            "cn:admin",
        ],
    );

    // WhoAmI: one JSON object with the proto's field names.
    let out = client(running.port, &alice, &ca, "WhoAmI");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(json["common_name"], "alice");
    assert_eq!(json["subject"], "CN=alice");
    assert_eq!(json["spiffe_id"], "");
    let serial: String = alice_leaf
        .serial()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    assert_eq!(json["serial"], serial);
    let fingerprint = json["fingerprint_sha256"].as_str().unwrap();
    assert_eq!(fingerprint.len(), 64, "{fingerprint}");
    assert!(fingerprint.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(json.as_object().unwrap().len(), 5, "{json}");

    // Admin: PERMISSION_DENIED for alice (admitted by the listener), answered for admin.
    let out = client(running.port, &alice, &ca, "Admin");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("PermissionDenied"), "{stderr}");
    assert!(!stderr.contains("cn:admin"), "the rule leaked: {stderr}");
    let out = client(running.port, &admin, &ca, "Admin");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["common_name"], "admin");

    // mallory is not admitted by the listener's policy: refused, exit code 2.
    let out = client(running.port, &mallory, &ca, "WhoAmI");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

#[test]
fn grpc_examples_bad_flags_and_files_exit_2() {
    let pki = TestPki::new();
    let (_, server) = pki.server("localhost");
    let ca = pki.ca_file();
    // The server insists on a client policy, as axum_server does.
    let out = Command::new(binary("grpc_server"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--cert",
            s(&server.cert),
            "--key",
            s(&server.key),
            "--client-ca",
            s(&ca),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow"));

    let out = Command::new(binary("grpc_client"))
        .args(["--cert", s(&server.cert), "https://localhost:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing --key"));

    let out = Command::new(binary("grpc_client"))
        .args([
            "--cert",
            "/nonexistent/client.crt",
            "--key",
            "/nonexistent/client.key",
            "--ca",
            s(&ca),
            "https://localhost:1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("client.crt"));
}
