//! An in-memory, throw-away test PKI for testing mTLS code, built on [`rcgen`].
//!
//! It makes root and intermediate CAs ([`Ca`]), server and client leaf certificates
//! ([`Leaf`], via [`LeafBuilder`]) with chosen subject (CN, O, several OUs), SANs (DNS, IP,
//! URI, e-mail), extended key usages and validity — including broken ones (expired,
//! not yet valid, a leaf that claims `CA:TRUE`) — and CRLs ([`Crl`]). Everything can be
//! written as PEM files into a directory; [`TestPki`] bundles a root, an intermediate and
//! a temporary directory for the common case.
//!
//! Keys are ECDSA P-256 by default ([`KeyAlg`]); certificates are signed with their issuer's
//! key algorithm.
//!
//! # Panics
//!
//! This is a test-helper crate: generation functions panic with a clear message if `rcgen`
//! fails (which, for the inputs this crate builds, only happens on invalid user input such as
//! a non-ASCII DNS name), and the `write*` functions panic if the file cannot be written.
//!
//! # Example
//!
//! ```
//! use mtls_testing::{Ca, TestPki};
//!
//! // The common case: root + intermediate + temp dir, files written for you.
//! let pki = TestPki::new();
//! let (_server, server_files) = pki.server("localhost"); // localhost.crt / localhost.key
//! let (client, _client_files) = pki.client("alice");
//! let ca_file = pki.ca_file(); // ca.crt (the root)
//! assert!(server_files.cert.exists() && server_files.key.exists() && ca_file.exists());
//! assert_eq!(client.common_name(), "alice");
//!
//! // Hand-made certificates.
//! let root = Ca::root("Example Root");
//! let issuing = root.intermediate("Example Issuing CA");
//! let bob = issuing
//!     .leaf("bob")
//!     .client()
//!     .organization("Example Corp")
//!     .org_unit("payments")
//!     .uri("spiffe://example.org/bob")
//!     .build();
//! let expired = issuing.leaf("old").expired().build();
//! assert!(bob.chain_pem().starts_with("-----BEGIN CERTIFICATE-----"));
//! assert_eq!(bob.root_pem(), root.cert_pem());
//!
//! // A CRL from the issuing CA revoking `expired`.
//! let crl = issuing.crl(&[&expired]);
//! assert!(crl.pem().starts_with("-----BEGIN X509 CRL-----"));
//! ```
#![deny(missing_docs)]

mod ca;
mod crl;
mod der;
mod key;
mod leaf;
mod pki;
mod util;

pub use rcgen;

pub use ca::Ca;
pub use crl::Crl;
pub use key::{Eku, KeyAlg};
pub use leaf::{Leaf, LeafBuilder, LeafFiles};
pub use pki::TestPki;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
