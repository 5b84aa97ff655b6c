//! Files in the shapes the guides' `openssl` workflows produce, made by the `openssl` CLI
//! at test time: each gets the right result, or an error that names the real cause and
//! the fix (issue 21).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{capture_logs, raw_client, serve};
use mtls::{Client, Error, Policy, Rejection, Server};

/// Runs `openssl ARGS` in `dir`; panics with its output when it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .env("OPENSSL_CONF", dir.join("openssl.cnf"))
        .stdin(Stdio::null())
        .output()
        .expect("the openssl CLI runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A PKI as the guides make it: a root CA from `openssl req -x509`, and leaves signed by
/// `openssl x509 -req` with or without an extensions file.
struct Guide {
    dir: tempfile::TempDir,
}

const SERVER_EXT: &str = "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n\
                          extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n";
const CLIENT_EXT: &str =
    "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n";

impl Guide {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("openssl.cnf"),
            "[req]\ndistinguished_name = dn\n[dn]\n[v3_ca]\nbasicConstraints=critical,CA:TRUE\n\
             keyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("server.ext"), SERVER_EXT).unwrap();
        std::fs::write(dir.path().join("client.ext"), CLIENT_EXT).unwrap();
        let g = Self { dir };
        openssl(
            g.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "30",
                "-subj",
                "/C=US/O=Guide/CN=Guide Root CA",
                "-extensions",
                "v3_ca",
            ],
        );
        g
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn file(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }

    /// `NAME.key` and `NAME.crt` signed by the root; `ext` is an extensions file or none
    /// (an X.509 v1 certificate); `extra` goes to `openssl x509 -req` (e.g. `-sha1`).
    fn leaf(
        &self,
        name: &str,
        subj: &str,
        ext: Option<&str>,
        extra: &[&str],
    ) -> (PathBuf, PathBuf) {
        let (key, csr, crt) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
        );
        openssl(
            self.path(),
            &[
                "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj",
                subj,
            ],
        );
        let mut args = vec![
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "30",
        ];
        if let Some(ext) = ext {
            args.extend(["-extfile", ext]);
        }
        args.extend(extra);
        openssl(self.path(), &args);
        (self.file(&crt), self.file(&key))
    }

    fn server(&self) -> Server {
        let (crt, key) = self.leaf("server", "/CN=localhost", Some("server.ext"), &[]);
        Server::builder()
            .identity(crt, key)
            .client_ca(self.file("ca.crt"))
            .policy(Policy::any_verified())
            .build()
            .unwrap()
    }
}

#[track_caller]
fn says(err: &Error, file: &Path, words: &[&str]) {
    let text = err.to_string();
    assert!(
        text.contains(&file.display().to_string()),
        "the message names {}: {text}",
        file.display()
    );
    for w in words {
        assert!(text.contains(w), "the message says {w:?}: {text}");
    }
}

/// An X.509 v1 certificate (`openssl x509 -req` without `-extfile`) is refused at build
/// time by name — not blamed on the key — as a client and as a server identity, and a
/// peer presenting one is logged with `reason="x509_v1"`.
#[tokio::test(flavor = "multi_thread")]
async fn x509_v1_certificates_are_named_as_such() {
    let g = Guide::new();
    let (crt, key) = g.leaf("v1", "/CN=v1-client", None, &[]);

    let err = Client::builder()
        .identity(&crt, &key)
        .ca(g.file("ca.crt"))
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::NotX509V3 { version: 1, .. }), "{err}");
    says(&err, &crt, &["X.509 v1", "-extfile", "subjectAltName"]);
    assert!(!err.to_string().contains("private key"), "{err}");

    let err = Server::builder()
        .identity(&crt, &key)
        .client_ca(g.file("ca.crt"))
        .policy(Policy::any_verified())
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::NotX509V3 { .. }), "{err}");

    // A peer with the v1 certificate: `openssl s_client`, which sends it as it is.
    let (logs, _g) = capture_logs();
    let srv = serve(&g.server()).await;
    let status = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &srv.addr.to_string(),
            "-servername",
            "localhost",
        ])
        .arg("-cert")
        .arg(&crt)
        .arg("-key")
        .arg(&key)
        .arg("-CAfile")
        .arg(g.file("ca.crt"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        common::eventually(10, async || {
            let t = logs.text();
            t.contains("reason=\"x509_v1\"") && t.contains("X.509 v1")
        })
        .await,
        "{}\ns_client: {}{}",
        logs.text(),
        String::from_utf8_lossy(&status.stdout),
        String::from_utf8_lossy(&status.stderr)
    );
}

/// `openssl ca -gencrl` without a `crlnumber` writes a version 1 CRL, which the verifier
/// cannot read: the error names the file and says to add `crlnumber`; with one, the same
/// workflow's CRL loads.
#[test]
fn a_v1_crl_names_the_file_and_the_crlnumber_fix() {
    let g = Guide::new();
    let p = g.path();
    std::fs::write(p.join("index.txt"), "").unwrap();
    let ca_cnf = |crlnumber: bool| {
        format!(
            "[ca]\ndefault_ca = CA_default\n[CA_default]\ndir = {}\ndatabase = $dir/index.txt\n\
             certificate = $dir/ca.crt\nprivate_key = $dir/ca.key\ndefault_md = sha256\n\
             default_crl_days = 30\n{}",
            p.display(),
            if crlnumber {
                "crlnumber = $dir/crlnumber\n"
            } else {
                ""
            }
        )
    };
    std::fs::write(p.join("ca-v1.cnf"), ca_cnf(false)).unwrap();
    openssl(
        p,
        &["ca", "-config", "ca-v1.cnf", "-gencrl", "-out", "v1.crl"],
    );
    std::fs::write(p.join("crlnumber"), "1000\n").unwrap();
    std::fs::write(p.join("ca-v2.cnf"), ca_cnf(true)).unwrap();
    openssl(
        p,
        &["ca", "-config", "ca-v2.cnf", "-gencrl", "-out", "v2.crl"],
    );

    let (crt, key) = g.leaf("server", "/CN=localhost", Some("server.ext"), &[]);
    let build = |crl: &str| {
        Server::builder()
            .identity(&crt, &key)
            .client_ca(g.file("ca.crt"))
            .crl(g.file(crl))
            .policy(Policy::any_verified())
            .build()
    };
    let err = build("v1.crl").unwrap_err();
    assert!(matches!(err, Error::CrlNotV2 { .. }), "{err}");
    says(
        &err,
        &g.file("v1.crl"),
        &["version 1 CRL", "crlnumber", "Guide Root CA"],
    );
    build("v2.crl").unwrap();
}

/// A certificate signed with SHA-1: the message says SHA-1 and to re-issue with SHA-256,
/// not rustls' debug text; a peer presenting one is refused with that reason.
#[tokio::test]
async fn sha1_certificates_are_named_as_such() {
    let g = Guide::new();
    let (crt, key) = g.leaf(
        "sha1-server",
        "/CN=localhost",
        Some("server.ext"),
        &["-sha1"],
    );
    let err = Server::builder()
        .identity(&crt, &key)
        .client_ca(g.file("ca.crt"))
        .policy(Policy::any_verified())
        .build()
        .unwrap_err();
    says(&err, &crt, &["SHA-1", "sha1WithRSAEncryption", "-sha256"]);
    assert!(!err.to_string().contains("signature_algorithm_id"), "{err}");
    match &err {
        Error::ChainInvalid { reason, .. } => {
            assert_eq!(reason.class(), "unsupported_signature_algorithm")
        }
        other => panic!("{other}"),
    }

    let (logs, _g) = capture_logs();
    let srv = serve(&g.server()).await;
    let (crt, key) = g.leaf(
        "sha1-client",
        "/CN=sha1-client",
        Some("client.ext"),
        &["-sha1"],
    );
    let cfg = raw_client(&g.file("ca.crt"), Some((&crt, &key)));
    assert!(common::ask_raw(cfg, srv.addr).await.is_err());
    assert!(
        common::eventually(10, async || {
            let t = logs.text();
            t.contains("reason=\"unsupported_signature_algorithm\"")
                && t.contains("sha1WithRSAEncryption")
                && t.contains("CN=sha1-client")
        })
        .await,
        "{}",
        logs.text()
    );
}

/// Names in messages are RFC 4514 (`CN=…,O=…,C=…`), as `PeerIdentity::subject()` and the
/// `issuer:` policies write them: an issuer pasted from an error is a policy that matches.
#[tokio::test]
async fn names_in_errors_are_rfc4514() {
    let g = Guide::new();
    let (crt, key) = g.leaf(
        "api",
        "/C=US/ST=California/O=Acme Inc/CN=api.acme.test",
        Some("client.ext"),
        &[],
    );
    // A client certificate used as a server identity: the message carries its subject.
    let err = Server::builder()
        .identity(&crt, &key)
        .client_ca(g.file("ca.crt"))
        .policy(Policy::any_verified())
        .build()
        .unwrap_err();
    says(
        &err,
        &crt,
        &["\"CN=api.acme.test,O=Acme Inc,ST=California,C=US\""],
    );
    assert!(!err.to_string().contains("C=US, "), "{err}");

    // A lone leaf checked against another CA names its issuer; that name, pasted into an
    // `issuer:` policy, admits the certificate over a real handshake.
    let other = mtls_testing::TestPki::new();
    let (srv_crt, srv_key) = g.leaf("server", "/CN=localhost", Some("server.ext"), &[]);
    let err = Server::builder()
        .identity(&srv_crt, &srv_key)
        .client_ca(other.ca_file())
        .policy(Policy::any_verified())
        .build()
        .unwrap_err();
    let Error::UnknownIssuer { issuer, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(issuer, "CN=Guide Root CA,O=Guide,C=US");
    says(&err, &srv_crt, &["\"CN=Guide Root CA,O=Guide,C=US\""]);
    let server = Server::builder()
        .identity(&srv_crt, &srv_key)
        .client_ca(g.file("ca.crt"))
        .policy(format!("issuer:{issuer}").parse().unwrap())
        .build()
        .unwrap();
    let srv = serve(&server).await;
    let client = Client::builder()
        .identity(&crt, &key)
        .ca(g.file("ca.crt"))
        .build()
        .unwrap();
    let line = common::ask(&client, srv.addr).await.unwrap();
    assert!(
        line.starts_with("CN=api.acme.test,O=Acme Inc,ST=California,C=US|"),
        "{line}"
    );
}

/// The client's own certificate is checked by the *server's* client CAs, which the client
/// is not given: a client chain from another PKI than the server's builds (even when
/// both PKIs' CAs have the same names), a lone leaf says how to turn the check off; the
/// server that sends its leaf alone while its intermediate is only in its client-CA file
/// is warned that clients will fail with "unable to get local issuer certificate".
#[tokio::test]
async fn checks_look_at_the_right_side() {
    let server_pki = mtls_testing::TestPki::new();
    let client_pki = mtls_testing::TestPki::new();
    let (alice_leaf, alice) = client_pki.client("alice");
    // Its certificate is from the client PKI (whose CAs have the same names as the server
    // PKI's, as two PKIs made by one script do), as a lone leaf and with its intermediate.
    let alice_only = client_pki.dir.path().join("alice-leaf.crt");
    std::fs::write(&alice_only, alice_leaf.cert_pem()).unwrap();
    // The lone leaf: this side cannot tell a missing intermediate from another PKI, so
    // the error says both, and how to turn the check off.
    let err = Client::builder()
        .identity(&alice_only, &alice.key)
        .ca(server_pki.ca_file())
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::UnknownIssuer { .. }), "{err}");
    says(
        &err,
        &alice_only,
        &[
            "cat leaf.crt intermediate.crt",
            ".check_identity_chain(false)",
        ],
    );
    Client::builder()
        .identity(&alice_only, &alice.key)
        .ca(server_pki.ca_file())
        .check_identity_chain(false)
        .build()
        .unwrap();
    // The client trusts the server PKI's CA; its certificate is from the client PKI.
    let client = Client::builder()
        .identity(&alice.cert, &alice.key)
        .ca(server_pki.ca_file())
        .build()
        .unwrap();
    // And it connects to a server of the server PKI that trusts the client PKI.
    let (_, srv_files) = server_pki.server("localhost");
    let server = Server::builder()
        .identity(&srv_files.cert, &srv_files.key)
        .client_ca(client_pki.ca_file())
        .policy(Policy::any_verified())
        .build()
        .unwrap();
    let srv = serve(&server).await;
    let line = common::ask(&client, srv.addr).await.unwrap();
    assert!(line.starts_with("CN=alice|"), "{line}");

    // The server's leaf alone, its intermediate only in the client-CA file.
    let (logs, _g) = capture_logs();
    let (leaf, files) = server_pki.server("lonely.test");
    let leaf_only = server_pki.dir.path().join("lonely-leaf.crt");
    std::fs::write(&leaf_only, leaf.cert_pem()).unwrap();
    let intermediate = server_pki.dir.path().join("intermediate-as-client-ca.crt");
    std::fs::write(&intermediate, server_pki.intermediate.cert_pem()).unwrap();
    Server::builder()
        .identity(&leaf_only, &files.key)
        .client_ca(&intermediate)
        .policy(Policy::any_verified())
        .build()
        .unwrap();
    assert!(
        common::eventually(5, async || {
            let t = logs.text();
            t.contains(&leaf_only.display().to_string())
                && t.contains("unable to get local issuer certificate")
        })
        .await,
        "{}",
        logs.text()
    );
    tokio::time::sleep(Duration::from_millis(1)).await;
    let _ = Rejection::NoCertificate;
}

/// An RSA-PSS key (`openssl genpkey -algorithm RSA-PSS`) is named as such, with the way
/// out, instead of "failed to parse private key as RSA, ECDSA, or EdDSA".
#[test]
fn an_rsa_pss_key_is_named_as_such() {
    let g = Guide::new();
    let p = g.path();
    openssl(
        p,
        &[
            "genpkey",
            "-algorithm",
            "RSA-PSS",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "pss.key",
        ],
    );
    openssl(
        p,
        &[
            "req",
            "-new",
            "-key",
            "pss.key",
            "-out",
            "pss.csr",
            "-subj",
            "/CN=pss-client",
        ],
    );
    openssl(
        p,
        &[
            "x509",
            "-req",
            "-in",
            "pss.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "pss.crt",
            "-days",
            "30",
            "-extfile",
            "client.ext",
        ],
    );
    let err = Client::builder()
        .identity(g.file("pss.crt"), g.file("pss.key"))
        .ca(g.file("ca.crt"))
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::RsaPssKey { .. }), "{err}");
    says(&err, &g.file("pss.key"), &["RSA-PSS", "openssl genrsa"]);
}

/// The bundle shapes that used to give a false "key values mismatch" or "holds no BEGIN
/// block": the leaf after its intermediate, a byte-order mark (which hid the first
/// certificate of a bundle), CRLF with a BOM, indented PEM, a DER certificate followed by
/// PEM; each loads and serves a real handshake with the right chain.
#[tokio::test]
async fn bundle_shapes_load_and_serve() {
    let g = Guide::new();
    let p = g.path();
    // An intermediate, and a server leaf signed by it.
    std::fs::write(
        p.join("int.ext"),
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n",
    )
    .unwrap();
    openssl(
        p,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "int.key",
            "-out",
            "int.csr",
            "-subj",
            "/CN=Guide Intermediate",
        ],
    );
    openssl(
        p,
        &[
            "x509",
            "-req",
            "-in",
            "int.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "int.crt",
            "-days",
            "30",
            "-extfile",
            "int.ext",
        ],
    );
    openssl(
        p,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    openssl(
        p,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "int.crt",
            "-CAkey",
            "int.key",
            "-CAcreateserial",
            "-out",
            "leaf.crt",
            "-days",
            "30",
            "-extfile",
            "server.ext",
        ],
    );
    openssl(
        p,
        &[
            "x509", "-in", "leaf.crt", "-outform", "DER", "-out", "leaf.der",
        ],
    );
    let leaf = std::fs::read(p.join("leaf.crt")).unwrap();
    let int = std::fs::read(p.join("int.crt")).unwrap();
    let der = std::fs::read(p.join("leaf.der")).unwrap();
    let crlf = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .replace('\n', "\r\n")
            .into_bytes()
    };
    let indent = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
            .into_bytes()
    };
    let bom = b"\xef\xbb\xbf".to_vec();
    let shapes: Vec<(&str, Vec<u8>)> = vec![
        (
            "intermediate-first.crt",
            [int.clone(), leaf.clone()].concat(),
        ),
        ("bom.crt", [bom.clone(), leaf.clone(), int.clone()].concat()),
        (
            "bom-crlf.crt",
            [bom.clone(), crlf(&leaf), crlf(&int)].concat(),
        ),
        ("indented.crt", [indent(&leaf), indent(&int)].concat()),
        ("der-then-pem.crt", [der.clone(), int.clone()].concat()),
    ];
    let (logs, _g) = capture_logs();
    for (name, bytes) in shapes {
        let file = p.join(name);
        std::fs::write(&file, bytes).unwrap();
        let chain = mtls::pem::load_certs(&file).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(chain.len(), 2, "{name}: both certificates are read");
        let server = Server::builder()
            .identity(&file, p.join("leaf.key"))
            .client_ca(g.file("ca.crt"))
            .policy(Policy::any_verified())
            .build()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // A client that trusts only the root: the server must send leaf then intermediate.
        let srv = serve(&server).await;
        let (ccrt, ckey) = g.leaf(
            &format!("client-{name}"),
            "/CN=bundle-client",
            Some("client.ext"),
            &[],
        );
        let client = Client::builder()
            .identity(ccrt, ckey)
            .ca(g.file("ca.crt"))
            .build()
            .unwrap();
        let line = common::ask(&client, srv.addr)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(line.starts_with("CN=bundle-client|"), "{name}: {line}");
    }
    assert!(
        logs.text().contains("intermediate-first.crt")
            && logs.text().contains("not first in the file"),
        "{}",
        logs.text()
    );
    // A trust bundle with a BOM keeps its first certificate (the root).
    let bundle = p.join("bom-bundle.pem");
    std::fs::write(
        &bundle,
        [bom, std::fs::read(g.file("ca.crt")).unwrap(), int].concat(),
    )
    .unwrap();
    assert_eq!(mtls::pem::load_certs(&bundle).unwrap().len(), 2);
}

/// A `.p12` given where PEM or DER is expected is named as PKCS#12, with the builder call
/// that loads it.
#[test]
fn a_p12_given_as_pem_or_der_is_named() {
    let g = Guide::new();
    let (crt, key) = g.leaf("p12", "/CN=p12-client", Some("client.ext"), &[]);
    openssl(
        g.path(),
        &[
            "pkcs12",
            "-export",
            "-in",
            "p12.crt",
            "-inkey",
            "p12.key",
            "-out",
            "client.p12",
            "-passout",
            "pass:secret",
        ],
    );
    let p12 = g.file("client.p12");
    let err = mtls::pem::load_certs(&p12).unwrap_err();
    assert!(matches!(err, Error::IsPkcs12 { .. }), "{err}");
    says(&err, &p12, &["PKCS#12", ".identity_pkcs12"]);
    let err = mtls::pem::load_key(&p12).unwrap_err();
    assert!(matches!(err, Error::IsPkcs12 { .. }), "{err}");
    let err = Client::builder()
        .identity(&p12, &p12)
        .ca(g.file("ca.crt"))
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::IsPkcs12 { .. }), "{err}");
    let _ = (crt, key);
}

/// An EC key with explicit curve parameters (`openssl ecparam -param_enc explicit`) and
/// its certificate: named as such with the conversion, not "key values mismatch".
#[test]
fn an_ec_key_with_explicit_parameters_is_named() {
    let g = Guide::new();
    let p = g.path();
    openssl(
        p,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-param_enc",
            "explicit",
            "-noout",
            "-out",
            "explicit.key",
        ],
    );
    openssl(
        p,
        &[
            "req",
            "-new",
            "-key",
            "explicit.key",
            "-out",
            "explicit.csr",
            "-subj",
            "/CN=explicit-client",
        ],
    );
    openssl(
        p,
        &[
            "x509",
            "-req",
            "-in",
            "explicit.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "explicit.crt",
            "-days",
            "30",
            "-extfile",
            "client.ext",
        ],
    );
    let err = Client::builder()
        .identity(g.file("explicit.crt"), g.file("explicit.key"))
        .ca(g.file("ca.crt"))
        .build()
        .unwrap_err();
    assert!(!matches!(err, Error::KeyMismatch { .. }), "{err}");
    says(
        &err,
        &g.file("explicit.key"),
        &["explicit curve parameters", "-param_enc named_curve"],
    );
}

/// One build reports every problem it finds, each with its file and fix, instead of
/// stopping at the first: a leaf given as the client CA, and a server certificate that
/// is both expired and without a subjectAltName.
#[test]
fn a_build_reports_all_its_problems() {
    let pki = mtls_testing::TestPki::new();
    let dir = pki.dir.path();
    let old = pki
        .intermediate
        .leaf("old-server")
        .server()
        .expired()
        .build();
    let old_files = old.write(dir, "old-server");
    let (_, not_a_ca) = pki.client("not-a-ca");
    let err = Server::builder()
        .identity(&old_files.cert, &old_files.key)
        .client_ca(&not_a_ca.cert)
        .policy(Policy::any_verified())
        .build()
        .unwrap_err();
    let problems = err.problems();
    assert!(
        problems.iter().any(|e| matches!(e, Error::NotACa { .. }))
            && problems.iter().any(|e| matches!(e, Error::Expired { .. }))
            && problems
                .iter()
                .any(|e| matches!(e, Error::NoSubjectAltName { .. })),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.starts_with("3 problems:"), "{text}");
    assert!(text.contains("  1. ") && text.contains("  3. "), "{text}");
    assert!(
        text.contains(&not_a_ca.cert.display().to_string()),
        "{text}"
    );
    assert!(
        text.contains(&old_files.cert.display().to_string()),
        "{text}"
    );
    assert_eq!(err.path(), problems[0].path());
    // A key that does not match is reported with the certificate's own problems.
    let (_, other) = pki.client("other");
    let err = Server::builder()
        .identity(&not_a_ca.cert, &other.key)
        .client_ca(pki.ca_file())
        .policy(Policy::any_verified())
        .build()
        .unwrap_err();
    let problems = err.problems();
    assert!(
        problems
            .iter()
            .any(|e| matches!(e, Error::KeyMismatch { .. }))
            && problems
                .iter()
                .any(|e| matches!(e, Error::WrongExtendedKeyUsage { .. })),
        "{err}"
    );
    // One problem is returned as itself.
    let (_, good) = pki.server("localhost");
    let err = Server::builder()
        .identity(&good.cert, &good.key)
        .client_ca(&not_a_ca.cert)
        .policy(Policy::any_verified())
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::NotACa { .. }), "{err}");
}
