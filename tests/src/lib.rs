//! Cross-crate integration, interop and conformance tests of the mtls crates.
//!
//! The library is empty on purpose; the tests live in `tests/` (one file per suite):
//!
//! - `limbo.rs` runs the x509-limbo path-validation suite through the mtls verifiers and
//!   compares every verdict with bare rustls-webpki's.
//! - `interop_servers.rs`: curl, `openssl s_client`, Python `requests` and `httpx`,
//!   Node's `https`, Go's `crypto/tls` and nginx (as an mTLS proxy client) against our
//!   axum and hyper servers.
//! - `interop_clients.rs`: our reqwest and hyper clients against nginx, HAProxy and
//!   `openssl s_server`.
//!
//! The interop suites run on a PKI made with the openssl CLI the way the common guides
//! do it (`scripts/guide-pki.sh`): for each peer, a good certificate is accepted (and the
//! identity checked) and no certificate, one from another CA and a revoked one are
//! refused. A missing peer program fails the test when `MTLS_REQUIRE_PEERS=1` (as in
//! `.ci/run`, which installs them) and is otherwise reported as skipped.
