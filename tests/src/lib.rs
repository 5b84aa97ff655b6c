//! Cross-crate integration, interop and conformance tests of the mtls crates.
//!
//! The library is empty on purpose; the tests live in `tests/` (one file per suite):
//! `limbo.rs` runs the x509-limbo path-validation suite through the mtls verifiers and
//! compares every verdict with bare rustls-webpki's.
