//! A PKCS#12 identity and an encrypted key with its password file, reloaded and watched
//! like a PEM pair: replaced on disk, picked up by the next handshake; a wrong password
//! on reload keeps the old identity serving. The files are made by the openssl CLI.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
#[cfg(feature = "watch")]
use std::time::Duration;

use common::{eventually, serve, server_cn};
use mtls::{Client, Error, Password, Policy, Server};
use mtls_testing::TestPki;

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .env("OPENSSL_CONF", "/dev/null")
        .output()
        .expect("the openssl CLI");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// Writes a server leaf for `cn` (SAN localhost) as a `.p12` at `out`, with `pass`.
fn p12(pki: &TestPki, cn: &str, out: &Path, pass: &str) {
    let leaf = pki.intermediate.leaf(cn).dns("localhost").server().build();
    let dir = pki.dir.path();
    let (c, k) = (dir.join(format!("{cn}.crt")), dir.join(format!("{cn}.key")));
    std::fs::write(&c, leaf.chain_pem()).unwrap();
    std::fs::write(&k, leaf.key_pem()).unwrap();
    let tmp = out.with_extension("tmp");
    openssl(&[
        "pkcs12",
        "-export",
        "-in",
        c.to_str().unwrap(),
        "-inkey",
        k.to_str().unwrap(),
        "-passout",
        &format!("pass:{pass}"),
        "-out",
        tmp.to_str().unwrap(),
    ]);
    std::fs::rename(&tmp, out).unwrap();
}

fn client(pki: &TestPki) -> Client {
    let (_, f) = pki.client("alice");
    Client::builder()
        .identity(f.cert, f.key)
        .ca(pki.ca_file())
        .build()
        .unwrap()
}

async fn cn(client: &Client, port: u16) -> String {
    match client.connect(&format!("localhost:{port}")).await {
        Ok(tls) => server_cn(&tls),
        Err(e) => format!("error: {e}"),
    }
}

#[tokio::test]
async fn pkcs12_reload_picks_up_the_new_file_and_a_wrong_password_keeps_the_old() {
    let pki = TestPki::new();
    let dir = pki.dir.path();
    let (file, pass) = (dir.join("server.p12"), dir.join("p12.pass"));
    std::fs::write(&pass, "first\n").unwrap();
    p12(&pki, "srv-one", &file, "first");
    let server = Server::builder()
        .identity_pkcs12(&file, Password::from_file(&pass))
        .client_ca(pki.ca_file())
        .policy(Policy::any_verified())
        .build()
        .unwrap();
    let srv = serve(&server).await;
    let client = client(&pki);
    assert_eq!(cn(&client, srv.addr.port()).await, "srv-one");

    // A new file under a new password, the password file first: one reload.
    std::fs::write(&pass, "second\n").unwrap();
    p12(&pki, "srv-two", &file, "second");
    server.handle().reload().unwrap();
    assert_eq!(cn(&client, srv.addr.port()).await, "srv-two");

    // A file the password does not open: refused, srv-two keeps serving.
    p12(&pki, "srv-three", &file, "third");
    let e = server.handle().reload().unwrap_err();
    assert!(matches!(*e, Error::WrongPassword { .. }), "{e:?}");
    assert!(e.to_string().contains("p12.pass"), "{e}");
    assert_eq!(cn(&client, srv.addr.port()).await, "srv-two");
}

#[cfg(feature = "watch")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watched_encrypted_key_and_pkcs12_are_picked_up() {
    let pki = TestPki::new();
    let dir = pki.dir.path();
    let (file, pass) = (dir.join("server.p12"), dir.join("p12.pass"));
    std::fs::write(&pass, "pw-one").unwrap();
    p12(&pki, "srv-one", &file, "pw-one");
    let server = Server::builder()
        .identity_pkcs12(&file, Password::from_file(&pass))
        .client_ca(pki.ca_file())
        .policy(Policy::any_verified())
        .build()
        .unwrap();
    let _watch = server
        .handle()
        .watch_with(mtls::WatchOptions::default().debounce(Duration::from_millis(100)))
        .unwrap();
    let srv = serve(&server).await;
    let client = client(&pki);
    assert_eq!(cn(&client, srv.addr.port()).await, "srv-one");
    p12(&pki, "srv-two", &file, "pw-one");
    assert!(eventually(10, async || cn(&client, srv.addr.port()).await == "srv-two").await);

    // An encrypted PEM key with its password file: rotating the key and the password
    // (password file last) ends on the new identity.
    let leaf = pki
        .intermediate
        .leaf("srv-pem")
        .dns("localhost")
        .server()
        .build();
    let (crt, plain, enc, kp) = (
        dir.join("pem.crt"),
        dir.join("pem.plain.key"),
        dir.join("pem.key"),
        dir.join("pem.pass"),
    );
    std::fs::write(&crt, leaf.chain_pem()).unwrap();
    std::fs::write(&plain, leaf.key_pem()).unwrap();
    std::fs::write(&kp, "pem-pass").unwrap();
    let encrypt = |out: &Path| {
        openssl(&[
            "pkcs8",
            "-topk8",
            "-in",
            plain.to_str().unwrap(),
            "-passout",
            &format!("file:{}", kp.display()),
            "-out",
            out.to_str().unwrap(),
        ]);
    };
    encrypt(&enc);
    let pem_server = Server::builder()
        .identity(&crt, &enc)
        .key_password(Password::from_file(&kp))
        .client_ca(pki.ca_file())
        .policy(Policy::any_verified())
        .build()
        .unwrap();
    let _w2 = pem_server
        .handle()
        .watch_with(mtls::WatchOptions::default().debounce(Duration::from_millis(100)))
        .unwrap();
    let srv2 = serve(&pem_server).await;
    assert_eq!(cn(&client, srv2.addr.port()).await, "srv-pem");
    let next = pki
        .intermediate
        .leaf("srv-pem-2")
        .dns("localhost")
        .server()
        .build();
    std::fs::write(&plain, next.key_pem()).unwrap();
    std::fs::write(&kp, "pem-pass-2").unwrap();
    let tmp = dir.join("pem.key.tmp");
    encrypt(&tmp);
    std::fs::write(&crt, next.chain_pem()).unwrap();
    std::fs::rename(&tmp, &enc).unwrap();
    assert!(
        eventually(10, async || cn(&client, srv2.addr.port()).await
            == "srv-pem-2")
        .await
    );
}
