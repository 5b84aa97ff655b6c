//! `MetricsObserver` over real loopback TLS, read back through the Prometheus exporter's
//! text format: each kind of client moves `mtls_handshakes_total` with its reason, reloads
//! move `mtls_reloads_total`, and the expiry gauge follows a rotation.
//!
//! Each test runs on a current-thread runtime inside `metrics::with_local_recorder`, so
//! the handshake tasks record into that test's own recorder.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::future::Future;
use std::sync::Arc;

use common::{ask, ask_raw, eventually, raw_client, serve, write_atomic};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use mtls::metrics::MetricsObserver;
use mtls::{Client, Policy, Server};
use mtls_testing::{Ca, TestPki};
use time::OffsetDateTime;

/// Runs `f` with a fresh Prometheus recorder; `f` gets the handle that renders it.
fn with_recorder<F, Fut>(f: F)
where
    F: FnOnce(PrometheusHandle) -> Fut,
    Fut: Future<Output = ()>,
{
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f(handle));
    });
}

/// One sample of the text format: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let value = match value {
                "NaN" => f64::NAN,
                v => v.parse().unwrap(),
            };
            let Some((name, rest)) = series.split_once('{') else {
                return Sample {
                    name: series.to_owned(),
                    labels: Vec::new(),
                    value,
                };
            };
            let mut labels = Vec::new();
            let mut chars = rest.strip_suffix('}').unwrap().chars().peekable();
            while chars.peek().is_some() {
                let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
                assert_eq!(chars.next(), Some('"'), "{line}");
                let mut val = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => val.push(chars.next().unwrap()),
                        '"' => break,
                        c => val.push(c),
                    }
                }
                if chars.peek() == Some(&',') {
                    chars.next();
                }
                labels.push((key, val));
            }
            Sample {
                name: name.to_owned(),
                labels,
                value,
            }
        })
        .collect()
}

/// The sum of `name`'s samples whose labels include all of `want`.
fn value(handle: &PrometheusHandle, name: &str, want: &[(&str, &str)]) -> f64 {
    parse(&handle.render())
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            want.iter()
                .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|s| s.value)
        .sum()
}

fn refused(handle: &PrometheusHandle, reason: &str) -> f64 {
    value(
        handle,
        "mtls_handshakes_total",
        &[
            ("side", "server"),
            ("result", "refused"),
            ("reason", reason),
        ],
    )
}

#[test]
fn each_kind_of_client_moves_the_handshake_counter_with_its_reason() {
    with_recorder(|metrics| async move {
        let pki = TestPki::new();
        let dir = pki.dir.path();
        let bob = pki.intermediate.leaf("bob").client().build();
        let crl = dir.join("crl.pem");
        std::fs::write(&crl, pki.intermediate.crl(&[&bob]).pem()).unwrap();
        let (_, sf) = pki.server("localhost");
        let observer = Arc::new(MetricsObserver::new());
        let server = Server::builder()
            .identity(&sf.cert, &sf.key)
            .client_ca(pki.ca_file())
            .crl(&crl)
            .policy(Policy::common_name(["alice", "bob", "eve"]))
            .observer(observer.clone())
            .build()
            .unwrap();
        let srv = serve(&server).await;

        let ca = pki.ca_file();
        let (_, alice) = pki.client("alice");
        let good = Client::builder()
            .identity(&alice.cert, &alice.key)
            .ca(&ca)
            .observer(observer.clone())
            .build()
            .unwrap();
        assert!(ask(&good, srv.addr).await.is_ok());

        // Clients our builder would stop before they connect: raw rustls configs.
        let bob_files = bob.write(dir, "bob");
        let eve = pki.intermediate.leaf("eve").client().expired().build();
        let eve_files = eve.write(dir, "eve");
        let (_, carol) = pki.client("carol");
        let other = Ca::root("Other Root");
        let mallory = other.leaf("mallory").client().build().write(dir, "mallory");
        let cases = [
            ("no_certificate", None),
            ("unknown_issuer", Some(&mallory)),
            ("revoked", Some(&bob_files)),
            ("expired", Some(&eve_files)),
            ("policy", Some(&carol)),
        ];
        for (reason, files) in cases {
            let config = raw_client(&ca, files.map(|f| (f.cert.as_path(), f.key.as_path())));
            assert!(ask_raw(config, srv.addr).await.is_err(), "{reason}");
            // The server reports when its side of the handshake ends (after lingering).
            assert!(
                eventually(5, async || refused(&metrics, reason) == 1.0).await,
                "{reason}: {}",
                metrics.render()
            );
        }

        let accepted = [("result", "accepted"), ("reason", "none")];
        assert_eq!(
            value(
                &metrics,
                "mtls_handshakes_total",
                &[&[("side", "server")], &accepted[..]].concat()
            ),
            1.0
        );
        assert_eq!(
            value(
                &metrics,
                "mtls_handshakes_total",
                &[
                    ("side", "client"),
                    ("result", "accepted"),
                    ("version", "TLSv1.3")
                ]
            ),
            1.0
        );
        // Six server handshakes in all, none left in flight, and a duration for each.
        let text = metrics.render();
        assert_eq!(
            value(&metrics, "mtls_handshakes_total", &[("side", "server")]),
            6.0,
            "{text}"
        );
        assert_eq!(
            value(&metrics, "mtls_handshakes_in_flight", &[("side", "server")]),
            0.0,
            "{text}"
        );
        assert_eq!(
            value(
                &metrics,
                "mtls_handshake_duration_seconds_count",
                &[("side", "server")]
            ),
            6.0,
            "{text}"
        );
        // No peer name reaches a label of the handshake counter.
        for s in parse(&text)
            .iter()
            .filter(|s| s.name == "mtls_handshakes_total")
        {
            for (_, v) in &s.labels {
                assert!(
                    !["alice", "bob", "eve", "carol", "mallory"]
                        .iter()
                        .any(|n| v.contains(n)),
                    "{s:?}"
                );
            }
        }
    });
}

#[test]
fn reloads_move_the_reload_counter_and_the_expiry_gauge_follows_a_rotation() {
    with_recorder(|metrics| async move {
        let pki = TestPki::new();
        let dir = pki.dir.path();
        let (first, sf) = pki.server("localhost");
        let server = Server::builder()
            .identity(&sf.cert, &sf.key)
            .client_ca(pki.ca_file())
            .policy(Policy::any_verified())
            .observer(MetricsObserver::new())
            .build()
            .unwrap();
        let identity = |serial: &str| {
            value(
                &metrics,
                "mtls_certificate_expiry_timestamp_seconds",
                &[("side", "server"), ("role", "identity"), ("serial", serial)],
            )
        };
        let serial_of = |leaf: &mtls_testing::Leaf| {
            mtls::PeerIdentity::from_chain(&[leaf.cert_der().into()])
                .unwrap()
                .serial()
                .to_owned()
        };
        let first_serial = serial_of(&first);
        #[allow(clippy::cast_precision_loss)]
        let first_expiry = first.not_after().unix_timestamp() as f64;
        assert_eq!(
            identity(&first_serial),
            first_expiry,
            "{}",
            metrics.render()
        );
        let ca_series = value(
            &metrics,
            "mtls_certificate_expiry_timestamp_seconds",
            &[("side", "server"), ("role", "ca")],
        );
        assert!(ca_series > 0.0, "{}", metrics.render());

        // A failed reload: the key file is garbage.
        let key = std::fs::read(&sf.key).unwrap();
        write_atomic(&sf.key, b"not a key");
        assert!(server.handle().reload().is_err());
        let failures = [("side", "server"), ("result", "failure")];
        assert_eq!(value(&metrics, "mtls_reloads_total", &failures), 1.0);
        assert!(value(&metrics, "mtls_reload_last_failure_timestamp_seconds", &[]) > 0.0);
        // The material in force did not change.
        assert_eq!(identity(&first_serial), first_expiry);
        write_atomic(&sf.key, &key);

        // Rotation to a certificate with another notAfter.
        let now = OffsetDateTime::now_utc();
        let next = pki
            .intermediate
            .leaf("localhost")
            .dns("localhost")
            .server()
            .validity(
                now - time::Duration::hours(1),
                now + time::Duration::days(9),
            )
            .build();
        let files = next.write(dir, "next");
        std::fs::rename(&files.cert, &sf.cert).unwrap();
        std::fs::rename(&files.key, &sf.key).unwrap();
        assert_eq!(server.handle().reload().unwrap(), 2);
        let successes = [("side", "server"), ("result", "success")];
        assert_eq!(value(&metrics, "mtls_reloads_total", &successes), 1.0);
        assert_eq!(
            value(&metrics, "mtls_reload_generation", &[("side", "server")]),
            2.0
        );
        #[allow(clippy::cast_precision_loss)]
        let next_expiry = next.not_after().unix_timestamp() as f64;
        assert_eq!(
            identity(&serial_of(&next)),
            next_expiry,
            "{}",
            metrics.render()
        );
        // The old certificate's series is retired: NaN, so alert comparisons are false.
        assert!(identity(&first_serial).is_nan(), "{}", metrics.render());

        // The health view says the same.
        let health = server.handle().health();
        assert!(health.ok, "{health:?}");
        assert_eq!(health.generation, 2);
        assert!(health.last_failure.is_some());
        assert!(health.last_error.is_none());
        let earliest = health.earliest_expiry.unwrap();
        assert_eq!(earliest.serial, serial_of(&next));
    });
}

#[test]
fn a_failed_reload_shows_in_the_health_view_with_its_file() {
    let pki = TestPki::new();
    let (_, sf) = pki.server("localhost");
    let server = Server::builder()
        .identity(&sf.cert, &sf.key)
        .client_ca(pki.ca_file())
        .policy(Policy::any_verified())
        .build()
        .unwrap();
    assert!(server.handle().health().ok);
    write_atomic(&sf.cert, b"garbage");
    assert!(server.handle().reload().is_err());
    let health = server.handle().health();
    assert!(!health.ok);
    let error = health.last_error.unwrap();
    assert_eq!(error.file.as_deref(), Some(sf.cert.as_path()), "{error:?}");
    assert!(error.message.contains("localhost"), "{}", error.message);
}

#[test]
fn servers_sharing_an_observer_keep_their_own_expiry_series() {
    with_recorder(|metrics| async move {
        let pki = TestPki::new();
        let observer = Arc::new(MetricsObserver::new());
        let (a_leaf, a) = pki.server("a.localhost");
        let (_, b) = pki.server("b.localhost");
        let build = |files: &mtls_testing::LeafFiles| {
            Server::builder()
                .identity(&files.cert, &files.key)
                .client_ca(pki.ca_file())
                .policy(Policy::any_verified())
                .observer(observer.clone())
                .build()
                .unwrap()
        };
        let (_server_a, server_b) = (build(&a), build(&b));
        let serial_a = mtls::PeerIdentity::from_chain(&[a_leaf.cert_der().into()])
            .unwrap()
            .serial()
            .to_owned();
        let a_expiry = || {
            value(
                &metrics,
                "mtls_certificate_expiry_timestamp_seconds",
                &[("role", "identity"), ("serial", &serial_a)],
            )
        };
        assert!(a_expiry() > 0.0, "{}", metrics.render());
        // B rotates: only B's old certificate is retired; A's and the shared CA's stay.
        let (_, next) = pki.server("b.localhost");
        std::fs::rename(&next.cert, &b.cert).unwrap();
        std::fs::rename(&next.key, &b.key).unwrap();
        server_b.handle().reload().unwrap();
        assert!(a_expiry() > 0.0, "{}", metrics.render());
        let ca = value(
            &metrics,
            "mtls_certificate_expiry_timestamp_seconds",
            &[("role", "ca")],
        );
        assert!(ca > 0.0, "{}", metrics.render());
    });
}

#[test]
fn a_named_observer_labels_its_series() {
    with_recorder(|metrics| async move {
        let pki = TestPki::new();
        let (_, files) = pki.server("localhost");
        let _server = Server::builder()
            .identity(&files.cert, &files.key)
            .client_ca(pki.ca_file())
            .policy(Policy::any_verified())
            .observer(MetricsObserver::named("public"))
            .build()
            .unwrap();
        let generation = value(
            &metrics,
            "mtls_reload_generation",
            &[("side", "server"), ("name", "public")],
        );
        assert_eq!(generation, 1.0, "{}", metrics.render());
        // The reload counters exist from the start, at zero.
        assert!(
            metrics
                .render()
                .contains(r#"mtls_reloads_total{side="server",result="failure",trust="unchanged",name="public"} 0"#),
            "{}",
            metrics.render()
        );
    });
}

#[test]
fn a_client_counts_the_servers_it_refuses() {
    with_recorder(|metrics| async move {
        let pki = TestPki::new();
        let sf = Ca::root("Other Root")
            .leaf("localhost")
            .dns("localhost")
            .server()
            .build()
            .write(pki.dir.path(), "other-server");
        let server = Server::builder()
            .identity(&sf.cert, &sf.key)
            .client_ca(pki.ca_file())
            .policy(Policy::any_verified())
            .check_identity_chain(false)
            .build()
            .unwrap();
        let srv = serve(&server).await;
        let (_, alice) = pki.client("alice");
        let client = Client::builder()
            .identity(&alice.cert, &alice.key)
            .ca(pki.ca_file())
            .observer(MetricsObserver::new())
            .build()
            .unwrap();
        assert!(ask(&client, srv.addr).await.is_err());
        let refused = value(
            &metrics,
            "mtls_handshakes_total",
            &[
                ("side", "client"),
                ("result", "refused"),
                ("reason", "unknown_issuer"),
            ],
        );
        assert_eq!(refused, 1.0, "{}", metrics.render());
    });
}
