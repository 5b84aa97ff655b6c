//! The PKIs of the interop matrix.
//!
//! - [`guide`]: made by `tests/scripts/guide-pki.sh` with the openssl CLI, the way the
//!   common mTLS guides do it (RSA 2048, `req -x509` root, `x509 -req -CAcreateserial`
//!   leaves, an `openssl ca` database that signs and revokes `bob`, `openssl ca -gencrl`).
//!   Most of the matrix runs on it, as it is what users bring.
//! - [`other_ca`]: a client certificate from an unrelated CA (mtls-testing's rcgen PKI).
//!
//! Both are made once per test binary, in a directory under cargo's `target/tmp` named
//! after the process id; directories left by earlier runs whose process has ended are
//! removed first.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// One test case: which certificate the client presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// alice, from the guide CA: must be accepted.
    Good,
    /// No client certificate.
    NoCert,
    /// mallory, from an unrelated CA.
    OtherCa,
    /// bob, from the guide CA but revoked by its CRL.
    Revoked,
}

impl Case {
    pub const ALL: [Self; 4] = [Self::Good, Self::NoCert, Self::OtherCa, Self::Revoked];

    pub fn label(self) -> &'static str {
        match self {
            Self::Good => "accepted",
            Self::NoCert => "no-cert",
            Self::OtherCa => "other-CA",
            Self::Revoked => "revoked",
        }
    }

    /// The client certificate and key files, `None` for [`Case::NoCert`].
    pub fn identity(self) -> Option<(PathBuf, PathBuf)> {
        let g = guide();
        match self {
            Self::Good => Some((g.file("alice.crt"), g.file("alice.key"))),
            Self::NoCert => None,
            Self::OtherCa => {
                let o = other_ca();
                Some((o.cert.clone(), o.key.clone()))
            }
            Self::Revoked => Some((g.file("bob.crt"), g.file("bob.key"))),
        }
    }
}

/// The directory of one test run, `target/tmp/mtls-interop-<pid>`.
pub fn run_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
        remove_stale_runs(base);
        let dir = base.join(format!("mtls-interop-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

fn remove_stale_runs(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("mtls-interop-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The openssl-made PKI; see the module docs.
#[derive(Debug)]
pub struct GuidePki {
    pub dir: PathBuf,
}

impl GuidePki {
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
    /// The root CA certificate.
    pub fn ca(&self) -> PathBuf {
        self.file("ca.crt")
    }
    /// `cat server.crt server.key`, for localhost and 127.0.0.1.
    pub fn server_pem(&self) -> PathBuf {
        self.file("server.pem")
    }
    pub fn server_crt(&self) -> PathBuf {
        self.file("server.crt")
    }
    pub fn server_key(&self) -> PathBuf {
        self.file("server.key")
    }
    /// The CRL from `openssl ca -gencrl`, revoking bob.
    pub fn crl(&self) -> PathBuf {
        self.file("crl.pem")
    }
}

/// Runs `tests/scripts/guide-pki.sh` once per test binary.
pub fn guide() -> &'static GuidePki {
    static PKI: OnceLock<GuidePki> = OnceLock::new();
    PKI.get_or_init(|| {
        let dir = run_dir().join("guide-pki");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/guide-pki.sh");
        let out = Command::new("sh")
            .arg(&script)
            .arg(&dir)
            .output()
            .expect("run sh tests/scripts/guide-pki.sh");
        assert!(
            out.status.success(),
            "guide-pki.sh failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        GuidePki { dir }
    })
}

/// A client certificate (CN=mallory, clientAuth) from a CA nobody here trusts.
#[derive(Debug)]
pub struct OtherCa {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn other_ca() -> &'static OtherCa {
    static OTHER: OnceLock<OtherCa> = OnceLock::new();
    OTHER.get_or_init(|| {
        let dir = run_dir().join("other-ca");
        std::fs::create_dir_all(&dir).unwrap();
        let root = mtls_testing::Ca::root("Other Example Root CA");
        let ca = root.write_cert(&dir, "ca.crt");
        let files = root.leaf("mallory").client().build().write(&dir, "mallory");
        OtherCa {
            ca,
            cert: files.cert,
            key: files.key,
        }
    })
}
