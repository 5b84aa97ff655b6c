//! Observing a side: handshakes, reloads and the material in force, reported to one
//! [`Observer`].
//!
//! Give an observer to [`ServerBuilder::observer`](crate::ServerBuilder::observer) or
//! [`ClientBuilder::observer`](crate::ClientBuilder::observer). The acceptor (so every
//! [`TlsListener`](crate::TlsListener) and HTTP adapter built on it), the client's
//! [`connect`](crate::Client::connect) / [`handshake`](crate::Client::handshake) (so the
//! hyper and tonic connectors), the listener's caps and the reloader then report to it:
//!
//! | method | when | what |
//! |---|---|---|
//! | [`handshake_started`](Observer::handshake_started) | a server handshake gets its first byte; a client handshake starts | the side |
//! | [`handshake`](Observer::handshake) | it ends, once per start unless abandoned | [`HandshakeEvent`]: result, reason class, resumed, TLS version, duration |
//! | [`handshake_abandoned`](Observer::handshake_abandoned) | its future was dropped (evicted by a cap, listener dropped) | the side |
//! | [`eviction`](Observer::eviction) | the listener closes a connection to keep its caps | [`Eviction`] |
//! | [`reload`](Observer::reload) | every reload, and `set_policy` | [`ReloadReport`] |
//! | [`material`](Observer::material) | at build and after each successful reload | [`MaterialReport`]: every certificate and CRL in force, with its expiry |
//!
//! Without an observer none of this is computed: the handshake path pays one branch.
//!
//! Reason classes are [`Rejection::class`] for refused peers (the same strings as the
//! `reason` field of the refusal log lines), and for the other results the fixed strings
//! listed on [`HandshakeResult`]; every value is from a fixed set, never a peer's name.
//!
//! The feature `metrics` adds `mtls::metrics::MetricsObserver`, an implementation on the
//! `metrics` facade (its docs list the metric names and labels).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::spec::TlsVersion;
use crate::verify::Rejection;

/// Which side of a connection reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Side {
    /// A [`Server`](crate::Server): it accepted the connection.
    Server,
    /// A [`Client`](crate::Client): it opened the connection.
    Client,
}

impl Side {
    /// `"server"` or `"client"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Server => "server",
            Self::Client => "client",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a handshake ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HandshakeResult {
    /// The connection was handed to the application. Reason `"none"`.
    Accepted,
    /// The peer's certificate was refused: reason [`Rejection::class`] (`"no_certificate"`,
    /// `"unknown_issuer"`, `"revoked"`, `"policy"`, …), or `"extractor"` when the
    /// [`IdentityExtractor`](crate::IdentityExtractor) refused it.
    Refused,
    /// TLS failed for another reason: `"tls"` (a protocol error or an alert from the peer,
    /// e.g. the peer refused *our* certificate) or `"io"` (the connection broke or closed).
    Failed,
    /// A deadline passed: `"client_hello_timeout"`, `"handshake_timeout"`, or on the
    /// client `"connect_timeout"` (TCP connect and handshake within the connect timeout).
    Timeout,
}

impl HandshakeResult {
    /// `"accepted"`, `"refused"`, `"failed"` or `"timeout"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Refused => "refused",
            Self::Failed => "failed",
            Self::Timeout => "timeout",
        }
    }
}

/// One finished handshake.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HandshakeEvent {
    /// Who reports.
    pub side: Side,
    /// How it ended.
    pub result: HandshakeResult,
    /// Its reason class (see [`HandshakeResult`]).
    pub reason: &'static str,
    /// Whether a session was resumed (false when the handshake failed).
    pub resumed: bool,
    /// The TLS version negotiated, when the handshake got that far.
    pub version: Option<TlsVersion>,
    /// From the first byte (server) or the start (client) to the end.
    pub duration: Duration,
}

impl HandshakeEvent {
    /// `"TLSv1.3"`, `"TLSv1.2"`, or `"none"` when no version was negotiated.
    pub fn version_str(&self) -> &'static str {
        match self.version {
            Some(TlsVersion::Tls13) => "TLSv1.3",
            Some(TlsVersion::Tls12) => "TLSv1.2",
            None => "none",
        }
    }
}

/// Why a listener closed a connection on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Eviction {
    /// The oldest connection that had sent nothing, to keep `max_silent`.
    Silent,
    /// The oldest handshake in progress, to keep `max_handshakes`.
    Handshaking,
    /// A new connection over `max_handshakes_per_source`.
    PerSource,
}

impl Eviction {
    /// `"silent"`, `"handshaking"` or `"per_source"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Silent => "silent",
            Self::Handshaking => "handshaking",
            Self::PerSource => "per_source",
        }
    }
}

/// One reload (or `set_policy`), successful or not.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReloadReport<'a> {
    /// Whose material.
    pub side: Side,
    /// The generation in force after it (the new one, or the old one when it failed).
    pub generation: u64,
    /// `Ok(trust_changed)`: whether CAs, CRLs or the policy changed; or the error, with
    /// the previous material still in force.
    pub result: Result<bool, &'a crate::Error>,
    /// When it happened.
    pub at: SystemTime,
}

/// What a certificate in force is to its side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CertificateRole {
    /// This side's own certificate (the leaf it presents).
    Identity,
    /// An intermediate of this side's own chain.
    Chain,
    /// A CA this side trusts to verify its peers.
    Ca,
}

impl CertificateRole {
    /// `"identity"`, `"chain"` or `"ca"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Chain => "chain",
            Self::Ca => "ca",
        }
    }
}

/// A certificate in force.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct CertificateInForce {
    /// Identity, chain or CA.
    #[cfg_attr(feature = "serde", serde(serialize_with = "ser::role"))]
    pub role: CertificateRole,
    /// Its subject (RFC 4514, as [`PeerIdentity::subject`](crate::PeerIdentity::subject)).
    pub subject: String,
    /// Its serial, as [`PeerIdentity::serial`](crate::PeerIdentity::serial) writes it.
    pub serial: String,
    /// Its notAfter.
    #[cfg_attr(feature = "serde", serde(serialize_with = "ser::time"))]
    pub not_after: SystemTime,
}

/// A CRL in force.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct CrlInForce {
    /// Its issuer (RFC 4514).
    pub issuer: String,
    /// The file it was read from.
    pub path: std::path::PathBuf,
    /// Its nextUpdate, when it has one.
    #[cfg_attr(feature = "serde", serde(serialize_with = "ser::opt_time"))]
    pub next_update: Option<SystemTime>,
}

/// Everything in force on a side after a build or a successful reload.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MaterialReport<'a> {
    /// Whose material.
    pub side: Side,
    /// Which server or client (unique within the process, stable for its life), so that
    /// an observer shared by several can replace each one's report alone.
    pub instance: u64,
    /// Its generation.
    pub generation: u64,
    /// This side's own chain (identity, then chain) and its CAs.
    pub certificates: &'a [CertificateInForce],
    /// Its CRLs.
    pub crls: &'a [CrlInForce],
    /// When it was loaded.
    pub loaded_at: SystemTime,
}

/// Receives what a side reports; see the module docs. Every method has an empty default.
///
/// Handshake methods are called on the handshake path, with no lock held: keep them
/// short and non-blocking (count; don't write synchronously to a slow sink). `reload` and
/// `material` are called by the reloading thread while it holds the side's reload lock,
/// so reports of one side arrive in order.
pub trait Observer: Send + Sync + 'static {
    /// A handshake started.
    fn handshake_started(&self, side: Side) {
        let _ = side;
    }
    /// A handshake ended.
    fn handshake(&self, event: &HandshakeEvent) {
        let _ = event;
    }
    /// A started handshake was dropped before it ended (evicted, or its listener or
    /// caller went away).
    fn handshake_abandoned(&self, side: Side) {
        let _ = side;
    }
    /// A listener closed a connection to keep a cap.
    fn eviction(&self, reason: Eviction) {
        let _ = reason;
    }
    /// A reload happened.
    fn reload(&self, report: &ReloadReport<'_>) {
        let _ = report;
    }
    /// The material in force, at build and after each successful reload (it replaces
    /// the previous report of the same side entirely).
    fn material(&self, report: &MaterialReport<'_>) {
        let _ = report;
    }
}

impl<O: Observer + ?Sized> Observer for Arc<O> {
    fn handshake_started(&self, side: Side) {
        (**self).handshake_started(side);
    }
    fn handshake(&self, event: &HandshakeEvent) {
        (**self).handshake(event);
    }
    fn handshake_abandoned(&self, side: Side) {
        (**self).handshake_abandoned(side);
    }
    fn eviction(&self, reason: Eviction) {
        (**self).eviction(reason);
    }
    fn reload(&self, report: &ReloadReport<'_>) {
        (**self).reload(report);
    }
    fn material(&self, report: &MaterialReport<'_>) {
        (**self).material(report);
    }
}

/// An optional observer, as the builders and the parts they make hold it.
#[derive(Clone, Default)]
pub(crate) struct Slot(pub(crate) Option<Arc<dyn Observer>>);

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "Some(..)" } else { "None" })
    }
}

impl Slot {
    /// Starts timing a handshake of `side`, when something listens.
    pub(crate) fn start(&self, side: Side) -> Option<InFlight> {
        let observer = self.0.as_ref()?;
        observer.handshake_started(side);
        Some(InFlight {
            observer: observer.clone(),
            side,
            started: Instant::now(),
            done: false,
        })
    }

    pub(crate) fn eviction(&self, reason: Eviction) {
        if let Some(o) = &self.0 {
            o.eviction(reason);
        }
    }

    /// Reports one handshake that never started (the listener's first-byte wait).
    pub(crate) fn unstarted(&self, side: Side, result: HandshakeResult, reason: &'static str) {
        if let Some(o) = &self.0 {
            // Started and ended at once, so that in-flight counts stay balanced.
            o.handshake_started(side);
            o.handshake(&HandshakeEvent {
                side,
                result,
                reason,
                resumed: false,
                version: None,
                duration: Duration::ZERO,
            });
        }
    }
}

/// A handshake being timed; reports `handshake_abandoned` if dropped unfinished.
pub(crate) struct InFlight {
    observer: Arc<dyn Observer>,
    side: Side,
    started: Instant,
    done: bool,
}

impl InFlight {
    pub(crate) fn finish(
        mut self,
        result: HandshakeResult,
        reason: &'static str,
        resumed: bool,
        version: Option<TlsVersion>,
    ) {
        self.done = true;
        self.observer.handshake(&HandshakeEvent {
            side: self.side,
            result,
            reason,
            resumed,
            version,
            duration: self.started.elapsed(),
        });
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.done {
            self.observer.handshake_abandoned(self.side);
        }
    }
}

/// The version of a finished connection.
pub(crate) fn version_of(v: Option<rustls::ProtocolVersion>) -> Option<TlsVersion> {
    match v {
        Some(rustls::ProtocolVersion::TLSv1_3) => Some(TlsVersion::Tls13),
        Some(rustls::ProtocolVersion::TLSv1_2) => Some(TlsVersion::Tls12),
        _ => None,
    }
}

/// The reason class of a refusal. A failed handshake carries rustls' error, in which a
/// policy refusal is `ApplicationVerificationFailure` (class `access_denied`); this
/// crate's verifiers send that only for a policy refusal, which they log as `policy`, so
/// it is counted as `policy`, like the log line.
pub(crate) fn reason_of(r: &Rejection) -> &'static str {
    match r {
        Rejection::ApplicationDenied => "policy",
        r => r.class(),
    }
}

/// Result and reason of a handshake that failed with `error` (`rejection` when the
/// peer's certificate was the cause).
pub(crate) fn failure_of(
    error: &std::io::Error,
    rejection: Option<&Rejection>,
) -> (HandshakeResult, &'static str) {
    if let Some(r) = rejection {
        return (HandshakeResult::Refused, reason_of(r));
    }
    match error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        Some(
            e @ (rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented),
        ) => (
            HandshakeResult::Refused,
            reason_of(&Rejection::from_rustls(e, "?")),
        ),
        Some(_) => (HandshakeResult::Failed, "tls"),
        None if error.kind() == std::io::ErrorKind::TimedOut => {
            (HandshakeResult::Timeout, "connect_timeout")
        }
        None => (HandshakeResult::Failed, "io"),
    }
}

#[cfg(feature = "serde")]
pub(crate) mod ser {
    //! RFC 3339 timestamps and role names for the serialised reports.
    use std::time::SystemTime;

    use super::CertificateRole;

    pub(crate) fn time<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::error::fmt_time(*t))
    }

    pub(crate) fn opt_time<S: serde::Serializer>(
        t: &Option<SystemTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => time(t, s),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn role<S: serde::Serializer>(r: &CertificateRole, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(r.as_str())
    }
}

/// A `tracing` span named `mtls.peer` carrying who the peer is: fields `peer.subject`,
/// `peer.spiffe_id` (when it has one) and `peer.serial`, or `peer.anonymous = true`.
/// The HTTP adapters' identity-tracing layers run each request in it, so every event an
/// application logs while serving the request (its access log included) says who called.
/// Only the certificate's own fields, never its raw bytes.
pub fn peer_span(identity: Option<&crate::PeerIdentity>) -> tracing::Span {
    match identity {
        Some(id) => tracing::info_span!(
            "mtls.peer",
            peer.subject = %id.subject(),
            peer.spiffe_id = id.spiffe_id().map(tracing::field::display),
            peer.serial = %id.serial(),
        ),
        None => tracing::info_span!("mtls.peer", peer.anonymous = true),
    }
}

/// Records the peer into `span`'s fields `peer.subject`, `peer.spiffe_id` and
/// `peer.serial`, where the span declared them (`tracing::field::Empty`): for an
/// application that builds its own request span (e.g. tower-http's `TraceLayer`
/// `make_span_with`) instead of nesting [`peer_span`].
pub fn record_peer(span: &tracing::Span, identity: &crate::PeerIdentity) {
    span.record("peer.subject", tracing::field::display(identity.subject()));
    if let Some(spiffe) = identity.spiffe_id() {
        span.record("peer.spiffe_id", tracing::field::display(spiffe));
    }
    span.record("peer.serial", tracing::field::display(identity.serial()));
}
