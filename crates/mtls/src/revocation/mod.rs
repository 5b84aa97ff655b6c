//! Fresh revocation data: CRLs fetched from URLs and distribution points, OCSP for
//! client certificates, OCSP stapling of the server's own certificate.
//!
//! rustls checks the CRLs it is handed and nothing else, and its verifiers are
//! synchronous: they cannot fetch. Everything here that touches the network runs in
//! background tasks or in the acceptor's async path, and never while a handshake is
//! inside rustls. Fetching needs the feature **`fetch`** (a plain-HTTP client on
//! hyper-util's legacy client, the one the adapters already pull in, with no TLS of its
//! own): the default build has no HTTP client, as DESIGN.md requires.
//!
//! # CRLs from URLs and distribution points
//!
//! [`ServerBuilder::crl_url`](crate::ServerBuilder::crl_url) adds a URL;
//! [`ServerBuilder::crl_from_distribution_points`](crate::ServerBuilder::crl_from_distribution_points)
//! adds the CRL distribution points (RFC 5280 §4.2.1.13, `http://` full names) of the
//! configured CAs, at every load, and of every client certificate the server verifies,
//! at its first sight. A background task (started by `build`, inside a tokio runtime)
//! fetches each URL, writes the body to the cache directory
//! ([`crl_cache_dir`](crate::ServerBuilder::crl_cache_dir), one file per URL, written
//! to a temporary name and renamed) and reloads the server. So a fetched CRL goes
//! through **the same validated reload path as a CRL file**: it must parse, be signed by
//! a configured CA, and its CRL number must not go back; a reload that fails restores
//! the file that was in force, and the old snapshot stays. At the next start the cached
//! files are loaded like configured ones, so a server that starts while the URL is down
//! has its last good CRL (a cached file from an issuer no longer configured is skipped,
//! not an error).
//!
//! Schedule: the next fetch of a URL is half of the time left to its CRL's nextUpdate,
//! bounded by [`crl_refresh`](crate::ServerBuilder::crl_refresh) (default 1 min … 1 h),
//! so a revocation published at the URL is in force within the upper bound; a failed
//! fetch is retried after the lower bound, doubling up to the upper. Staleness (a CRL in
//! force past its nextUpdate, not refreshed) is what it is for a file: the
//! [`ReloadEvent::CrlStale`](crate::ReloadEvent::CrlStale) event and log line after each
//! round, the health view's `stale_crls`, the metrics observer's CRL gauges, and with
//! [`enforce_crl_expiry`](crate::ServerBuilder::enforce_crl_expiry) a hard failure
//! (clients whose issuer's CRL is stale are refused).
//!
//! # OCSP for client certificates: where the wait happens
//!
//! The verifier rustls calls is synchronous and must not block a runtime thread on the
//! network, and rustls hands us the client's chain only inside it. So the check is split:
//!
//! 1. **In the verifier (no network, ever).** After WebPki accepts the chain, the
//!    verifier looks the certificate up in the server's shared OCSP cache (a hash map
//!    behind a mutex, keyed by the CertID). A cached *revoked* fails the handshake at
//!    once with the `certificate_revoked` alert and `reason="revoked"` in the log. A
//!    cached *good* passes. A miss passes *for now*: the acceptor decides.
//! 2. **In the acceptor, after the handshake, before the connection is handed out.**
//!    [`Acceptor`](crate::Acceptor) admits every connection (full or resumed) against
//!    the snapshot in force; with OCSP on, admission also needs a fresh status for the
//!    leaf (and, with `chain`, each intermediate). On a cache hit that is one lookup. On
//!    a miss, the acceptor asks the responder, **bounded by the OCSP timeout** (default
//!    2 s, within the handshake timeout), verifies the answer, caches it, and admits or
//!    refuses. A refused connection is closed before the application sees it.
//!
//! Cost, said plainly: the first connection of a certificate never seen (or whose
//! cached response has reached its nextUpdate, or [`ocsp_max_age`]) waits for one
//! responder round trip after its TLS handshake has completed; the client has by then
//! sent its Finished and, under TLS 1.3, possibly its first request, so a refusal at this
//! point shows on the client as a closed connection, not as an alert. Connections that
//! arrive for the same certificate during that wait each ask (there is no request
//! coalescing); a failed lookup is remembered for 10 s, so a dead responder is not asked
//! by every connection. Every later connection of that certificate (full or resumed, on
//! any connection and any snapshot) costs a hash-map lookup keyed by the certificate in
//! the verifier and again in the acceptor, plus one boxed future per connection while
//! OCSP is on (a server without OCSP carries nothing for it; the loadbench's
//! `mtls-hyper-ocsp` measures the difference). Resumption cannot skip the check: the
//! acceptor runs it on resumed sessions too (DESIGN.md's "resumption never outlives
//! trust"). The cache holds at most 20,000 answers (each
//! with its certificate, ≈ 1 KiB).
//!
//! Responses are verified in full: signed by the issuer, or by a responder certificate
//! the issuer signed that carries the OCSP-signing EKU and is valid now; the CertID must
//! be the one asked; thisUpdate not in the future (5 min skew), nextUpdate not passed;
//! the nonce must echo ours when nonces are on ([`ocsp_nonce`], default on). Unknown
//! status, a failed fetch, a timeout or a response that fails verification are
//! *unavailable*: soft-fail admits and logs a warning (target `mtls::revocation`),
//! hard-fail refuses with reason `ocsp_unavailable`. With [`OcspMode::Chain`] each
//! intermediate the client sends is checked the same way against its own issuer.
//!
//! Loops that do not use the acceptor ([`Server::config`](crate::Server::config)) get
//! step 1 only, plus a background fetch on a miss: until the answer is cached, a miss is
//! admitted under soft-fail and refused under hard-fail.
//!
//! [`ocsp_max_age`]: crate::ServerBuilder::ocsp_max_age
//! [`ocsp_nonce`]: crate::ServerBuilder::ocsp_nonce
//!
//! # OCSP stapling and must-staple
//!
//! [`staple_ocsp`](crate::ServerBuilder::staple_ocsp) starts a background task that
//! asks the responder of the server's own certificate (its AIA, or the URL given), with
//! a nonce, verifies the answer as above (the issuer is found in the certificate file's
//! chain or among the configured CAs) and staples it: the resolver serves the same key
//! with `CertifiedKey::ocsp` set, at the cost of one pointer comparison and a clock read
//! per handshake. It is fetched again after half the time left to nextUpdate (bounded by
//! [`staple_refresh`](crate::ServerBuilder::staple_refresh), default 1 min … 1 h); on a
//! failure the last good response stays stapled until its nextUpdate, then none is. A
//! reloaded certificate is served without a staple until the next round.
//!
//! [`ClientBuilder::require_ocsp_staple`](crate::ClientBuilder::require_ocsp_staple)
//! makes a client refuse a server that staples no response, or one that does not verify
//! or is not `good`. A resumed TLS session carries no staple, so it also turns the
//! client's resumption off.
//!
//! # OCSP encoding: why `x509-ocsp`
//!
//! | crate | parses | builds | notes |
//! |---|---|---|---|
//! | `x509-ocsp` 0.2 (RustCrypto formats) | `OcspResponse`, `BasicOcspResponse`, `SingleResponse`, `CertId`, nonce extension | `OcspRequest` by plain `der::Encode` of its types; responses with the `builder` feature | types map RFC 6960 one to one; no signature verification (we do it); pulls `der`, `spki`, `x509-cert`, `const-oid` (small, no_std, RustCrypto-maintained) |
//! | `rasn-ocsp` 0.30 | the RFC 6960 types | the types (through `rasn`) | types only, and the whole `rasn` codec framework with its proc macros beside our ASN.1 stack |
//! | `ocsp` 0.4 (ocsp-rs) | responses, loosely | requests | pulls `chrono`, `thiserror` 1, `asn1_der`; little activity |
//! | hand-rolled on `der-parser` (already in the tree) | anything we write | anything we write | no new crate, but we would own an ASN.1 codec for a security-critical format |
//!
//! We chose `x509-ocsp`: it is the complete, typed, maintained encoding of both
//! directions, and it leaves signature checking to us, which we do with the verifier
//! we already use for CRLs (x509-parser's, on the selected crypto provider).
//!
//! Requests use SHA-256 CertIDs (`openssl ocsp` and RFC 6960 responders accept them);
//! a responder that only understands SHA-1 answers `unknown`, which the fail mode
//! then decides.

// The setters these docs link to exist with the feature `fetch` only.
#![cfg_attr(not(feature = "fetch"), allow(rustdoc::broken_intra_doc_links))]

mod config;
#[cfg(feature = "fetch")]
pub(crate) mod crl;
pub(crate) mod dp;
#[cfg(feature = "fetch")]
pub(crate) mod http;
#[cfg(feature = "fetch")]
pub(crate) mod ocsp;
#[cfg(feature = "fetch")]
pub(crate) mod staple;

#[cfg(feature = "fetch")]
pub use ocsp::{OcspFailure, OcspMode};

pub(crate) use config::{Discovered, Sources};
