//! One immutable snapshot per side, built by a pure loader from a [`Spec`](crate::spec::Spec).
//!
//! A snapshot holds everything a handshake needs: the certified key, the trust (WebPki
//! verifier over the CAs and CRLs, the policy, the cache of accepted chains), the
//! generation and trust epoch, and the rustls config bound to them. The config's resolver
//! and verifier *are* this snapshot's, so a handshake that started on it sees nothing
//! else, and a session stored by it is only found by configs of the same trust epoch
//! (server) or of the same snapshot (client). The reloader publishes each new snapshot
//! with one store.
//!
//! For rustls loops that keep one config for their whole life, each side also builds a
//! *following* config whose resolver and verifier read the snapshot in force at each
//! handshake. It never resumes sessions: such a loop has no place to check a resumed
//! session against the trust in force (see the crate docs' *Resumption* section).

pub(crate) mod client;
pub(crate) mod server;

use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};

use crate::spec::{Revocation, Spec};

/// What a side trusts its peers with; two snapshots with equal keys trust alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TrustKey {
    cas: Vec<CertificateDer<'static>>,
    crls: Vec<CertificateRevocationListDer<'static>>,
    policy_version: u64,
    revocation: Revocation,
}

impl TrustKey {
    pub(crate) fn new(
        spec: &Spec,
        cas: &[CertificateDer<'static>],
        crls: &[CertificateRevocationListDer<'static>],
    ) -> Self {
        Self {
            cas: cas.to_vec(),
            crls: crls.to_vec(),
            policy_version: spec.policy_version,
            revocation: spec.revocation,
        }
    }
}

/// The unix time now, as rustls verifiers take it.
pub(crate) fn unix_now() -> rustls::pki_types::UnixTime {
    rustls::pki_types::UnixTime::now()
}
