//! Authorization policies enforced during the handshake, over real loopback TLS: for each
//! kind one certificate that passes and one that is refused before any application code
//! runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{ask, capture_logs, serve};
use mtls::{Client, Policy, Server};
use mtls_testing::{LeafBuilder, TestPki};

/// Builds a server with `policy`, connects with the leaf `make` builds, and returns
/// whether the connection got an answer from the application.
async fn admitted(
    pki: &TestPki,
    policy: &Policy,
    make: impl FnOnce(&TestPki) -> LeafBuilder<'_>,
) -> bool {
    let (_, sf) = pki.server("localhost");
    let server = Server::builder()
        .identity(&sf.cert, &sf.key)
        .client_ca(pki.ca_file())
        .policy(policy.clone())
        .build()
        .unwrap();
    let srv = serve(&server).await;
    let leaf = make(pki).client().build();
    let name = format!("c{}", rand_suffix());
    let files = leaf.write(pki.dir.path(), &name);
    let client = Client::builder()
        .identity(files.cert, files.key)
        .ca(pki.ca_file())
        .build()
        .unwrap();
    match ask(&client, srv.addr).await {
        Ok(line) => {
            assert!(line.contains("CN="), "{line}");
            true
        }
        Err(_) => false,
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn p(s: &str) -> Policy {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// (policy, a leaf it admits, a leaf it refuses)
type Case = (
    &'static str,
    fn(&TestPki) -> LeafBuilder<'_>,
    fn(&TestPki) -> LeafBuilder<'_>,
);

#[tokio::test]
async fn every_policy_kind_admits_one_and_refuses_another_at_the_handshake() {
    let pki = TestPki::new();
    let cases: Vec<Case> = vec![
        (
            "cn:svc-a",
            |k| k.intermediate.leaf("svc-a"),
            |k| k.intermediate.leaf("svc-b"),
        ),
        (
            "dns:api.svc.local",
            |k| k.intermediate.leaf("x").dns("api.svc.local"),
            |k| k.intermediate.leaf("x").dns("web.svc.local"),
        ),
        (
            "dns:*.svc.local",
            |k| k.intermediate.leaf("x").dns("api.svc.local"),
            |k| {
                // A wildcard matches exactly one label.
                k.intermediate.leaf("x").dns("a.b.svc.local")
            },
        ),
        (
            "ip:10.1.2.3",
            |k| k.intermediate.leaf("x").ip("10.1.2.3".parse().unwrap()),
            |k| k.intermediate.leaf("x").ip("10.1.2.4".parse().unwrap()),
        ),
        (
            "ip:10.0.0.0/8",
            |k| k.intermediate.leaf("x").ip("10.9.9.9".parse().unwrap()),
            |k| k.intermediate.leaf("x").ip("11.0.0.1".parse().unwrap()),
        ),
        (
            "uri:urn:example:svc-a",
            |k| k.intermediate.leaf("x").uri("urn:example:svc-a"),
            |k| k.intermediate.leaf("x").uri("urn:example:svc-b"),
        ),
        (
            "email:ops@example.org",
            |k| k.intermediate.leaf("x").email("ops@example.org"),
            |k| k.intermediate.leaf("x").email("dev@example.org"),
        ),
        (
            "spiffe:prod.example.org",
            |k| {
                k.intermediate
                    .leaf("x")
                    .uri("spiffe://prod.example.org/ns/a/sa/b")
            },
            |k| {
                k.intermediate
                    .leaf("x")
                    .uri("spiffe://dev.example.org/ns/a/sa/b")
            },
        ),
        (
            "spiffe:spiffe://prod.example.org/ns/api/sa/api",
            |k| {
                k.intermediate
                    .leaf("x")
                    .uri("spiffe://prod.example.org/ns/api/sa/api")
            },
            |k| {
                k.intermediate
                    .leaf("x")
                    .uri("spiffe://prod.example.org/ns/api/sa/other")
            },
        ),
        (
            "spiffe-prefix:spiffe://prod.example.org/ns/prod",
            |k| {
                k.intermediate
                    .leaf("x")
                    .uri("spiffe://prod.example.org/ns/prod/sa/x")
            },
            |k| {
                k.intermediate
                    .leaf("x")
                    .uri("spiffe://prod.example.org/ns/production/sa/x")
            },
        ),
        // A URI that looks like SPIFFE but is malformed carries no SPIFFE ID.
        (
            "spiffe:prod.example.org",
            |k| k.intermediate.leaf("x").uri("spiffe://prod.example.org/ok"),
            |k| {
                k.intermediate
                    .leaf("x")
                    .uri("spiffe://prod.example.org/a//b")
            },
        ),
        // Two SPIFFE IDs: none is taken.
        (
            "spiffe:prod.example.org",
            |k| {
                k.intermediate
                    .leaf("x")
                    .uri("spiffe://prod.example.org/one")
            },
            |k| {
                k.intermediate
                    .leaf("x")
                    .uri("spiffe://prod.example.org/one")
                    .uri("spiffe://prod.example.org/two")
            },
        ),
        (
            "o:Payments Inc",
            |k| k.intermediate.leaf("x").organization("Payments Inc"),
            |k| k.intermediate.leaf("x").organization("Other Inc"),
        ),
        (
            "ou:backend",
            |k| {
                k.intermediate
                    .leaf("x")
                    .org_unit("frontend")
                    .org_unit("backend")
            },
            |k| k.intermediate.leaf("x").org_unit("frontend"),
        ),
        (
            "issuer:CN=mtls-testing intermediate",
            |k| k.intermediate.leaf("x"),
            |k| {
                // Issued by the root directly, not by the intermediate.
                k.root.leaf("x")
            },
        ),
        (
            "any(cn:a, cn:b)",
            |k| k.intermediate.leaf("b"),
            |k| k.intermediate.leaf("c"),
        ),
        (
            "all(spiffe:prod.example.org, ou:backend)",
            |k| {
                k.intermediate
                    .leaf("x")
                    .uri("spiffe://prod.example.org/s")
                    .org_unit("backend")
            },
            |k| {
                k.intermediate
                    .leaf("x")
                    .uri("spiffe://prod.example.org/s")
                    .org_unit("frontend")
            },
        ),
        (
            "all(dns:*.svc.local, not(cn:blocked))",
            |k| k.intermediate.leaf("ok").dns("a.svc.local"),
            |k| k.intermediate.leaf("blocked").dns("a.svc.local"),
        ),
    ];
    for (spec, good, bad) in cases {
        let policy = p(spec);
        assert!(
            admitted(&pki, &policy, good).await,
            "{spec}: the matching certificate was refused"
        );
        assert!(
            !admitted(&pki, &policy, bad).await,
            "{spec}: the other certificate was admitted"
        );
    }
}

#[tokio::test]
async fn fingerprint_pins_admit_only_the_pinned_certificate() {
    let pki = TestPki::new();
    let (pinned, pf) = pki.client("pinned");
    let (_, of) = pki.client("other");
    let der = mtls::pem::load_certs(&pf.cert).unwrap();
    let id = mtls::PeerIdentity::from_chain(&der).unwrap();
    let _ = pinned;
    for spec in [
        format!("sha256:{}", id.fingerprint_sha256()),
        format!("spki-sha256:{}", id.spki_sha256()),
    ] {
        let (_, sf) = pki.server("localhost");
        let server = Server::builder()
            .identity(&sf.cert, &sf.key)
            .client_ca(pki.ca_file())
            .policy(p(&spec))
            .build()
            .unwrap();
        let srv = serve(&server).await;
        for (files, want) in [(&pf, true), (&of, false)] {
            let c = Client::builder()
                .identity(&files.cert, &files.key)
                .ca(pki.ca_file())
                .build()
                .unwrap();
            assert_eq!(ask(&c, srv.addr).await.is_ok(), want, "{spec}");
        }
    }
}

#[tokio::test]
async fn a_refusal_names_the_rule_in_the_server_log_only() {
    let (logs, _g) = capture_logs();
    let pki = TestPki::new();
    let admitted_ = admitted(&pki, &p("cn:admin"), |k| k.intermediate.leaf("intruder")).await;
    assert!(!admitted_);
    assert!(
        common::eventually(5, async || {
            let t = logs.text();
            t.contains("reason=\"policy\"") && t.contains("cn:admin") && t.contains("CN=intruder")
        })
        .await,
        "{}",
        logs.text()
    );
}

/// The acceptor's error for a refusal during the handshake knows only the alert; it says
/// so, and its message is not repeated by its source chain.
#[tokio::test]
async fn a_refusal_in_the_handshake_is_access_denied_in_the_handshake_error() {
    use tokio::io::AsyncReadExt;

    let pki = TestPki::new();
    let (_, sf) = pki.server("localhost");
    let server = Server::builder()
        .identity(&sf.cert, &sf.key)
        .client_ca(pki.ca_file())
        .policy(p("cn:admin"))
        .build()
        .unwrap();
    let (_, cf) = pki.client("intruder");
    let client = Client::builder()
        .identity(&cf.cert, &cf.key)
        .ca(pki.ca_file())
        .build()
        .unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("localhost:{}", tcp.local_addr().unwrap().port());
    let acceptor = server.acceptor();
    let accept = async {
        let (io, _) = tcp.accept().await.unwrap();
        acceptor.accept(io).await
    };
    let connect = async {
        // Under TLS 1.3 the client may finish first; read until the server's alert.
        if let Ok(mut tls) = client.connect(&addr).await {
            let _ = tls.read(&mut [0; 16]).await;
        }
    };
    let (accepted, ()) = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        tokio::join!(accept, connect)
    })
    .await
    .unwrap();
    let err = accepted.map(|_| ()).unwrap_err();
    assert!(
        matches!(
            &err,
            mtls::HandshakeError::Tls {
                rejection: Some(mtls::Rejection::ApplicationDenied),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("policy refusal"), "{err}");
    assert!(std::error::Error::source(&err).is_none(), "{err:?}");
}

#[tokio::test]
async fn the_client_authorizes_the_server_by_policy() {
    let pki = TestPki::new();
    let (_, cf) = pki.client("me");
    for (server_uri, policy, want) in [
        (
            "spiffe://prod.example.org/ns/api/sa/api",
            "spiffe:spiffe://prod.example.org/ns/api/sa/api",
            true,
        ),
        (
            "spiffe://prod.example.org/ns/api/sa/evil",
            "spiffe:spiffe://prod.example.org/ns/api/sa/api",
            false,
        ),
        (
            "spiffe://prod.example.org/ns/api/sa/api",
            "dns:localhost",
            true,
        ),
    ] {
        let leaf = pki
            .intermediate
            .leaf("api")
            .dns("localhost")
            .uri(server_uri)
            .server()
            .build();
        let sf = leaf.write(pki.dir.path(), &format!("srv{}", rand_suffix()));
        let server = Server::builder()
            .identity(&sf.cert, &sf.key)
            .client_ca(pki.ca_file())
            .policy(Policy::any_verified())
            .build()
            .unwrap();
        let srv = serve(&server).await;
        let client = Client::builder()
            .identity(&cf.cert, &cf.key)
            .ca(pki.ca_file())
            .server_policy(p(policy))
            .build()
            .unwrap();
        let got = ask(&client, srv.addr).await;
        assert_eq!(got.is_ok(), want, "{server_uri} vs {policy}: {got:?}");
        if !want {
            let err = got.unwrap_err();
            assert!(
                err.contains("ApplicationVerificationFailure")
                    || err.contains("invalid peer certificate"),
                "{err}"
            );
        }
    }
}

#[test]
fn policy_strings_round_trip_and_bad_ones_explain_themselves() {
    for s in [
        "cn:a",
        "any(cn:a, dns:*.svc.local, spiffe:prod.example.org)",
        "all(ou:backend, not(cn:blocked))",
        "issuer:\"CN=Fixture Intermediate CA, O=mtls fixtures\"",
    ] {
        let policy = p(s);
        let shown = policy.to_string();
        assert_eq!(p(&shown).to_string(), shown, "{s}");
    }
    for (bad, says) in [
        ("colour:blue", "colour"),
        ("cn:", "cn"),
        ("ip:10.0.0.300", "10.0.0.300"),
        ("sha256:zz", "zz"),
        ("any(cn:a", ")"),
        ("spiffe:Bad_Domain", "Bad_Domain"),
    ] {
        let e = bad.parse::<Policy>().unwrap_err().to_string();
        assert!(e.contains(says), "{bad}: {e}");
    }
}

/// Deny rules fail closed over a real handshake: a certificate with two `spiffe://evil…`
/// URI SANs has no readable SPIFFE ID, so `not(spiffe:evil.example)` cannot clear it, and
/// an IPv4-mapped IPv6 SAN is inside the IPv4 network a deny rule names.
#[tokio::test]
async fn deny_rules_fail_closed_at_the_handshake() {
    fn two_evil(pki: &TestPki) -> LeafBuilder<'_> {
        pki.intermediate
            .leaf("mallory")
            .uri("spiffe://evil.example/a")
            .uri("spiffe://evil.example/b")
    }
    fn good(pki: &TestPki) -> LeafBuilder<'_> {
        pki.intermediate
            .leaf("alice")
            .uri("spiffe://good.example/a")
    }
    fn mapped(pki: &TestPki) -> LeafBuilder<'_> {
        pki.intermediate
            .leaf("mapped")
            .ip("::ffff:10.1.2.3".parse().unwrap())
    }
    fn outside(pki: &TestPki) -> LeafBuilder<'_> {
        pki.intermediate
            .leaf("outside")
            .ip("192.0.2.7".parse().unwrap())
    }
    let pki = TestPki::new();
    let deny_evil = p("all(any, not(spiffe:evil.example))");
    assert!(!admitted(&pki, &deny_evil, two_evil).await);
    assert!(admitted(&pki, &deny_evil, good).await);
    let deny_ten = p("all(any, not(ip:10.0.0.0/8))");
    assert!(!admitted(&pki, &deny_ten, mapped).await);
    assert!(admitted(&pki, &deny_ten, outside).await);
}
