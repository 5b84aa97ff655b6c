//! Hot reload over real loopback TLS: files replaced on disk, bad files refused while the
//! old material keeps serving, trust changes that resumption cannot skip, client rotation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{ask, eventually, serve, server_cn};
#[cfg(feature = "watch")]
use common::{roundtrip, serve_lines, write_atomic};
#[cfg(feature = "watch")]
use mtls::WatchOptions;
use mtls::{Client, Error, Policy, ReloadEvent, Server};
use mtls_testing::{Leaf, TestPki};

/// Writes a server leaf for `cn` (DNS SANs `cn` and localhost) and returns (chain, key) PEM.
fn server_leaf(pki: &TestPki, cn: &str) -> (String, String) {
    let leaf: Leaf = pki
        .intermediate
        .leaf(cn)
        .dns(cn)
        .dns("localhost")
        .server()
        .build();
    (leaf.chain_pem(), leaf.key_pem())
}

fn client_leaf(pki: &TestPki, cn: &str) -> (String, String) {
    let leaf = pki.intermediate.leaf(cn).client().build();
    (leaf.chain_pem(), leaf.key_pem())
}

fn put(path: &Path, (cert, key): &(String, String), key_path: &Path) {
    std::fs::write(path, cert).unwrap();
    std::fs::write(key_path, key).unwrap();
}

fn build_server(cert: &Path, key: &Path, ca: &Path) -> Server {
    Server::builder()
        .identity(cert, key)
        .client_ca(ca)
        .policy(Policy::any_verified())
        .build()
        .unwrap()
}

fn build_client(pki: &TestPki, cn: &str) -> Client {
    let (_, f) = pki.client(cn);
    Client::builder()
        .identity(f.cert, f.key)
        .ca(pki.ca_file())
        .build()
        .unwrap()
}

async fn cn_of_new_connection(client: &Client, port: u16) -> String {
    match client.connect(&format!("localhost:{port}")).await {
        Ok(tls) => server_cn(&tls),
        Err(e) => format!("error: {e}"),
    }
}

#[cfg(feature = "watch")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watched_files_replaced_three_ways_are_picked_up_without_dropping_connections() {
    let pki = TestPki::new();
    let dir = pki.dir.path();
    // Plain files for overwrite and rename; a Kubernetes-style secret mount for the swap.
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    put(&cert, &server_leaf(&pki, "srv-one"), &key);
    let server = build_server(&cert, &key, &pki.ca_file());
    let _watch = server
        .handle()
        .watch_with(WatchOptions::default().debounce(Duration::from_millis(100)))
        .unwrap();
    let srv = serve_lines(&server).await;
    let client = build_client(&pki, "alice");

    let mut old = client
        .connect(&format!("localhost:{}", srv.addr.port()))
        .await
        .unwrap();
    assert_eq!(server_cn(&old), "srv-one");
    assert!(
        roundtrip(&mut old)
            .await
            .unwrap()
            .starts_with("CN=alice|1|")
    );

    // 1. Plain overwrite, certificate then key.
    put(&cert, &server_leaf(&pki, "srv-two"), &key);
    assert!(
        eventually(10, async || cn_of_new_connection(&client, srv.addr.port())
            .await
            == "srv-two")
        .await
    );
    // 2. Atomic rename of new files over the old ones.
    let (c3, k3) = server_leaf(&pki, "srv-three");
    write_atomic(&cert, c3.as_bytes());
    write_atomic(&key, k3.as_bytes());
    assert!(
        eventually(10, async || cn_of_new_connection(&client, srv.addr.port())
            .await
            == "srv-three")
        .await
    );
    // The connection opened before all this still works, still as generation 1.
    assert!(
        roundtrip(&mut old)
            .await
            .unwrap()
            .starts_with("CN=alice|1|")
    );
    assert!(server.handle().generation() >= 3);
}

#[cfg(feature = "watch")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_secret_symlink_swap_is_picked_up() {
    #[cfg(unix)]
    {
        use std::os::unix::fs::symlink;
        let pki = TestPki::new();
        let mount = pki.dir.path().join("secret");
        let v1 = mount.join("..2026_11_23_v1");
        std::fs::create_dir_all(&v1).unwrap();
        put(
            &v1.join("tls.crt"),
            &server_leaf(&pki, "k8s-one"),
            &v1.join("tls.key"),
        );
        symlink("..2026_11_23_v1", mount.join("..data")).unwrap();
        symlink("..data/tls.crt", mount.join("tls.crt")).unwrap();
        symlink("..data/tls.key", mount.join("tls.key")).unwrap();

        let server = build_server(
            &mount.join("tls.crt"),
            &mount.join("tls.key"),
            &pki.ca_file(),
        );
        let _watch = server
            .handle()
            .watch_with(WatchOptions::default().debounce(Duration::from_millis(100)))
            .unwrap();
        let srv = serve(&server).await;
        let client = build_client(&pki, "alice");
        assert_eq!(
            cn_of_new_connection(&client, srv.addr.port()).await,
            "k8s-one"
        );

        // What the kubelet does: new timestamped dir, new ..data link renamed over the old.
        let v2 = mount.join("..2026_11_23_v2");
        std::fs::create_dir_all(&v2).unwrap();
        put(
            &v2.join("tls.crt"),
            &server_leaf(&pki, "k8s-two"),
            &v2.join("tls.key"),
        );
        symlink("..2026_11_23_v2", mount.join("..data_tmp")).unwrap();
        std::fs::rename(mount.join("..data_tmp"), mount.join("..data")).unwrap();
        std::fs::remove_dir_all(&v1).unwrap();

        assert!(
            eventually(10, async || cn_of_new_connection(&client, srv.addr.port())
                .await
                == "k8s-two")
            .await
        );
    }
}

#[cfg(feature = "watch")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_fallback_picks_up_changes() {
    let pki = TestPki::new();
    let dir = pki.dir.path();
    let (cert, key) = (dir.join("p.crt"), dir.join("p.key"));
    put(&cert, &server_leaf(&pki, "poll-one"), &key);
    let server = build_server(&cert, &key, &pki.ca_file());
    let _watch = server
        .handle()
        .watch_with(WatchOptions::default().poll(Duration::from_millis(100)))
        .unwrap();
    let srv = serve(&server).await;
    let client = build_client(&pki, "alice");
    assert_eq!(
        cn_of_new_connection(&client, srv.addr.port()).await,
        "poll-one"
    );
    put(&cert, &server_leaf(&pki, "poll-two"), &key);
    assert!(
        eventually(10, async || cn_of_new_connection(&client, srv.addr.port())
            .await
            == "poll-two")
        .await
    );
}

/// What is damaged, how, and which error it must give.
type DamageCase<'a> = (&'a str, Box<dyn Fn() + 'a>, fn(&Error) -> bool);

#[cfg(feature = "watch")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watching_stops_when_the_guard_is_dropped() {
    let pki = TestPki::new();
    let dir = pki.dir.path();
    let (cert, key) = (dir.join("g.crt"), dir.join("g.key"));
    put(&cert, &server_leaf(&pki, "guard-one"), &key);
    let server = build_server(&cert, &key, &pki.ca_file());
    let handle = server.handle();
    let options = WatchOptions::default().debounce(Duration::from_millis(50));
    let guard = handle.watch_with(options.clone()).unwrap();
    put(&cert, &server_leaf(&pki, "guard-two"), &key);
    assert!(eventually(10, async || handle.generation() == 2).await);
    drop(guard);
    put(&cert, &server_leaf(&pki, "guard-three"), &key);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(handle.generation(), 2, "a dropped watcher still reloaded");
    // Polling stops with its guard too.
    let guard = handle
        .watch_with(options.poll(Duration::from_millis(50)))
        .unwrap();
    drop(guard);
    put(&cert, &server_leaf(&pki, "guard-four"), &key);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(handle.generation(), 2, "a dropped poller still reloaded");
}

#[tokio::test]
async fn bad_files_keep_the_old_material_and_report_the_error() {
    let pki = TestPki::new();
    let dir = pki.dir.path();
    let (cert, key) = (dir.join("s.crt"), dir.join("s.key"));
    let good = server_leaf(&pki, "srv-good");
    put(&cert, &good, &key);
    let server = build_server(&cert, &key, &pki.ca_file());
    let handle = server.handle();
    let mut events = handle.subscribe();
    let srv = serve(&server).await;
    let client = build_client(&pki, "alice");
    let other_key = server_leaf(&pki, "unrelated").1;
    let half = &good.0[..good.0.len() / 2];

    let cases: Vec<DamageCase<'_>> = vec![
        (
            "garbage certificate",
            Box::new(|| std::fs::write(&cert, "garbage\n").unwrap()),
            |e| matches!(e, Error::NotPem { .. }),
        ),
        (
            "half-written certificate",
            Box::new(|| std::fs::write(&cert, half).unwrap()),
            |e| matches!(e, Error::BadPem { .. }),
        ),
        (
            "bad key",
            Box::new(|| {
                put(
                    &cert,
                    &(
                        good.0.clone(),
                        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into(),
                    ),
                    &key,
                )
            }),
            |e| matches!(e, Error::UnsupportedKey { .. } | Error::BadPem { .. }),
        ),
        (
            "key that does not match",
            Box::new(|| put(&cert, &(good.0.clone(), other_key.clone()), &key)),
            |e| matches!(e, Error::KeyMismatch { .. }),
        ),
    ];
    for (what, damage, expected) in cases {
        damage();
        let err = handle.reload().unwrap_err();
        assert!(expected(&err), "{what}: {err:?}");
        assert!(err.path().is_some(), "{what}: {err}");
        match events.recv().await.unwrap() {
            ReloadEvent::Failed { error } => assert_eq!(error.to_string(), err.to_string()),
            other => panic!("{what}: {other:?}"),
        }
        assert!(handle.status().last_error.is_some());
        // Still serving with the old material.
        assert_eq!(
            cn_of_new_connection(&client, srv.addr.port()).await,
            "srv-good",
            "{what}"
        );
        assert_eq!(handle.generation(), 1);
    }
    // Fixing the files is picked up.
    put(&cert, &server_leaf(&pki, "srv-fixed"), &key);
    assert_eq!(handle.reload().unwrap(), 2);
    assert!(matches!(
        events.recv().await.unwrap(),
        ReloadEvent::Reloaded { generation: 2, .. }
    ));
    assert_eq!(
        cn_of_new_connection(&client, srv.addr.port()).await,
        "srv-fixed"
    );
    assert!(handle.status().last_error.is_none());
}

/// Connects twice (the second resumes), applies `change`, and checks that the next
/// connection, which tries to resume, is refused.
async fn refused_after(change: impl AsyncFnOnce(&Server, &TestPki, &Leaf)) {
    let pki = TestPki::new();
    let dir = pki.dir.path();
    let bundle = dir.join("bundle.pem");
    std::fs::write(&bundle, pki.root.cert_pem()).unwrap();
    let crl = dir.join("crl.pem");
    std::fs::write(&crl, pki.intermediate.crl(&[]).pem()).unwrap();
    let (_, sf) = pki.server("localhost");
    let server = Server::builder()
        .identity(&sf.cert, &sf.key)
        .client_ca(&bundle)
        .crl(&crl)
        .allow_unknown_revocation_status()
        .policy(Policy::any_verified())
        .build()
        .unwrap();
    let srv = serve(&server).await;
    let (victim, vf) = pki.client("victim");
    let client = Client::builder()
        .identity(vf.cert, vf.key)
        .ca(pki.ca_file())
        .build()
        .unwrap();
    assert!(
        ask(&client, srv.addr)
            .await
            .unwrap()
            .starts_with("CN=victim|1|false")
    );
    let second = ask(&client, srv.addr).await.unwrap();
    assert!(
        second.ends_with("|true"),
        "resumption works before the change: {second}"
    );
    change(&server, &pki, &victim).await;
    let third = ask(&client, srv.addr).await;
    assert!(third.is_err(), "accepted after the change: {third:?}");
}

fn file(server: &Server, name: &str) -> PathBuf {
    server
        .handle()
        .paths()
        .into_iter()
        .find(|p| p.ends_with(name))
        .unwrap()
}

#[tokio::test]
async fn removing_the_ca_refuses_the_client_even_on_resumption() {
    refused_after(async |server: &Server, _: &TestPki, _: &Leaf| {
        let root = mtls_testing::Ca::root("replacement root");
        std::fs::write(file(server, "bundle.pem"), root.cert_pem()).unwrap();
        // The server's own chain (leaf + intermediate) now leads to a CA not configured
        // here; that is allowed, and the trust change goes through.
        server.handle().reload().unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_crl_revoking_the_client_refuses_it_even_on_resumption() {
    refused_after(async |server: &Server, pki: &TestPki, victim: &Leaf| {
        let crl = pki.intermediate.crl(&[victim]);
        std::fs::write(file(server, "crl.pem"), crl.pem()).unwrap();
        server.handle().reload().unwrap();
    })
    .await;
}

#[tokio::test]
async fn tightening_the_policy_refuses_the_client_even_on_resumption() {
    refused_after(async |server: &Server, _: &TestPki, _: &Leaf| {
        let policy = "cn:somebody-else".parse::<Policy>().unwrap();
        assert_eq!(server.handle().set_policy(policy).unwrap(), 2);
    })
    .await;
}

#[tokio::test]
async fn a_rotated_client_identity_is_presented_on_the_next_connection() {
    let pki = TestPki::new();
    let (_, sf) = pki.server("localhost");
    let server = build_server(&sf.cert, &sf.key, &pki.ca_file());
    let srv = serve(&server).await;
    let dir = pki.dir.path();
    let (cert, key) = (dir.join("me.crt"), dir.join("me.key"));
    put(&cert, &client_leaf(&pki, "client-one"), &key);
    let client = Client::builder()
        .identity(&cert, &key)
        .ca(pki.ca_file())
        .build()
        .unwrap();
    assert!(
        ask(&client, srv.addr)
            .await
            .unwrap()
            .starts_with("CN=client-one|")
    );
    assert!(ask(&client, srv.addr).await.unwrap().ends_with("|true"));
    put(&cert, &client_leaf(&pki, "client-two"), &key);
    client.handle().reload().unwrap();
    let line = ask(&client, srv.addr).await.unwrap();
    assert!(
        line.starts_with("CN=client-two|") && line.ends_with("|false"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_under_constant_reloads_never_fail() {
    let pki = TestPki::new();
    let dir = pki.dir.path();
    let (cert, key) = (dir.join("l.crt"), dir.join("l.key"));
    let a = server_leaf(&pki, "srv-a");
    let b = server_leaf(&pki, "srv-b");
    put(&cert, &a, &key);
    let server = build_server(&cert, &key, &pki.ca_file());
    let srv = serve(&server).await;
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut tasks = Vec::new();
    for i in 0..2 {
        let client = build_client(&pki, &format!("load-{i}"));
        let (ok, failed, addr) = (ok.clone(), failed.clone(), srv.addr);
        tasks.push(tokio::spawn(async move {
            while tokio::time::Instant::now() < deadline {
                match ask(&client, addr).await {
                    Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        eprintln!("failed: {e}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    let handle = server.handle();
    let mut reloads = 0;
    while tokio::time::Instant::now() < deadline {
        let next = if reloads % 2 == 0 { &b } else { &a };
        put(&cert, next, &key);
        let h = handle.clone();
        tokio::task::spawn_blocking(move || h.reload())
            .await
            .unwrap()
            .unwrap();
        reloads += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    assert!(
        ok.load(Ordering::Relaxed) > 20,
        "{} handshakes",
        ok.load(Ordering::Relaxed)
    );
    assert!(reloads > 20, "{reloads} reloads");
}

#[tokio::test]
async fn expiry_window_is_reported() {
    let pki = TestPki::new();
    let now = time::OffsetDateTime::now_utc();
    let leaf = pki
        .intermediate
        .leaf("short-lived")
        .dns("localhost")
        .server()
        .validity(
            now - time::Duration::hours(1),
            now + time::Duration::days(3),
        )
        .build();
    let files = leaf.write(pki.dir.path(), "short");
    let server = build_server(&files.cert, &files.key, &pki.ca_file());
    let handle = server.handle();
    let not_after = handle.not_after().unwrap();
    let left = not_after
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    assert!(left < Duration::from_secs(3 * 24 * 3600 + 60));
    assert_eq!(handle.ca_not_after().len(), 1);
    let mut events = handle.subscribe();
    handle.check_expiry();
    match events.recv().await.unwrap() {
        ReloadEvent::ExpiringSoon { subject, .. } => assert_eq!(subject, "CN=short-lived"),
        other => panic!("{other:?}"),
    }
}

#[cfg(unix)]
#[tokio::test]
async fn sighup_triggers_a_reload() {
    let pki = TestPki::new();
    let (_, sf) = pki.server("localhost");
    let server = build_server(&sf.cert, &sf.key, &pki.ca_file());
    let handle = server.handle();
    let _guard = handle.reload_on_sighup().unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(eventually(10, async || handle.generation() >= 2).await);
}
