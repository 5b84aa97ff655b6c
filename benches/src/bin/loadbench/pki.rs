//! The certificates of the bench: one directory per key type, each holding a root CA
//! (`ca.crt`), a server chain (`server.crt`: leaf + intermediate, `server.key`), a second
//! server chain for the reload case (`server2.*`) and a client chain (`client.*`), all
//! under one intermediate CA.
//!
//! ECDSA P-256 comes from `mtls-testing`; RSA-2048 from the `openssl` command line (rcgen
//! cannot generate RSA keys).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;

use mtls_testing::Ca;

use crate::BoxError;

/// A key type of the whole PKI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyType {
    /// ECDSA P-256 everywhere.
    P256,
    /// RSA-2048 everywhere.
    Rsa2048,
}

impl KeyType {
    pub(crate) fn parse(s: &str) -> Result<Self, BoxError> {
        match s {
            "p256" => Ok(Self::P256),
            "rsa2048" => Ok(Self::Rsa2048),
            _ => Err(format!("unknown cert type {s:?}: expected p256 or rsa2048").into()),
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::P256 => "P-256",
            Self::Rsa2048 => "RSA-2048",
        })
    }
}

/// Writes the PKI of `key_type` into a new directory under `root` and returns it.
pub(crate) fn generate(root: &Path, key_type: KeyType) -> Result<PathBuf, BoxError> {
    let dir = root.join(match key_type {
        KeyType::P256 => "p256",
        KeyType::Rsa2048 => "rsa2048",
    });
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    match key_type {
        KeyType::P256 => p256(&dir),
        KeyType::Rsa2048 => rsa(&dir)?,
    }
    Ok(dir)
}

fn p256(dir: &Path) {
    let root = Ca::root("mtls bench P-256 root");
    let intermediate = root.intermediate("mtls bench P-256 intermediate");
    root.write_cert(dir, "ca.crt");
    // The OCSP responder of `mtls-hyper-ocsp` signs as the client's issuer.
    intermediate.write_cert(dir, "intermediate.crt");
    let _ = std::fs::write(dir.join("intermediate.key"), intermediate.key_pem());
    for name in ["server", "server2"] {
        intermediate
            .leaf("localhost")
            .server()
            .dns("localhost")
            .ip(IpAddr::V4(Ipv4Addr::LOCALHOST))
            .build()
            .write(dir, name);
    }
    intermediate
        .leaf("bench-client")
        .client()
        .build()
        .write(dir, "client");
}

const OPENSSL_CNF: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[root]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[intermediate]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[server]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

fn openssl(dir: &Path, args: &[&str]) -> Result<(), BoxError> {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .map_err(|e| format!("running openssl (needed for the RSA-2048 certificates): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "openssl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(())
}

fn rsa(dir: &Path) -> Result<(), BoxError> {
    std::fs::write(dir.join("openssl.cnf"), OPENSSL_CNF)?;
    let cnf = "openssl.cnf";
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-config",
            cnf,
            "-extensions",
            "root",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "root.key",
            "-out",
            "ca.crt",
            "-days",
            "30",
            "-subj",
            "/CN=mtls bench RSA root",
        ],
    )?;
    // (name, issuer, extensions section, subject CN)
    let certs = [
        (
            "intermediate",
            "ca",
            "intermediate",
            "mtls bench RSA intermediate",
        ),
        ("server-leaf", "intermediate", "server", "localhost"),
        ("server2-leaf", "intermediate", "server", "localhost"),
        ("client-leaf", "intermediate", "client", "bench-client"),
    ];
    for (serial, (name, issuer, ext, cn)) in (1000u32..).zip(certs) {
        let (key, csr, crt) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
        );
        let issuer_key = if issuer == "ca" {
            "root.key".to_owned()
        } else {
            format!("{issuer}.key")
        };
        let subj = format!("/CN={cn}");
        openssl(
            dir,
            &[
                "req", "-new", "-config", cnf, "-newkey", "rsa:2048", "-nodes", "-keyout", &key,
                "-out", &csr, "-subj", &subj,
            ],
        )?;
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &format!("{issuer}.crt"),
                "-CAkey",
                &issuer_key,
                "-set_serial",
                &serial.to_string(),
                "-days",
                "30",
                "-extfile",
                cnf,
                "-extensions",
                ext,
                "-out",
                &crt,
            ],
        )?;
    }
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name)).map_err(|e| format!("reading {name}: {e}"))
    };
    let intermediate = read("intermediate.crt")?;
    for (leaf, out) in [
        ("server-leaf", "server"),
        ("server2-leaf", "server2"),
        ("client-leaf", "client"),
    ] {
        let chain = read(&format!("{leaf}.crt"))? + &intermediate;
        std::fs::write(dir.join(format!("{out}.crt")), chain)?;
        std::fs::rename(
            dir.join(format!("{leaf}.key")),
            dir.join(format!("{out}.key")),
        )?;
    }
    Ok(())
}
