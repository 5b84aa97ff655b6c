//! `--p12 FILE` and `--password-file FILE` on `axum_server` and `reqwest_client`: the
//! `.p12` files are made exactly as the guides make them (`openssl pkcs12 -export -in
//! client1.crt -inkey client1.key -out client1.p12`; the password, which openssl would
//! ask for on the terminal, given with `-passout`) and used unchanged; an encrypted key
//! (`openssl pkcs8 -topk8`) with its password file; a wrong password exits 2 saying so.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Command;

use mtls_testing::TestPki;
use support::{binary, curl_ok, start};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .env("OPENSSL_CONF", "/dev/null")
        .output()
        .expect("the openssl CLI");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// (exit code, stdout, stderr) of `reqwest_client ARGS`.
fn reqwest_client(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(binary("reqwest_client"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn guide_p12_files_with_both_examples() {
    let pki = TestPki::new();
    let dir = &pki.dir.path().join("guide");
    std::fs::create_dir_all(dir).unwrap();
    let (_, server) = pki.server("localhost");
    let (_, client) = pki.client("client1");
    std::fs::copy(&server.cert, dir.join("server.crt")).unwrap();
    std::fs::copy(&server.key, dir.join("server.key")).unwrap();
    std::fs::copy(&client.cert, dir.join("client1.crt")).unwrap();
    std::fs::copy(&client.key, dir.join("client1.key")).unwrap();
    std::fs::write(dir.join("p12.pass"), "s3cret pass\n").unwrap();
    for who in ["server", "client1"] {
        openssl(
            dir,
            &[
                "pkcs12",
                "-export",
                "-in",
                &format!("{who}.crt"),
                "-inkey",
                &format!("{who}.key"),
                "-out",
                &format!("{who}.p12"),
                "-passout",
                "file:p12.pass",
            ],
        );
    }
    // An encrypted key, OpenSSL 3's default PKCS#8 form.
    openssl(
        dir,
        &[
            "pkcs8",
            "-topk8",
            "-in",
            "client1.key",
            "-out",
            "client1.enc.key",
            "-passout",
            "file:p12.pass",
        ],
    );
    let ca = pki.ca_file();
    let pass = dir.join("p12.pass");
    let running = start(
        "axum_server",
        &[
            "--p12",
            s(&dir.join("server.p12")),
            "--password-file",
            s(&pass),
            "--client-ca",
            s(&ca),
            "--allow",
            "cn:client1",
        ],
    );
    let url = format!("https://localhost:{}/whoami", running.port);

    // curl with the PEM files, against the server's .p12.
    let (status, body) = curl_ok(
        running.port,
        "/whoami",
        &ca,
        Some((&dir.join("client1.crt"), &dir.join("client1.key"))),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"common_name\":\"client1\""), "{body}");

    // reqwest_client with the guide's client1.p12, and with the encrypted key.
    let p12 = dir.join("client1.p12");
    for args in [
        vec!["--p12", s(&p12), "--password-file", s(&pass)],
        vec![
            "--cert",
            s(&client.cert),
            "--key",
            s(&dir.join("client1.enc.key")),
            "--password-file",
            s(&pass),
        ],
    ] {
        let mut all = args.clone();
        all.extend(["--ca", s(&ca), &url]);
        let (code, stdout, stderr) = reqwest_client(&all);
        assert_eq!(code, Some(0), "{args:?}: {stdout} {stderr}");
        assert!(stdout.contains("200"), "{stdout}");
        assert!(stdout.contains("\"common_name\":\"client1\""), "{stdout}");
    }

    // A wrong password: exit 2, and the message says it is the password.
    let wrong = dir.join("wrong.pass");
    std::fs::write(&wrong, "not it\n").unwrap();
    let (code, _, stderr) = reqwest_client(&[
        "--p12",
        s(&p12),
        "--password-file",
        s(&wrong),
        "--ca",
        s(&ca),
        &url,
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("password") && stderr.contains("wrong"),
        "{stderr}"
    );
    assert!(
        stderr.contains("wrong.pass") && !stderr.contains("not it"),
        "{stderr}"
    );
    // No password for an encrypted key: the encrypted-key error, naming the flag.
    let (code, _, stderr) = reqwest_client(&[
        "--cert",
        s(&client.cert),
        "--key",
        s(&dir.join("client1.enc.key")),
        "--ca",
        s(&ca),
        &url,
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--password-file"), "{stderr}");
    // --p12 with --cert: refused as a flag error.
    let (code, _, stderr) = reqwest_client(&[
        "--p12",
        s(&p12),
        "--cert",
        s(&client.cert),
        "--ca",
        s(&ca),
        &url,
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--p12 FILE replaces --cert and --key"),
        "{stderr}"
    );

    // The server example refuses a wrong password at start with exit code 2.
    let out = Command::new(binary("axum_server"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--p12",
            s(&dir.join("server.p12")),
        ])
        .args([
            "--password-file",
            s(&wrong),
            "--client-ca",
            s(&ca),
            "--allow-any",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("password") && stderr.contains("wrong"),
        "{stderr}"
    );
}
