//! [`TestPki`]: a root, an intermediate and a temporary directory for the common case.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use crate::ca::Ca;
use crate::leaf::{Leaf, LeafFiles};

/// A ready-made PKI in a temp dir, for the common case.
///
/// The directory is deleted when the `TestPki` is dropped.
#[derive(Debug)]
pub struct TestPki {
    /// The root CA, `CN=mtls-testing root`.
    pub root: Ca,
    /// The intermediate CA, `CN=mtls-testing intermediate`, signed by `root`.
    pub intermediate: Ca,
    /// A fresh temporary directory for the files.
    pub dir: tempfile::TempDir,
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

impl TestPki {
    /// Root `mtls-testing root`, intermediate `mtls-testing intermediate` signed by the root,
    /// and a fresh temp dir.
    ///
    /// # Panics
    ///
    /// Panics if the temp dir cannot be created or rcgen fails.
    #[must_use]
    pub fn new() -> Self {
        let root = Ca::root("mtls-testing root");
        let intermediate = root.intermediate("mtls-testing intermediate");
        let dir = match tempfile::Builder::new().prefix("mtls-testing-").tempdir() {
            Ok(dir) => dir,
            Err(e) => panic!("mtls-testing: cannot create a temporary directory: {e}"),
        };
        Self {
            root,
            intermediate,
            dir,
        }
    }

    /// `dir.join(file_name)`.
    #[must_use]
    pub fn path(&self, file_name: &str) -> PathBuf {
        self.dir.path().join(file_name)
    }

    /// Server leaf signed by the intermediate: `CN=<name>`, DNS SANs `name` and `localhost`,
    /// IP SAN `127.0.0.1`, EKU `serverAuth`; writes `<name>.crt` (leaf + intermediate) and
    /// `<name>.key`.
    ///
    /// # Panics
    ///
    /// Panics if `name` is not ASCII, or on rcgen or I/O failure.
    pub fn server(&self, name: &str) -> (Leaf, LeafFiles) {
        let mut builder = self.intermediate.leaf(name).server().dns(name);
        if name != "localhost" {
            builder = builder.dns("localhost");
        }
        let leaf = builder.ip(IpAddr::V4(Ipv4Addr::LOCALHOST)).build();
        let files = leaf.write(self.dir.path(), name);
        (leaf, files)
    }

    /// Client leaf signed by the intermediate: `CN=<name>`, EKU `clientAuth`, no SANs; writes
    /// `<name>.crt` (leaf + intermediate) and `<name>.key`.
    ///
    /// # Panics
    ///
    /// Panics on rcgen or I/O failure.
    pub fn client(&self, name: &str) -> (Leaf, LeafFiles) {
        let leaf = self.intermediate.leaf(name).client().build();
        let files = leaf.write(self.dir.path(), name);
        (leaf, files)
    }

    /// Writes the root certificate to `ca.crt` and returns its path.
    ///
    /// # Panics
    ///
    /// Panics if the file cannot be written.
    pub fn ca_file(&self) -> PathBuf {
        self.root.write_cert(self.dir.path(), "ca.crt")
    }
}
