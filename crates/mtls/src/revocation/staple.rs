//! OCSP stapling of the server's own certificate (feature `fetch`): a background task
//! fetches and verifies the response for the certificate in force, and the resolver
//! serves it from the certified key (rustls' `CertifiedKey::ocsp`).
//!
//! The response is fetched again after half the time left to its nextUpdate (bounded
//! by [`staple_refresh`](crate::ServerBuilder::staple_refresh)); when a fetch fails the
//! last good response is stapled until its nextUpdate, then none is. A reload that
//! changes the certificate is seen at the next round (at most the lower bound later):
//! until then the new certificate is served without a staple, never with the old one's.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::{ArcSwap, ArcSwapOption};
use rustls::crypto::SecureRandom;
use rustls::sign::CertifiedKey;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::http::Fetcher;
use super::ocsp::{Status, query};
use crate::snapshot::server::ServerSnapshot;

/// A stapled key: the snapshot's key it was made from, the same key with the response.
#[derive(Debug)]
struct Stapled {
    base: Arc<CertifiedKey>,
    stapled: Arc<CertifiedKey>,
    until: SystemTime,
}

/// What the resolver reads, and the task's settings.
#[derive(Debug)]
pub(crate) struct Stapler {
    current: ArcSwapOption<Stapled>,
    pub(crate) responder: Option<String>,
    pub(crate) refresh: (Duration, Duration),
    pub(crate) timeout: Duration,
}

impl Stapler {
    pub(crate) fn new(
        responder: Option<String>,
        refresh: (Duration, Duration),
        timeout: Duration,
    ) -> Self {
        Self {
            current: ArcSwapOption::empty(),
            responder,
            refresh,
            timeout,
        }
    }

    /// `key` with its stapled response when one is in force for it (one pointer
    /// comparison and a clock read per handshake).
    pub(crate) fn staple(&self, key: &Arc<CertifiedKey>) -> Arc<CertifiedKey> {
        match &*self.current.load() {
            Some(s) if Arc::ptr_eq(&s.base, key) && s.until > SystemTime::now() => {
                s.stapled.clone()
            }
            _ => key.clone(),
        }
    }

    /// Starts the refresh task for the server whose snapshots `current` publishes.
    pub(crate) fn start(
        self: &Arc<Self>,
        current: &Arc<ArcSwap<ServerSnapshot>>,
        cas: Vec<crate::spec::CaSource>,
        random: &'static dyn SecureRandom,
    ) -> crate::Result<()> {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| crate::Error::Revocation {
                reason: "OCSP stapling needs a tokio runtime: build the server inside one".into(),
            })?;
        let stapler = Arc::downgrade(self);
        let snapshots = Arc::downgrade(current);
        runtime.spawn(async move {
            let fetcher = Fetcher::default();
            let mut failures = 0u32;
            loop {
                let (Some(stapler), Some(snapshots)) = (stapler.upgrade(), snapshots.upgrade())
                else {
                    return;
                };
                let key = snapshots.load().keys.default.clone();
                let wait = match stapler.refresh_once(&fetcher, &key, &cas, random).await {
                    Ok(next_update) => {
                        failures = 0;
                        super::crl::schedule(next_update, stapler.refresh)
                    }
                    Err(reason) => {
                        failures = failures.saturating_add(1);
                        tracing::warn!(
                            target: "mtls::revocation",
                            error = %reason,
                            "OCSP staple refresh failed; the last good response (if any) \
                             stays stapled until its nextUpdate"
                        );
                        super::crl::backoff(failures, stapler.refresh)
                    }
                };
                drop((stapler, snapshots));
                tokio::time::sleep(wait).await;
            }
        });
        Ok(())
    }

    async fn refresh_once(
        &self,
        fetcher: &Fetcher,
        key: &Arc<CertifiedKey>,
        cas: &[crate::spec::CaSource],
        random: &'static dyn SecureRandom,
    ) -> Result<Option<SystemTime>, String> {
        let leaf_der = key.cert.first().ok_or("the server has no certificate")?;
        let (_, leaf) = X509Certificate::from_der(leaf_der.as_ref())
            .map_err(|e| format!("cannot parse the server certificate: {e}"))?;
        let mut candidates: Vec<rustls::pki_types::CertificateDer<'static>> =
            key.cert.iter().skip(1).cloned().collect();
        for source in cas {
            if let Ok(certs) = crate::material::ca_source_certs(source) {
                candidates.extend(certs);
            }
        }
        let parsed: Vec<X509Certificate<'_>> = candidates
            .iter()
            .filter_map(|c| X509Certificate::from_der(c.as_ref()).ok().map(|(_, c)| c))
            .collect();
        let issuer = parsed
            .iter()
            .find(|c| {
                c.subject().as_raw() == leaf.issuer().as_raw()
                    && leaf.verify_signature(Some(c.public_key())).is_ok()
            })
            .ok_or_else(|| {
                format!(
                    "the issuer of the server certificate (\"{}\") is neither in its chain \
                     file nor a configured CA",
                    crate::material::rfc4514(leaf.issuer())
                )
            })?;
        let url = match &self.responder {
            Some(u) => u.clone(),
            None => super::dp::ocsp_url(&leaf)
                .ok_or("the server certificate names no http:// OCSP responder")?,
        };
        let now = SystemTime::now();
        let (status, next_update, body) = query(
            fetcher,
            &url,
            &leaf,
            issuer,
            true,
            random,
            self.timeout,
            now,
        )
        .await?;
        let until = next_update.unwrap_or(now + self.refresh.1);
        let mut stapled = CertifiedKey::clone(key);
        stapled.ocsp = Some(body);
        self.current.store(Some(Arc::new(Stapled {
            base: key.clone(),
            stapled: Arc::new(stapled),
            until,
        })));
        tracing::info!(
            target: "mtls::revocation",
            status = match status {
                Status::Good => "good",
                Status::Revoked => "revoked",
                Status::Unavailable(_) => "unavailable",
            },
            "OCSP response for the server certificate stapled"
        );
        Ok(next_update)
    }
}
