//! The `axum_server` example binary, with curl as the client.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mtls_testing::TestPki;
use support::{binary, curl, curl_ok, require, start};

#[test]
fn whoami_admin_and_anonymous_under_optional_client_auth() {
    let pki = TestPki::new();
    let (_, server) = pki.server("localhost");
    let (alice_leaf, alice) = pki.client("alice");
    let (_, root) = pki.client("root-admin");
    let ca = pki.ca_file();
    let running = start(
        "axum_server",
        &[
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
        ],
    );

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
    let running = start(
        "axum_server",
        &[
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
        ],
    );
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
    // curl reads the server's alert rather than a reset: the server lingers after a
    // refusal (TLS 1.3 clients have already sent their request by then).
    for round in 0..5 {
        let out = curl(running.port, "/whoami", &ca, None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("alert certificate required"),
            "round {round}: {stderr}"
        );
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
    let running = start(
        "axum_server",
        &[
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
        ],
    );
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
    let out = Command::new(binary("axum_server"))
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
    // --forwarded: a known format, and the proxy it trusts.
    let any = [&base[..], &["--allow-any"]].concat();
    let unknown = [
        &any[..],
        &["--forwarded", "squid", "--trusted-proxy", "cn:p"],
    ]
    .concat();
    let message = run_bad(&unknown);
    assert!(
        message.contains("unknown --forwarded format `squid`"),
        "{message}"
    );
    assert!(message.contains("xfcc"), "{message}");
    let untrusted = [&any[..], &["--forwarded", "nginx"]].concat();
    assert!(run_bad(&untrusted).contains("--trusted-proxy POLICY"));
    let both = [
        &any[..],
        &[
            "--forwarded",
            "nginx",
            "--trusted-proxy",
            "cn:p",
            "--trusted-proxy-net",
            "10.0.0.0/8",
        ],
    ]
    .concat();
    assert!(run_bad(&both).contains("not both"));
    let bad_net = [
        &any[..],
        &["--forwarded", "nginx", "--trusted-proxy-net", "10.0.0.1/99"],
    ]
    .concat();
    assert!(run_bad(&bad_net).contains("bad --trusted-proxy-net value"));
    // Revocation flags.
    let ocsp = [&any[..], &["--ocsp", "sometimes"]].concat();
    assert!(run_bad(&ocsp).contains("expected leaf or chain"));
    let fail_alone = [&any[..], &["--ocsp-fail", "hard"]].concat();
    assert!(run_bad(&fail_alone).contains("go with --ocsp"));
    let fail_bad = [&any[..], &["--ocsp", "leaf", "--ocsp-fail", "maybe"]].concat();
    assert!(run_bad(&fail_bad).contains("expected soft or hard"));
    let dir_alone = [&any[..], &["--crl-cache-dir", "/tmp/x"]].concat();
    assert!(run_bad(&dir_alone).contains("--crl-url or --crl-from-dp"));
    let alone = [&any[..], &["--trusted-proxy", "cn:p"]].concat();
    assert!(run_bad(&alone).contains("go with --forwarded"));
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
    let out = Command::new(binary("axum_server"))
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("--allow SPEC") && text.contains("GET /whoami"),
        "{text}"
    );
}

#[test]
fn client_help_exits_0_too() {
    for (program, flag) in [
        ("reqwest_client", "--ca FILE"),
        ("grpc_client", "--ca FILE"),
    ] {
        let out = Command::new(binary(program))
            .arg("--help")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{program}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(flag), "{program}: {text}");
    }
}

/// `curl http://ADDR/PATH` (plain HTTP): (status, body).
fn curl_plain(addr: &str, path: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .arg(format!("http://{addr}{path}"))
        .output()
        .expect("curl is needed for this test");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "curl {path}: {stdout}");
    let (body, code) = stdout.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_owned())
}

#[test]
fn metrics_listen_serves_prometheus_metrics_and_healthz() {
    let pki = TestPki::new();
    let (server_leaf, server) = pki.server("localhost");
    let (_, alice) = pki.client("alice");
    let ca = pki.ca_file();
    let running = start(
        "axum_server",
        &[
            "--cert",
            server.cert.to_str().unwrap(),
            "--key",
            server.key.to_str().unwrap(),
            "--client-ca",
            ca.to_str().unwrap(),
            "--allow-any",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    );
    let line = running.next_line();
    let metrics = line.strip_prefix("metrics on ").expect(&line).to_owned();

    let (status, _) = curl_ok(
        running.port,
        "/whoami",
        &ca,
        Some((&alice.cert, &alice.key)),
    );
    assert_eq!(status, 200);
    // Refused in the handshake: curl fails.
    assert!(!curl(running.port, "/whoami", &ca, None).status.success());

    let accepted = r#"mtls_handshakes_total{side="server",result="accepted",reason="none""#;
    let refused = r#"mtls_handshakes_total{side="server",result="refused",reason="no_certificate""#;
    // The refusal is counted when the server's side ends (after a short linger).
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let (status, text) = curl_plain(&metrics, "/metrics");
        assert_eq!(status, 200);
        if text.contains(refused) || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(text.contains(accepted), "{text}");
    assert!(text.contains(refused), "{text}");
    assert!(
        text.contains("# TYPE mtls_handshake_duration_seconds histogram"),
        "{text}"
    );
    let expiry = r#"mtls_certificate_expiry_timestamp_seconds{side="server",role="identity""#;
    let line = text
        .lines()
        .find(|l| l.starts_with(expiry))
        .unwrap_or_else(|| panic!("no identity expiry in {text}"));
    let value: f64 = line.rsplit_once(' ').unwrap().1.parse().unwrap();
    #[allow(clippy::cast_precision_loss)]
    let not_after = server_leaf.not_after().unix_timestamp() as f64;
    assert_eq!(value, not_after, "{line}");

    // /healthz, on the metrics endpoint and over mTLS.
    for (status, body) in [
        curl_plain(&metrics, "/healthz"),
        curl_ok(
            running.port,
            "/healthz",
            &ca,
            Some((&alice.cert, &alice.key)),
        ),
    ] {
        assert_eq!(status, 200, "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["ok"], true, "{body}");
        assert_eq!(json["generation"], 1, "{body}");
        assert!(json["last_error"].is_null(), "{body}");
        assert!(json["earliest_expiry"]["not_after"].is_string(), "{body}");
    }
}

/// `--crl-url`: a CRL served by Python's http.server (revoking bob) is fetched at
/// start and enforced; `--crl-cache-dir` keeps it.
#[test]
fn crl_url_fetches_a_crl_from_python_http_server() {
    if !require("python3") {
        return;
    }
    let pki = TestPki::new();
    let (_, server) = pki.server("localhost");
    let (_, alice) = pki.client("alice");
    let (bob_leaf, bob) = pki.client("bob");
    let ca = pki.ca_file();
    let www = pki.path("www");
    let cache = pki.path("crl-cache");
    std::fs::create_dir(&www).unwrap();
    std::fs::write(www.join("ca.crl"), pki.intermediate.crl(&[&bob_leaf]).pem()).unwrap();
    let port = support::free_port();
    let mut http = Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .current_dir(&www)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/ca.crl");
    // Python first, so that the server's first fetch (at start) finds it.
    let up = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < up, "python3 -m http.server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let running = start(
        "axum_server",
        &[
            "--cert",
            server.cert.to_str().unwrap(),
            "--key",
            server.key.to_str().unwrap(),
            "--client-ca",
            ca.to_str().unwrap(),
            "--allow-any",
            "--crl-url",
            &url,
            "--crl-cache-dir",
            cache.to_str().unwrap(),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = curl(running.port, "/whoami", &ca, Some((&bob.cert, &bob.key)));
        if !out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "bob still admitted: {url} not enforced"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, _) = curl_ok(
        running.port,
        "/whoami",
        &ca,
        Some((&alice.cert, &alice.key)),
    );
    assert_eq!(status, 200);
    assert_eq!(
        std::fs::read_dir(&cache).unwrap().count(),
        1,
        "the CRL is cached"
    );
    let _ = http.kill();
    let _ = http.wait();
}
