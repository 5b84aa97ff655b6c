//! Encrypted keys and PKCS#12 files made by the openssl CLI, loaded through the public
//! builders, each used as a server identity (curl connects with alice's plain key) and
//! as a client identity (our reqwest client connects to `openssl s_server
//! -verify_return_error`), and each wrong password, truncated file and unsupported
//! cipher giving its typed error.
//!
//! The files are made at test time by `tests/scripts/key-forms.sh` from the guide PKI
//! (`tests/scripts/guide-pki.sh`); its header lists every form.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::sync::OnceLock;
use std::time::Duration;

use mtls::{Error, Password, Policy};
use support::check::{Outcome, assert_http, assert_whoami};
use support::ours::{self, Kind};
use support::pki::guide;
use support::proc::{self, CLIENT_TIMEOUT, Daemon, require, run};
use tokio::process::Command;

/// The guide PKI with every key form beside it.
fn forms() -> &'static Path {
    static DONE: OnceLock<PathBuf> = OnceLock::new();
    DONE.get_or_init(|| {
        let dir = guide().dir.clone();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/key-forms.sh");
        let out = StdCommand::new("sh")
            .arg(&script)
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "key-forms.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

fn f(name: &str) -> PathBuf {
    forms().join(name)
}

fn pw() -> Password {
    Password::from_file(f("pw.txt"))
}

/// One way of giving an identity.
#[derive(Debug, Clone, Copy)]
enum Form {
    /// `WHO.<suffix>` as the key (with `WHO.crt`), password from pw.txt.
    Key(&'static str),
    /// `WHO.<suffix>` as a PKCS#12 identity, with pw.txt or no password.
    P12(&'static str, bool),
}

const FORMS: [Form; 14] = [
    Form::Key("pbes2.key"),
    Form::Key("pbes2.der"),
    Form::Key("scrypt.key"),
    Form::Key("pbe-3des.key"),
    Form::Key("pbe-md5-des.key"),
    Form::Key("aes128.key"),
    Form::Key("aes192.key"),
    Form::Key("aes256.key"),
    Form::Key("des3.key"),
    Form::P12("p12", true),
    Form::P12("legacy.p12", true),
    Form::P12("empty.p12", false),
    Form::P12("plain.p12", false),
    Form::P12("nomac.p12", false),
];

impl Form {
    fn name(self) -> &'static str {
        match self {
            Self::Key(s) | Self::P12(s, _) => s,
        }
    }

    /// The server (`who` = "server") or client builder's identity for this form. A
    /// PKCS#12 form also trusts the CA through the certificates-only `ca.p12`.
    fn server(self) -> mtls::Server {
        let b = mtls::Server::builder()
            .policy(Policy::any_verified())
            .alpn(mtls::HTTP_ALPN);
        let b = match self {
            Self::Key(s) => b
                .identity(f("server.crt"), f(&format!("server.{s}")))
                .key_password(pw())
                .client_ca(f("ca.crt")),
            Self::P12(s, with_pw) => b
                .identity_pkcs12(f(&format!("server.{s}")), p12_pw(with_pw))
                .ca_pkcs12(f("ca.p12"), Password::none()),
        };
        b.build()
            .unwrap_or_else(|e| panic!("server from {}: {e}", self.name()))
    }

    fn client(self) -> mtls::Client {
        let b = mtls::Client::builder();
        let b = match self {
            Self::Key(s) => b
                .identity(f("alice.crt"), f(&format!("alice.{s}")))
                .key_password(pw())
                .ca(f("ca.crt")),
            Self::P12(s, with_pw) => b
                .identity_pkcs12(f(&format!("alice.{s}")), p12_pw(with_pw))
                .ca_pkcs12(f("ca.p12"), Password::none()),
        };
        b.build()
            .unwrap_or_else(|e| panic!("client from {}: {e}", self.name()))
    }
}

fn p12_pw(with: bool) -> Password {
    if with { pw() } else { Password::none() }
}

async fn curl_alice(port: u16) -> Outcome {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .arg("--resolve")
        .arg(format!("localhost:{port}:127.0.0.1"))
        .arg("--cacert")
        .arg(f("ca.crt"))
        .arg("--cert")
        .arg(f("alice.crt"))
        .arg("--key")
        .arg(f("alice.key"))
        .arg(format!("https://localhost:{port}/whoami"));
    let out = run(&mut cmd, None, CLIENT_TIMEOUT).await;
    if !out.status.success() {
        return Outcome::Failed {
            error: out.stderr.trim().to_owned(),
        };
    }
    let (body, code) = out.stdout.rsplit_once('\n').unwrap_or(("", ""));
    Outcome::Http {
        status: code.trim().parse().unwrap_or(0),
        body: body.to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_form_as_server_identity_with_curl() {
    if !require("curl") {
        return;
    }
    for form in FORMS {
        let server = ours::serve(Kind::Axum, form.server()).await;
        let out = curl_alice(server.port()).await;
        let seen = assert_whoami(
            &format!("curl -> server key {}", form.name()),
            &out,
            "alice",
        );
        println!("MATRIX | curl | server identity {} | {seen}", form.name());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_form_as_client_identity_with_openssl_s_server() {
    let g = guide();
    let dir = proc::scratch_dir("s_server-keys-");
    let port = proc::free_port();
    let mut cmd = Command::new("openssl");
    cmd.arg("s_server")
        .args(["-accept", &format!("127.0.0.1:{port}")])
        .arg("-cert")
        .arg(g.server_crt())
        .arg("-key")
        .arg(g.server_key())
        .arg("-CAfile")
        .arg(g.ca())
        .args(["-Verify", "1", "-verify_return_error", "-www"]);
    let daemon = Daemon::start("openssl s_server", cmd, port, &dir).await;
    let url = format!("https://localhost:{}/", daemon.port);
    for form in FORMS {
        let http = mtls_reqwest::builder(&form.client())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let out = match http.get(&url).send().await {
            Ok(r) => Outcome::Http {
                status: r.status().as_u16(),
                body: r.text().await.unwrap_or_default(),
            },
            Err(e) => Outcome::Failed {
                error: format!("{e:?}"),
            },
        };
        let who = format!("reqwest client key {} -> openssl s_server", form.name());
        let seen = assert_http(&who, &out, 200, "OU=clients, CN=alice");
        println!("MATRIX | {who} | {seen}");
    }
}

/// What `openssl` itself decrypts the key to, as DER.
fn openssl_der(args: &[&str]) -> Vec<u8> {
    let out = StdCommand::new("openssl")
        .args(args)
        .env("OPENSSL_CONF", "/dev/null")
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
    out.stdout
}

#[test]
fn decrypted_keys_are_the_keys_openssl_decrypts() {
    let pkcs8 = openssl_der(&[
        "pkcs8",
        "-topk8",
        "-nocrypt",
        "-outform",
        "DER",
        "-in",
        f("server.key").to_str().unwrap(),
    ]);
    for s in [
        "pbes2.key",
        "pbes2.der",
        "scrypt.key",
        "pbe-3des.key",
        "pbe-md5-des.key",
    ] {
        let key = mtls::pem::load_key_with_password(f(&format!("server.{s}")), &pw()).unwrap();
        assert_eq!(key.secret_der(), pkcs8.as_slice(), "{s}");
        assert!(matches!(
            key,
            mtls::rustls::pki_types::PrivateKeyDer::Pkcs8(_)
        ));
    }
    let pkcs1 = openssl_der(&[
        "rsa",
        "-traditional",
        "-outform",
        "DER",
        "-in",
        f("server.key").to_str().unwrap(),
    ]);
    for s in ["aes128.key", "aes192.key", "aes256.key", "des3.key"] {
        let key = mtls::pem::load_key_with_password(f(&format!("server.{s}")), &pw()).unwrap();
        assert_eq!(key.secret_der(), pkcs1.as_slice(), "{s}");
        assert!(matches!(
            key,
            mtls::rustls::pki_types::PrivateKeyDer::Pkcs1(_)
        ));
    }
    let sec1 = openssl_der(&[
        "ec",
        "-outform",
        "DER",
        "-in",
        f("ec.key").to_str().unwrap(),
    ]);
    let key = mtls::pem::load_key_with_password(f("ec.aes256.key"), &pw()).unwrap();
    assert_eq!(key.secret_der(), sec1.as_slice());
    assert!(matches!(
        key,
        mtls::rustls::pki_types::PrivateKeyDer::Sec1(_)
    ));
    // The password from an environment variable and a callback decrypt alike.
    let from_fn = Password::from_fn(|| Ok(mtls::Zeroizing::new("correct horse battery".into())));
    let key = mtls::pem::load_key_with_password(f("server.pbes2.key"), &from_fn).unwrap();
    assert_eq!(key.secret_der(), pkcs8.as_slice());
}

fn wrong() -> Password {
    Password::from_fn(|| Ok(mtls::Zeroizing::new("Tr0ub4dor&3".into())))
}

fn says(e: &Error, needles: &[&str]) {
    let text = e.to_string();
    for n in needles {
        assert!(text.contains(n), "{n:?} not in: {text}");
    }
    assert!(
        !text.contains("correct horse"),
        "the password leaked: {text}"
    );
    assert!(!text.contains("Tr0ub4dor"), "the password leaked: {text}");
}

#[test]
fn wrong_password_is_said_to_be_the_password() {
    for s in [
        "pbes2.key",
        "pbes2.der",
        "scrypt.key",
        "pbe-3des.key",
        "pbe-md5-des.key",
        "aes128.key",
        "aes192.key",
        "aes256.key",
        "des3.key",
    ] {
        let e = mtls::Server::builder()
            .identity(f("server.crt"), f(&format!("server.{s}")))
            .key_password(wrong())
            .client_ca(f("ca.crt"))
            .policy(Policy::any_verified())
            .build()
            .unwrap_err();
        assert!(matches!(e, Error::WrongPassword { .. }), "{s}: {e:?}");
        says(&e, &["password", "wrong", s, "the password callback"]);
    }
    for s in ["p12", "legacy.p12"] {
        let e = mtls::Client::builder()
            .identity_pkcs12(f(&format!("alice.{s}")), wrong())
            .ca(f("ca.crt"))
            .build()
            .unwrap_err();
        assert!(matches!(e, Error::WrongPassword { .. }), "{s}: {e:?}");
        says(&e, &["password", "wrong", s]);
    }
    // A password where the file was exported with an empty one.
    let e = mtls::pkcs12::load(f("alice.empty.p12"), &pw()).unwrap_err();
    assert!(matches!(e, Error::WrongPassword { .. }), "{e:?}");
    says(&e, &["pw.txt"]);
}

#[test]
fn no_password_keeps_the_encrypted_key_error_and_says_how_to_give_one() {
    for s in ["pbes2.key", "pbes2.der", "aes256.key"] {
        let e = mtls::Server::builder()
            .identity(f("server.crt"), f(&format!("server.{s}")))
            .client_ca(f("ca.crt"))
            .policy(Policy::any_verified())
            .build()
            .unwrap_err();
        assert!(matches!(e, Error::EncryptedKey { .. }), "{s}: {e:?}");
        says(
            &e,
            &[
                "encrypted",
                "key_password",
                "--password-file",
                "openssl pkey",
            ],
        );
    }
    // A key encrypted with the empty password is read without one.
    let key =
        mtls::pem::load_key_with_password(f("server.empty-pw.key"), &Password::none()).unwrap();
    let plain = mtls::pem::load_key_with_password(f("server.pbes2.key"), &pw()).unwrap();
    assert_eq!(key.secret_der(), plain.secret_der());
    let e = mtls::pem::load_key_with_password(
        f("server.pbes2.key"),
        &Password::from_env("MTLS_TEST_UNSET_PASSWORD_VARIABLE"),
    )
    .unwrap_err();
    assert!(matches!(e, Error::PasswordUnavailable { .. }), "{e:?}");
    says(&e, &["MTLS_TEST_UNSET_PASSWORD_VARIABLE", "not set"]);
}

#[test]
fn truncated_files_are_truncated() {
    let e = mtls::pem::load_key_with_password(f("server.cut.key"), &pw()).unwrap_err();
    assert!(matches!(e, Error::Truncated { .. }), "{e:?}");
    says(&e, &["server.cut.key", "truncated"]);
    let e = mtls::pkcs12::load(f("server.cut.p12"), &pw()).unwrap_err();
    assert!(matches!(e, Error::Truncated { .. }), "{e:?}");
    says(&e, &["server.cut.p12", "truncated"]);
    // A PEM file cut before its END line.
    let text = std::fs::read_to_string(f("server.aes256.key")).unwrap();
    let cut = forms().join("server.aes256.cut.key");
    std::fs::write(&cut, &text[..text.len() / 2]).unwrap();
    let e = mtls::pem::load_key_with_password(&cut, &pw()).unwrap_err();
    assert!(matches!(e, Error::BadPem { .. }), "{e:?}");
    says(&e, &["END", "truncated"]);
}

#[test]
fn unsupported_ciphers_are_named_with_the_conversion() {
    for (s, cipher) in [
        ("camellia.key", "camellia-256-cbc"),
        ("trad-camellia.key", "CAMELLIA-256-CBC"),
    ] {
        let e = mtls::pem::load_key_with_password(f(&format!("server.{s}")), &pw()).unwrap_err();
        assert!(
            matches!(e, Error::UnsupportedEncryption { .. }),
            "{s}: {e:?}"
        );
        says(&e, &[cipher, "openssl pkcs8 -topk8 -v2 aes-256-cbc", s]);
    }
    let e = mtls::Server::builder()
        .identity_pkcs12(f("server.rc4.p12"), pw())
        .client_ca(f("ca.crt"))
        .policy(Policy::any_verified())
        .build()
        .unwrap_err();
    assert!(matches!(e, Error::UnsupportedEncryption { .. }), "{e:?}");
    says(
        &e,
        &[
            "PBE-SHA1-RC4-128",
            "openssl pkcs12 -legacy -in",
            "server.rc4.p12",
        ],
    );
}

#[test]
fn pkcs12_identity_and_trust_bundle_contents() {
    let b = mtls::pkcs12::load(f("server.p12"), &pw()).unwrap();
    assert!(b.key.is_some());
    assert_eq!(b.certs.len(), 2, "leaf and the -certfile CA");
    let ca = mtls::pkcs12::load(f("ca.p12"), &Password::none()).unwrap();
    assert!(ca.key.is_none());
    assert_eq!(ca.certs.len(), 1);
    // A trust bundle is not an identity.
    let e = mtls::Client::builder()
        .identity_pkcs12(f("ca.p12"), Password::none())
        .ca(f("ca.crt"))
        .build()
        .unwrap_err();
    assert!(matches!(e, Error::NoPrivateKey { .. }), "{e:?}");
    says(&e, &["ca.p12", "ca_pkcs12"]);
}
