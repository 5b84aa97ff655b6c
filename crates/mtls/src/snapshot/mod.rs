//! One immutable snapshot per side, built by a pure loader from a [`Spec`].
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

use std::sync::Arc;
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};

use crate::error::{Error, Result, Role};
use crate::material::{self, CrlInfo, IdentityChecks, LoadedCas, LoadedCrls, LoadedIdentity};
use crate::spec::{Revocation, Spec};

/// What both sides load from their files, checked: CAs, CRLs (not rolled back from
/// `previous_crls`), and this side's own identity when it has one (a server must).
pub(crate) struct Material {
    pub(crate) cas: LoadedCas,
    pub(crate) crls: LoadedCrls,
    pub(crate) identity: Option<LoadedIdentity>,
}

pub(crate) fn load_material(
    spec: &Spec,
    role: Role,
    provider: &Arc<CryptoProvider>,
    previous_crls: Option<&[CrlInfo]>,
) -> Result<Material> {
    if role == Role::Server && spec.identity.is_none() {
        return Err(Error::MissingIdentity { role });
    }
    let now = SystemTime::now();
    // Every problem of one load is reported (`Error::Several`), not only the first: each
    // stage that fails is recorded, and the stages after it run on what could be loaded
    // (no CAs: the own-chain check is skipped; no CRLs: nothing is revoked).
    let mut problems = Vec::new();
    let cas = material::load_cas(&spec.cas, now).unwrap_or_else(|e| {
        problems.push(e);
        LoadedCas::empty()
    });
    let raw = match &spec.identity {
        Some(source) => material::read_identity(source, &spec.key_password, provider)
            .map_err(|e| problems.push(e))
            .ok(),
        None => None,
    };
    let chain = raw.as_ref().map(|r| r.chain.as_slice()).unwrap_or_default();
    if spec.fetch.from_dp {
        for ca in &cas.certs {
            spec.fetch.discovered.add_from(ca);
        }
    }
    // Fetched CRLs (their last good copies on disk) first, then the configured files.
    let mut crl_paths = spec.fetch.cached_crls(&cas.certs, chain);
    crl_paths.extend(spec.crls.iter().cloned());
    let trust_loaded = problems.is_empty();
    let crls = material::load_crls(&crl_paths, &cas, chain, spec.revocation.enforce_expiry, now)
        .unwrap_or_else(|e| {
            problems.push(e);
            LoadedCrls::default()
        });
    if let Some(previous) = previous_crls
        && let Err(e) = material::check_crl_progress(previous, &crls.info, &cas)
    {
        problems.push(e);
    }
    let check_chain = spec.check_identity_chain && trust_loaded && problems.is_empty();
    let identity = match raw {
        Some(raw) => material::load_identity(
            raw,
            provider,
            IdentityChecks {
                role,
                cas: &cas,
                crls: &crls.ders,
                check_chain,
                now,
            },
        )
        .map_err(|e| problems.push(e))
        .ok(),
        None => None,
    };
    if !problems.is_empty() {
        return Err(Error::from_problems(problems));
    }
    Ok(Material {
        cas,
        crls,
        identity,
    })
}

/// Applies the revocation options to a WebPki client or server verifier builder (the
/// two builder types have the same methods).
macro_rules! with_revocation {
    ($builder:expr, $revocation:expr) => {{
        let mut builder = $builder;
        let revocation: $crate::spec::Revocation = $revocation;
        if !revocation.whole_chain {
            builder = builder.only_check_end_entity_revocation();
        }
        if revocation.allow_unknown {
            builder = builder.allow_unknown_revocation_status();
        }
        if revocation.enforce_expiry {
            builder = builder.enforce_revocation_expiration();
        }
        builder
    }};
}
pub(crate) use with_revocation;

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
