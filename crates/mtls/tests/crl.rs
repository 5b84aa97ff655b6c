//! CRLs in force cannot be rolled back, dropped, or replaced by one that covers nothing,
//! and a stale CRL is reported: over real loopback TLS, a reload that would un-revoke a
//! client is refused and the client stays refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{ask, serve};
use mtls::{Client, Error, Policy, ReloadEvent, Server};
use mtls_testing::{Ca, Crl, Leaf, TestPki};
use time::OffsetDateTime;

fn client_of(pki: &TestPki, leaf: &Leaf, name: &str) -> Client {
    let files = leaf.write(pki.dir.path(), name);
    Client::builder()
        .identity(files.cert, files.key)
        .ca(pki.ca_file())
        .build()
        .unwrap()
}

fn server(pki: &TestPki, crl: &Path) -> mtls::ServerBuilder {
    let (_, sf) = pki.server("localhost");
    Server::builder()
        .identity(&sf.cert, &sf.key)
        .client_ca(pki.ca_file())
        .crl(crl)
        .policy(Policy::any_verified())
}

fn crl(ca: &Ca, revoked: &[&Leaf], this_update: OffsetDateTime, number: u64) -> Crl {
    let serials: Vec<Vec<u8>> = revoked.iter().map(|l| l.serial()).collect();
    let serials: Vec<&[u8]> = serials.iter().map(Vec::as_slice).collect();
    ca.crl_with(
        &serials,
        this_update,
        OffsetDateTime::now_utc() + time::Duration::days(7),
        number,
    )
}

#[tokio::test]
async fn an_older_crl_is_refused_and_the_revocation_in_force_stays() {
    let pki = TestPki::new();
    let alice = pki.intermediate.leaf("alice").client().build();
    let bob = pki.intermediate.leaf("bob").client().build();
    let path = pki.dir.path().join("crl.pem");
    let hour_ago = OffsetDateTime::now_utc() - time::Duration::hours(1);
    std::fs::write(&path, crl(&pki.intermediate, &[], hour_ago, 1).pem()).unwrap();
    let server = server(&pki, &path).build().unwrap();
    let srv = serve(&server).await;
    let (alice_client, bob_client) = (
        client_of(&pki, &alice, "alice"),
        client_of(&pki, &bob, "bob"),
    );
    assert!(ask(&alice_client, srv.addr).await.is_ok());

    // CRL 2 revokes alice.
    std::fs::write(&path, crl(&pki.intermediate, &[&alice], hour_ago, 2).pem()).unwrap();
    server.handle().reload().unwrap();
    assert!(ask(&alice_client, srv.addr).await.is_err());

    // Rolling back to CRL 1 (a replayed older file) is refused; alice stays revoked.
    std::fs::write(&path, crl(&pki.intermediate, &[], hour_ago, 1).pem()).unwrap();
    let err = server.handle().reload().unwrap_err();
    assert!(matches!(*err, Error::CrlRollback { .. }), "{err}");
    assert!(err.to_string().contains("CRL number 1"), "{err}");
    assert!(err.to_string().contains("crl.pem"), "{err}");
    assert!(ask(&alice_client, srv.addr).await.is_err());
    assert!(ask(&bob_client, srv.addr).await.is_ok());

    // The same number with an earlier thisUpdate is older too.
    let earlier = hour_ago - time::Duration::hours(1);
    std::fs::write(&path, crl(&pki.intermediate, &[], earlier, 2).pem()).unwrap();
    let err = server.handle().reload().unwrap_err();
    assert!(matches!(*err, Error::CrlRollback { .. }), "{err}");
    assert!(ask(&alice_client, srv.addr).await.is_err());

    // A newer CRL is taken.
    std::fs::write(&path, crl(&pki.intermediate, &[], hour_ago, 3).pem()).unwrap();
    server.handle().reload().unwrap();
    assert!(ask(&alice_client, srv.addr).await.is_ok());
}

#[tokio::test]
async fn dropping_the_crl_of_a_trusted_ca_is_refused() {
    let pki = TestPki::new();
    let path = pki.dir.path().join("crls.pem");
    let root_crl = pki.root.crl(&[]).pem();
    let inter_crl = pki.intermediate.crl(&[]).pem();
    std::fs::write(&path, format!("{root_crl}{inter_crl}")).unwrap();
    let server = server(&pki, &path).build().unwrap();
    // The file now holds only the intermediate's CRL: the root's revocations would go.
    std::fs::write(&path, &inter_crl).unwrap();
    let err = server.handle().reload().unwrap_err();
    assert!(matches!(*err, Error::CrlMissing { .. }), "{err}");
    assert!(err.to_string().contains("crls.pem"), "{err}");
    assert_eq!(server.handle().status().crls.len(), 2);
}

#[tokio::test]
async fn a_crl_that_covers_none_of_the_cas_is_an_error() {
    let pki = TestPki::new();
    let stranger = Ca::root("Unrelated CA");
    let path = stranger.crl(&[]).write(pki.dir.path(), "unrelated.crl");
    let err = server(&pki, &path)
        .allow_unknown_revocation_status()
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::CrlIssuerUnknown { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("unrelated.crl") && msg.contains("Unrelated CA"),
        "{msg}"
    );
}

#[tokio::test]
async fn an_expired_crl_is_reported_and_refused_under_enforce_crl_expiry() {
    let pki = TestPki::new();
    let now = OffsetDateTime::now_utc();
    let stale = pki.intermediate.crl_with(
        &[],
        now - time::Duration::days(8),
        now - time::Duration::days(1),
        1,
    );
    let path = stale.write(pki.dir.path(), "stale.crl");

    let err = server(&pki, &path)
        .enforce_crl_expiry()
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::CrlExpired { .. }), "{err}");
    assert!(err.to_string().contains("stale.crl"), "{err}");

    // Without the option it loads, and says so.
    let server = server(&pki, &path).build().unwrap();
    let mut events = server.handle().subscribe();
    server.handle().check_expiry();
    let event = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            if let Ok(e @ ReloadEvent::CrlStale { .. }) = events.recv().await {
                return e;
            }
        }
    })
    .await
    .expect("no CrlStale event");
    let ReloadEvent::CrlStale {
        issuer, expired, ..
    } = event
    else {
        unreachable!()
    };
    assert!(expired);
    assert!(issuer.contains(pki.intermediate.common_name()), "{issuer}");
}
