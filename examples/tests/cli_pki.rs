//! A PKI made by the `mtls` command (`mtls pki`, crate mtls-cli) used unchanged by the
//! `axum_server` example and curl; a client revoked with `mtls pki revoke` + `mtls pki
//! crl` is refused. The `mtls` binary is the workspace's (`target/debug/mtls`), which
//! `cargo test --workspace` builds before running any test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{curl, curl_ok, start};

/// `target/debug/mtls`, or `None` (skipped, or failed under `MTLS_REQUIRE_PEERS=1`).
fn mtls_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let bin = dir.join(format!("mtls{}", std::env::consts::EXE_SUFFIX));
    if bin.exists() {
        return Some(bin);
    }
    assert!(
        std::env::var("MTLS_REQUIRE_PEERS").as_deref() != Ok("1"),
        "{} is missing (MTLS_REQUIRE_PEERS=1): run `cargo build -p mtls-cli` first",
        bin.display()
    );
    println!(
        "skipped: {} not built (cargo build -p mtls-cli)",
        bin.display()
    );
    None
}

fn run(bin: &Path, args: &[&str]) {
    let out = Command::new(bin).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "mtls {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn axum_server_serves_a_pki_made_by_mtls_pki_and_refuses_a_revoked_client() {
    let Some(bin) = mtls_binary() else { return };
    // Under the target's test directory, one per run (a leftover of an earlier run is
    // replaced: `mtls pki init` refuses a directory that holds a PKI).
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("mtls-cli-pki-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().unwrap();
    run(&bin, &["pki", "init", d, "--intermediate"]);
    run(
        &bin,
        &["pki", "issue", d, "--server", "localhost", "127.0.0.1"],
    );
    run(
        &bin,
        &[
            "pki",
            "issue",
            d,
            "--client",
            "alice",
            "--spiffe",
            "spiffe://example.org/alice",
        ],
    );
    run(
        &bin,
        &["pki", "issue", d, "--client", "bob", "--key", "rsa"],
    );
    let f = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let args = [
        "--cert",
        &f("localhost.crt"),
        "--key",
        &f("localhost.key"),
        "--client-ca",
        &f("ca.crt"),
        "--crl",
        &f("crl.pem"),
        "--allow",
        "spiffe:example.org",
        "--allow",
        "cn:bob",
    ];
    let ca = dir.join("ca.crt");
    let alice = (dir.join("alice.crt"), dir.join("alice.key"));
    let bob = (dir.join("bob.crt"), dir.join("bob.key"));
    {
        let server = start("axum_server", &args);
        let (status, body) = curl_ok(server.port, "/whoami", &ca, Some((&alice.0, &alice.1)));
        assert_eq!(status, 200, "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["spiffe_id"], "spiffe://example.org/alice");
        let (status, body) = curl_ok(server.port, "/whoami", &ca, Some((&bob.0, &bob.1)));
        assert_eq!(status, 200, "{body}");
    }
    run(&bin, &["pki", "revoke", d, "bob"]);
    run(&bin, &["pki", "crl", d]);
    let server = start("axum_server", &args);
    let out = curl(server.port, "/whoami", &ca, Some((&bob.0, &bob.1)));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() || !stdout.ends_with("200"),
        "revoked bob was served: {stdout}"
    );
    let (status, body) = curl_ok(server.port, "/whoami", &ca, Some((&alice.0, &alice.1)));
    assert_eq!(status, 200, "{body}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
