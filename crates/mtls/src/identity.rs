//! TEMPORARY STUB (replaced by the real module).
#![allow(missing_docs, dead_code)]
use rustls::pki_types::CertificateDer;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct PeerIdentity {
    subject: String,
    issuer: String,
    serial: String,
    fp: String,
    cn: Option<String>,
    generation: u64,
}
#[derive(Debug, thiserror::Error)]
#[error("bad identity: {0}")]
pub struct IdentityError(String);
impl PeerIdentity {
    pub fn from_chain(chain: &[CertificateDer<'_>]) -> Result<Self, IdentityError> {
        use x509_parser::prelude::FromDer;
        let leaf = chain.first().ok_or_else(|| IdentityError("empty".into()))?;
        let (_, c) = x509_parser::certificate::X509Certificate::from_der(leaf.as_ref())
            .map_err(|e| IdentityError(e.to_string()))?;
        Ok(Self {
            subject: c.subject().to_string(),
            issuer: c.issuer().to_string(),
            serial: c.raw_serial_as_string(),
            fp: String::new(),
            cn: c
                .subject()
                .iter_common_name()
                .next()
                .and_then(|c| c.as_str().ok())
                .map(str::to_owned),
            generation: 0,
        })
    }
    pub fn subject(&self) -> &str {
        &self.subject
    }
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
    pub fn serial(&self) -> &str {
        &self.serial
    }
    pub fn common_name(&self) -> Option<&str> {
        self.cn.as_deref()
    }
    pub fn fingerprint_sha256(&self) -> &str {
        &self.fp
    }
    pub fn generation(&self) -> u64 {
        self.generation
    }
    pub(crate) fn set_generation(&mut self, g: u64) {
        self.generation = g
    }
}
pub trait IdentityExtractor: Send + Sync + 'static {
    type Principal: Clone + Send + Sync + 'static;
    fn extract(&self, peer: &Arc<PeerIdentity>) -> Result<Self::Principal, ExtractError>;
}
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultExtractor;
impl IdentityExtractor for DefaultExtractor {
    type Principal = Arc<PeerIdentity>;
    fn extract(&self, p: &Arc<PeerIdentity>) -> Result<Self::Principal, ExtractError> {
        Ok(p.clone())
    }
}
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ExtractError(String);
impl ExtractError {
    pub fn new(m: impl Into<String>) -> Self {
        Self(m.into())
    }
}
