//! `mtls pki`: a PKI it makes is used unchanged by nginx (`ssl_verify_client on`,
//! `ssl_crl`), curl and Python requests; a revoked client is refused after `mtls pki
//! revoke` + `mtls pki crl`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use support::peers::https;
use support::{free_port, mtls, mtls_ok, nginx, nginx_server, require, require_python};

fn pki(dir: &Path, intermediate: bool) {
    let d = dir.to_str().unwrap();
    if intermediate {
        mtls_ok(&["pki", "init", d, "--intermediate"]);
    } else {
        mtls_ok(&["pki", "init", d]);
    }
    mtls_ok(&["pki", "issue", d, "--server", "localhost", "127.0.0.1"]);
    mtls_ok(&["pki", "issue", d, "--client", "alice", "--key", "rsa"]);
    mtls_ok(&["pki", "issue", d, "--client", "mallory", "--key", "ed25519"]);
    mtls_ok(&[
        "pki",
        "issue",
        d,
        "--client",
        "svc",
        "--spiffe",
        "spiffe://example.org/svc",
        "--ou",
        "payments",
    ]);
    let pass = dir.with_extension("pass");
    std::fs::write(&pass, "p12 secret\n").unwrap();
    mtls_ok(&[
        "pki",
        "issue",
        d,
        "--client",
        "carol",
        "--p12",
        "--password-file",
        pass.to_str().unwrap(),
    ]);
}

/// curl with the client's `.p12` (OpenSSL reads it), verifying the server with `ca`.
fn curl_p12(port: u16, ca: &Path, p12: &Path, password: &str) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .arg("--resolve")
        .arg(format!("localhost:{port}:127.0.0.1"))
        .arg("--cacert")
        .arg(ca)
        .args(["--cert-type", "P12", "--cert"])
        .arg(format!("{}:{password}", p12.display()))
        .arg(format!("https://localhost:{port}/"))
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn python_get(port: u16, ca: &Path, cert: &Path, key: &Path) -> String {
    let script = format!(
        "import requests\nr = requests.get('https://localhost:{port}/', verify={ca:?}, cert=({cert:?}, {key:?}), timeout=10)\nprint(r.status_code, r.text.strip())",
        ca = ca.to_str().unwrap(),
        cert = cert.to_str().unwrap(),
        key = key.to_str().unwrap(),
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn nginx_curl_and_python_use_the_pki_unchanged_and_a_revoked_client_is_refused() {
    for intermediate in [false, true] {
        if !require("nginx") || !require("curl") {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pki");
        pki(&dir, intermediate);
        let f = |name: &str| dir.join(name);
        let run_dir = tmp.path().join("nginx");
        std::fs::create_dir_all(&run_dir).unwrap();
        let port = free_port();
        let server = nginx_server(
            port,
            &f("localhost.crt"),
            &f("localhost.key"),
            Some(&f("ca.crt")),
            Some(&f("crl.pem")),
        );
        let daemon = nginx(&run_dir, &server, port);

        for client in ["alice", "mallory", "svc"] {
            let reply = https(
                port,
                "/",
                &f("ca.crt"),
                Some((&f(&format!("{client}.crt")), &f(&format!("{client}.key")))),
                &[],
            );
            assert_eq!(
                reply.status(),
                200,
                "intermediate={intermediate} {client}: {} / {}",
                reply.describe(),
                daemon.log_text()
            );
            assert!(
                reply.describe().contains(&format!("CN={client}")),
                "{}",
                reply.describe()
            );
        }
        // The .p12 written by `--p12`, as curl (OpenSSL) reads it.
        let got = curl_p12(port, &f("ca.crt"), &f("carol.p12"), "p12 secret");
        assert!(
            got.contains("CN=carol") && got.ends_with("200"),
            "curl with carol.p12: {got}"
        );
        // Without a client certificate nginx answers 400.
        let reply = https(port, "/", &f("ca.crt"), None, &[]);
        assert_eq!(reply.status(), 400, "{}", reply.describe());

        if require_python("requests") {
            let got = python_get(port, &f("ca.crt"), &f("alice.crt"), &f("alice.key"));
            assert!(
                got.starts_with("200 subject=CN=alice"),
                "python requests: {got}"
            );
        }
        drop(daemon);

        // Revoke mallory (by serial, as `mtls inspect` prints it), publish the CRL.
        let state: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(f("mtls-pki.json")).unwrap()).unwrap();
        let serial = state["issued"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "mallory")
            .unwrap()["serial"]
            .as_str()
            .unwrap()
            .to_owned();
        let d = dir.to_str().unwrap();
        let revoked = mtls_ok(&["pki", "revoke", d, &serial]);
        assert!(revoked.stdout.contains(&serial), "{}", revoked.stdout);
        mtls_ok(&["pki", "crl", d]);
        let daemon = nginx(&run_dir, &server, port);
        let reply = https(
            port,
            "/",
            &f("ca.crt"),
            Some((&f("mallory.crt"), &f("mallory.key"))),
            &[],
        );
        assert_eq!(reply.status(), 400, "revoked mallory: {}", reply.describe());
        assert!(
            daemon.log_text().contains("revoked"),
            "nginx's log names the revocation: {}",
            daemon.log_text()
        );
        let reply = https(
            port,
            "/",
            &f("ca.crt"),
            Some((&f("alice.crt"), &f("alice.key"))),
            &[],
        );
        assert_eq!(
            reply.status(),
            200,
            "alice after the CRL: {}",
            reply.describe()
        );
    }
}

#[test]
fn keys_are_0600_certificates_hold_no_key_and_the_extensions_are_right() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    pki(&dir, true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for key in [
            "ca.key",
            "intermediate.key",
            "localhost.key",
            "alice.key",
            "mallory.key",
            "carol.p12",
        ] {
            let mode = std::fs::metadata(dir.join(key))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{key}: {mode:o}");
        }
    }
    for cert in [
        "ca.crt",
        "intermediate.crt",
        "localhost.crt",
        "alice.crt",
        "crl.pem",
    ] {
        let text = std::fs::read_to_string(dir.join(cert)).unwrap();
        assert!(!text.contains("PRIVATE KEY"), "{cert} holds a key");
    }
    if !require("openssl") {
        return;
    }
    let text = |file: &str| {
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(dir.join(file))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let server = text("localhost.crt");
    assert!(server.contains("TLS Web Server Authentication"), "{server}");
    assert!(
        server.contains("DNS:localhost") && server.contains("IP Address:127.0.0.1"),
        "{server}"
    );
    assert!(server.contains("CA:FALSE"), "{server}");
    let client = text("alice.crt");
    assert!(client.contains("TLS Web Client Authentication"), "{client}");
    assert!(
        !client.contains("TLS Web Server Authentication"),
        "{client}"
    );
    assert!(client.contains("DNS:alice"), "{client}");
    let svc = text("svc.crt");
    assert!(
        svc.contains("URI:spiffe://example.org/svc") && svc.contains("OU = payments"),
        "{svc}"
    );
    // The chain verifies with openssl (leaf, then the intermediate in the same file).
    let out = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(dir.join("ca.crt"))
        .arg("-untrusted")
        .arg(dir.join("intermediate.crt"))
        .arg(dir.join("alice.crt"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Short leaf validity by default: 90 days.
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("mtls-pki.json")).unwrap()).unwrap();
    assert_eq!(state["issued"].as_array().unwrap().len(), 5);
}

#[test]
fn bad_arguments_exit_2_with_a_usage_line_and_every_command_has_help() {
    for args in [
        &["pki", "issue", "/nonexistent"][..],
        &["pki", "issue", "/x", "--server", "a", "--client", "b"],
        &["pki", "init"],
        &["pki", "issue", "/x", "--client", "a", "--key", "dsa"],
        &["frobnicate"],
        &["inspect"],
        &["doctor", "--frob"],
    ] {
        let run = mtls(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.text());
        assert!(run.stderr.contains("Usage:"), "{args:?}: {}", run.stderr);
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("pki");
    mtls_ok(&["pki", "init", d.to_str().unwrap()]);
    // A SAN the command cannot make is a usage error too.
    let run = mtls(&[
        "pki",
        "issue",
        d.to_str().unwrap(),
        "--client",
        "Alice Smith",
    ]);
    assert_eq!(run.code, 2, "{}", run.text());
    // A second init over the same PKI is refused.
    let run = mtls(&["pki", "init", d.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}", run.text());
    assert!(run.stderr.contains("already holds a PKI"), "{}", run.stderr);

    for args in [
        &["--help"][..],
        &["pki", "--help"],
        &["pki", "init", "--help"],
        &["pki", "issue", "--help"],
        &["pki", "revoke", "--help"],
        &["pki", "crl", "--help"],
        &["inspect", "--help"],
        &["doctor", "--help"],
    ] {
        let run = mtls(args);
        assert_eq!(run.code, 0, "{args:?}: {}", run.text());
        assert!(
            run.stdout.contains("Usage: mtls"),
            "{args:?}: {}",
            run.stdout
        );
    }
}
