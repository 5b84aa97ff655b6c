#![cfg_attr(not(feature = "fetch"), allow(dead_code))]
//! What a builder collects about fetched revocation data, and the builder setters.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The URLs a server fetches CRLs from and where it keeps them; part of the spec.
#[derive(Debug, Clone)]
pub(crate) struct Sources {
    /// Configured CRL URLs.
    pub(crate) crl_urls: Vec<String>,
    /// Also fetch the distribution points of the CAs and of the certificates seen.
    pub(crate) from_dp: bool,
    /// Where fetched CRLs are kept as last good.
    pub(crate) cache_dir: Option<PathBuf>,
    /// Bounds of the refresh interval.
    pub(crate) refresh: (Duration, Duration),
    /// URLs found in distribution points (shared by every clone of the spec and by the
    /// snapshots' verifiers, which add what they see).
    pub(crate) discovered: Arc<Discovered>,
    /// OCSP for client certificates, as the builder set it.
    #[cfg(feature = "fetch")]
    pub(crate) ocsp_settings: Option<super::ocsp::Settings>,
    /// The shared OCSP state, made by `build` from the settings.
    #[cfg(feature = "fetch")]
    pub(crate) ocsp: Option<Arc<super::ocsp::Ocsp>>,
    /// Stapling of the server's own certificate: (responder override, refresh bounds).
    #[cfg(feature = "fetch")]
    pub(crate) staple: Option<(Option<String>, (Duration, Duration))>,
    /// The stapler, made by `build`.
    #[cfg(feature = "fetch")]
    pub(crate) stapler: Option<Arc<super::staple::Stapler>>,
    /// Client: the server must staple a good OCSP response.
    pub(crate) require_staple: bool,
}

impl Default for Sources {
    fn default() -> Self {
        Self {
            crl_urls: Vec::new(),
            from_dp: false,
            cache_dir: None,
            refresh: (Duration::from_secs(60), Duration::from_secs(3600)),
            discovered: Arc::default(),
            #[cfg(feature = "fetch")]
            ocsp_settings: None,
            #[cfg(feature = "fetch")]
            ocsp: None,
            #[cfg(feature = "fetch")]
            staple: None,
            #[cfg(feature = "fetch")]
            stapler: None,
            require_staple: false,
        }
    }
}

/// Distribution-point URLs seen so far, and a wake-up for the fetcher when one is new.
#[derive(Debug, Default)]
pub(crate) struct Discovered {
    urls: Mutex<BTreeSet<String>>,
    pub(crate) notify: tokio::sync::Notify,
}

/// At most this many distinct distribution-point URLs are followed: a peer cannot make
/// the server fetch from arbitrary many places (each must still be in a certificate that
/// chains to a configured CA).
const MAX_DISCOVERED: usize = 64;

impl Discovered {
    pub(crate) fn urls(&self) -> Vec<String> {
        self.lock().iter().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.urls.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds the distribution points of `cert`; wakes the fetcher when one is new.
    pub(crate) fn add_from(&self, cert: &CertificateDer<'_>) {
        let found = super::dp::crl_urls(cert.as_ref());
        if found.is_empty() {
            return;
        }
        let mut urls = self.lock();
        let mut new = false;
        for url in found {
            if urls.len() >= MAX_DISCOVERED {
                break;
            }
            new |= urls.insert(url);
        }
        drop(urls);
        if new {
            self.notify.notify_one();
        }
    }
}

impl Sources {
    /// Whether anything is fetched.
    pub(crate) fn any(&self) -> bool {
        !self.crl_urls.is_empty() || self.from_dp
    }

    /// The cached CRL files to load beside the configured ones: those in the cache
    /// directory whose issuer is one of `cas` or of the intermediates of this side's own
    /// chain, as for CRL files (a CRL of a CA no longer configured is skipped, so dropping
    /// a CA does not make every reload fail).
    pub(crate) fn cached_crls(
        &self,
        cas: &[CertificateDer<'static>],
        own_chain: &[CertificateDer<'static>],
    ) -> Vec<PathBuf> {
        let Some(dir) = &self.cache_dir else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let subjects: Vec<Vec<u8>> = cas
            .iter()
            .chain(own_chain.iter().skip(1))
            .filter_map(|c| X509Certificate::from_der(c.as_ref()).ok())
            .map(|(_, c)| c.subject().as_raw().to_vec())
            .collect();
        let mut out: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "crl"))
            .filter(|p| issued_by_one_of(p, &subjects))
            .collect();
        out.sort();
        out
    }
}

fn issued_by_one_of(path: &Path, subjects: &[Vec<u8>]) -> bool {
    let Ok(der) = std::fs::read(path) else {
        return false;
    };
    match x509_parser::parse_x509_crl(&der) {
        Ok((_, crl)) => {
            let issuer = crl.issuer().as_raw();
            let known = subjects.iter().any(|s| s.as_slice() == issuer);
            if !known {
                tracing::info!(
                    target: "mtls::revocation",
                    file = %path.display(),
                    issuer = %crate::material::rfc4514(crl.issuer()),
                    "skipping a cached CRL whose issuer is not a configured CA"
                );
            }
            known
        }
        Err(e) => {
            tracing::warn!(
                target: "mtls::revocation",
                file = %path.display(),
                error = %e,
                "skipping a cached CRL that does not parse"
            );
            false
        }
    }
}

#[cfg(feature = "fetch")]
impl crate::ServerBuilder {
    /// Fetches a CRL from `url` (`http://`) in the background and keeps it fresh; see
    /// [`revocation`](crate::revocation). May be called again. Needs
    /// [`crl_cache_dir`](Self::crl_cache_dir), and `build` inside a tokio runtime.
    pub fn crl_url(mut self, url: impl Into<String>) -> Self {
        self.spec.fetch.crl_urls.push(url.into());
        self
    }

    /// Also fetches the CRLs named by the CRL distribution points of the configured CAs
    /// and of every client certificate verified; see [`revocation`](crate::revocation).
    pub fn crl_from_distribution_points(mut self) -> Self {
        self.spec.fetch.from_dp = true;
        self
    }

    /// Where fetched CRLs are kept (created if missing); they are loaded from there at
    /// the next start, so a restart during an outage still has them.
    pub fn crl_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spec.fetch.cache_dir = Some(dir.into());
        self
    }

    /// Bounds of the CRL refresh interval (default 1 min … 1 h): a CRL is fetched again
    /// after half the time left to its nextUpdate, within these bounds.
    pub fn crl_refresh(mut self, min: Duration, max: Duration) -> Self {
        self.spec.fetch.refresh = (min.min(max), max.max(min));
        self
    }

    /// Checks each client certificate (or the whole chain) with OCSP; see
    /// [`revocation`](crate::revocation) for where the check runs and what a first sight
    /// costs. The responder is the one in the certificate's authority information access
    /// unless [`ocsp_responder`](Self::ocsp_responder) overrides it.
    pub fn ocsp(mut self, mode: crate::revocation::OcspMode) -> Self {
        self.ocsp_settings().mode = mode;
        self
    }

    /// What to do without a verified OCSP answer (default soft-fail: admit and warn).
    pub fn ocsp_failure(mut self, failure: crate::revocation::OcspFailure) -> Self {
        self.ocsp_settings().failure = failure;
        self
    }

    /// The OCSP responder to ask instead of the one each certificate names.
    pub fn ocsp_responder(mut self, url: impl Into<String>) -> Self {
        self.ocsp_settings().responder = Some(url.into());
        self
    }

    /// How long the first sight of a certificate may wait for the responder (default
    /// 2 s; the handshake timeout bounds it too).
    pub fn ocsp_timeout(mut self, timeout: Duration) -> Self {
        self.ocsp_settings().timeout = timeout;
        self
    }

    /// Whether requests carry a nonce that the response must echo (default on).
    pub fn ocsp_nonce(mut self, on: bool) -> Self {
        self.ocsp_settings().nonce = on;
        self
    }

    /// How long an answer is cached at most (default 1 h; it is never kept past its
    /// nextUpdate). `Duration::ZERO` asks the responder at every connection.
    pub fn ocsp_max_age(mut self, age: Duration) -> Self {
        self.ocsp_settings().max_age = age;
        self
    }

    /// Staples an OCSP response for the server's own certificate, fetched from the
    /// responder its authority information access names (or `responder`), verified,
    /// and refreshed in the background; see [`revocation`](crate::revocation).
    pub fn staple_ocsp(mut self, responder: Option<String>) -> Self {
        let refresh = self
            .spec
            .fetch
            .staple
            .as_ref()
            .map_or((Duration::from_secs(60), Duration::from_secs(3600)), |s| {
                s.1
            });
        self.spec.fetch.staple = Some((responder, refresh));
        self
    }

    /// Bounds of the staple refresh interval (default 1 min … 1 h): half the time left
    /// to the response's nextUpdate, within these bounds. Turns stapling on.
    pub fn staple_refresh(mut self, min: Duration, max: Duration) -> Self {
        let responder = self.spec.fetch.staple.take().and_then(|s| s.0);
        self.spec.fetch.staple = Some((responder, (min.min(max), max.max(min))));
        self
    }

    fn ocsp_settings(&mut self) -> &mut super::ocsp::Settings {
        self.spec
            .fetch
            .ocsp_settings
            .get_or_insert_with(Default::default)
    }
}

#[cfg(feature = "fetch")]
impl crate::ClientBuilder {
    /// Requires the server to staple an OCSP response for its certificate that verifies
    /// (signed by its issuer or a delegated responder, about this certificate, current)
    /// and says `good`; otherwise the handshake fails (reason `ocsp_unavailable`, or
    /// `revoked`). Like TLS Feature "must-staple" (RFC 7633), but asked by the client.
    /// Turns session resumption off: a resumed session carries no stapled response, so
    /// every connection is a full handshake that sees a current one.
    pub fn require_ocsp_staple(mut self) -> Self {
        self.spec.fetch.require_staple = true;
        self
    }
}
