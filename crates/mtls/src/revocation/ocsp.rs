//! OCSP for client certificates (feature `fetch`): requests, verified responses, the
//! shared per-certificate cache, and the checks the verifier and the acceptor run (see
//! the [module docs](super) for where each runs).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use rustls::crypto::SecureRandom;
use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use spki::AlgorithmIdentifierOwned;
use x509_cert::ext::Extension;
use x509_cert::serial_number::SerialNumber;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspRequest, OcspResponse, OcspResponseStatus, Request,
    TbsRequest,
};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::http::Fetcher;
use crate::verify::Rejection;

/// Which certificates of a client's chain are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OcspMode {
    /// The client's own certificate (nginx's `ssl_ocsp leaf`).
    #[default]
    Leaf,
    /// The client's certificate and each intermediate it sent (nginx's `ssl_ocsp on`).
    Chain,
}

/// What to do when no verified OCSP answer can be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OcspFailure {
    /// Admit the client and log a warning (`mtls::revocation`).
    #[default]
    Soft,
    /// Refuse the client (reason `ocsp_unavailable`).
    Hard,
}

/// What the builder collected.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) mode: OcspMode,
    pub(crate) failure: OcspFailure,
    pub(crate) responder: Option<String>,
    pub(crate) timeout: Duration,
    pub(crate) nonce: bool,
    pub(crate) max_age: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            mode: OcspMode::Leaf,
            failure: OcspFailure::Soft,
            responder: None,
            timeout: Duration::from_secs(2),
            nonce: true,
            max_age: Duration::from_secs(3600),
        }
    }
}

const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");
const BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
const OCSP_SIGNING: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 3, 9];
/// Clock skew allowed on thisUpdate.
const SKEW: Duration = Duration::from_secs(300);
/// How long a failed lookup is remembered, so a dead responder is not asked again by
/// every connection.
const NEGATIVE: Duration = Duration::from_secs(10);
/// Entries kept at most (each holds its certificate, ≈ 1 KiB).
const MAX_ENTRIES: usize = 20_000;

/// A certificate's status as verified from a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Status {
    Good,
    Revoked,
    /// No verified answer; why.
    Unavailable(String),
}

#[derive(Debug, Clone)]
struct Entry {
    status: Status,
    until: SystemTime,
}

/// The OCSP state of a server, shared by all its snapshots and connections.
#[derive(Debug)]
pub(crate) struct Ocsp {
    pub(crate) settings: Settings,
    /// Keyed by the certificate's DER itself: hashing it with the map's keyed SipHash
    /// costs a tenth of a SHA-256, and a lookup compares the whole certificate.
    cache: Mutex<HashMap<Box<[u8]>, Entry>>,
    fetcher: Fetcher,
}

impl Ocsp {
    pub(crate) fn new(settings: Settings) -> Self {
        Self {
            settings,
            cache: Mutex::default(),
            fetcher: Fetcher::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Box<[u8]>, Entry>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cached(&self, cert: &[u8], now: SystemTime) -> Option<Status> {
        let cache = self.lock();
        cache
            .get(cert)
            .filter(|e| e.until > now)
            .map(|e| e.status.clone())
    }

    fn store(&self, cert: &[u8], status: Status, until: SystemTime) {
        let key: Box<[u8]> = cert.into();
        let mut cache = self.lock();
        if cache.len() >= MAX_ENTRIES {
            let now = SystemTime::now();
            cache.retain(|_, e| e.until > now);
            if cache.len() >= MAX_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(key, Entry { status, until });
    }

    /// Asks the responder about `cert` (issued by `issuer`), verifies the answer and
    /// caches it.
    async fn fetch(
        &self,
        cert: &X509Certificate<'_>,
        cert_der: &[u8],
        issuer: &X509Certificate<'_>,
        random: &dyn SecureRandom,
    ) -> Status {
        let now = SystemTime::now();
        let status = match self.ask(cert, issuer, random, now).await {
            Ok((status, next_update)) => {
                let until = next_update
                    .unwrap_or(now + Duration::from_secs(300))
                    .min(now + self.settings.max_age);
                self.store(cert_der, status.clone(), until);
                status
            }
            Err(reason) => {
                self.store(
                    cert_der,
                    Status::Unavailable(reason.clone()),
                    now + NEGATIVE,
                );
                Status::Unavailable(reason)
            }
        };
        tracing::debug!(target: "mtls::revocation", ?status, "OCSP answer");
        status
    }

    async fn ask(
        &self,
        cert: &X509Certificate<'_>,
        issuer: &X509Certificate<'_>,
        random: &dyn SecureRandom,
        now: SystemTime,
    ) -> Result<(Status, Option<SystemTime>), String> {
        let url = match &self.settings.responder {
            Some(url) => url.clone(),
            None => super::dp::ocsp_url(cert).ok_or_else(|| {
                "the certificate names no http:// OCSP responder (authority information \
                 access) and no responder is configured"
                    .to_owned()
            })?,
        };
        let (status, next_update, _) = query(
            &self.fetcher,
            &url,
            cert,
            issuer,
            self.settings.nonce,
            random,
            self.settings.timeout,
            now,
        )
        .await?;
        Ok((status, next_update))
    }
}

/// Asks `url` about `cert` (issued by `issuer`) and verifies the answer; returns the
/// status, its nextUpdate and the response as received (for stapling).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn query(
    fetcher: &Fetcher,
    url: &str,
    cert: &X509Certificate<'_>,
    issuer: &X509Certificate<'_>,
    nonce: bool,
    random: &dyn SecureRandom,
    timeout: Duration,
    now: SystemTime,
) -> Result<(Status, Option<SystemTime>, Vec<u8>), String> {
    let id = cert_id(cert, issuer)?;
    let nonce = if nonce {
        let mut n = [0u8; 16];
        random
            .fill(&mut n)
            .map_err(|_| "no random bytes for the nonce".to_owned())?;
        Some(n)
    } else {
        None
    };
    let request = encode_request(&id, nonce.as_ref())?;
    let body = fetcher
        .post(url, "application/ocsp-request", request, timeout)
        .await
        .map_err(|e| e.to_string())?;
    let (status, next_update) = verify_response(&body, &id, issuer, nonce.as_ref(), now)?;
    Ok((status, next_update, body.to_vec()))
}

pub(crate) fn cert_id(
    cert: &X509Certificate<'_>,
    issuer: &X509Certificate<'_>,
) -> Result<CertId, String> {
    let err = |e: der::Error| format!("cannot encode the OCSP CertID: {e}");
    Ok(CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: SHA256,
            parameters: None,
        },
        issuer_name_hash: OctetString::new(Sha256::digest(issuer.subject().as_raw()).to_vec())
            .map_err(err)?,
        issuer_key_hash: OctetString::new(
            Sha256::digest(&*issuer.public_key().subject_public_key.data).to_vec(),
        )
        .map_err(err)?,
        serial_number: SerialNumber::new(cert.raw_serial()).map_err(err)?,
    })
}

fn nonce_extension(nonce: &[u8; 16]) -> Result<Extension, der::Error> {
    Ok(Extension {
        extn_id: NONCE,
        critical: false,
        extn_value: OctetString::new(OctetString::new(nonce.to_vec())?.to_der()?)?,
    })
}

fn encode_request(id: &CertId, nonce: Option<&[u8; 16]>) -> Result<Vec<u8>, String> {
    let err = |e: der::Error| format!("cannot encode the OCSP request: {e}");
    let request_extensions = match nonce {
        Some(n) => Some(vec![nonce_extension(n).map_err(err)?]),
        None => None,
    };
    OcspRequest {
        tbs_request: TbsRequest {
            version: x509_ocsp::Version::V1,
            requestor_name: None,
            request_list: vec![Request {
                req_cert: id.clone(),
                single_request_extensions: None,
            }],
            request_extensions,
        },
        optional_signature: None,
    }
    .to_der()
    .map_err(err)
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|&&x| x == 0).count();
    &b[n.min(b.len().saturating_sub(1))..]
}

fn same_cert_id(a: &CertId, b: &CertId) -> bool {
    a.hash_algorithm.oid == b.hash_algorithm.oid
        && a.issuer_name_hash == b.issuer_name_hash
        && a.issuer_key_hash == b.issuer_key_hash
        && strip_zeros(a.serial_number.as_bytes()) == strip_zeros(b.serial_number.as_bytes())
}

fn to_time(t: &x509_ocsp::OcspGeneralizedTime) -> SystemTime {
    SystemTime::UNIX_EPOCH + t.0.to_unix_duration()
}

fn has_ocsp_signing(cert: &X509Certificate<'_>) -> bool {
    cert.extended_key_usage().ok().flatten().is_some_and(|eku| {
        eku.value.ocsp_signing
            || eku.value.other.iter().any(|o| {
                o.iter()
                    .is_some_and(|arcs| arcs.eq(OCSP_SIGNING.iter().copied()))
            })
    })
}

/// Checks a DER OCSP response against the request: status, signer (the issuer, or a
/// delegated responder the issuer signed with the OCSP-signing EKU), CertID, times and
/// nonce. Returns the status and the nextUpdate.
pub(crate) fn verify_response(
    body: &[u8],
    id: &CertId,
    issuer: &X509Certificate<'_>,
    nonce: Option<&[u8; 16]>,
    now: SystemTime,
) -> Result<(Status, Option<SystemTime>), String> {
    let response =
        OcspResponse::from_der(body).map_err(|e| format!("not an OCSP response ({e})"))?;
    if response.response_status != OcspResponseStatus::Successful {
        return Err(format!(
            "the responder answered {:?}",
            response.response_status
        ));
    }
    let bytes = response
        .response_bytes
        .ok_or_else(|| "a successful OCSP response without a body".to_owned())?;
    if bytes.response_type != BASIC {
        return Err("not a basic OCSP response".to_owned());
    }
    let basic = BasicOcspResponse::from_der(bytes.response.as_bytes())
        .map_err(|e| format!("bad basic OCSP response ({e})"))?;
    check_signature(&basic, issuer, now)?;
    let tbs = &basic.tbs_response_data;
    if let Some(ours) = nonce {
        let expected = nonce_extension(ours).map_err(|e| e.to_string())?.extn_value;
        let echoed = tbs
            .response_extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == NONCE)
            .map(|e| &e.extn_value);
        if echoed != Some(&expected) {
            return Err("the response does not echo our nonce (replayed or stale)".to_owned());
        }
    }
    let single = tbs
        .responses
        .iter()
        .find(|r| same_cert_id(&r.cert_id, id))
        .ok_or_else(|| "the response is not about the certificate asked".to_owned())?;
    let this_update = to_time(&single.this_update);
    if this_update > now + SKEW {
        return Err("the response's thisUpdate is in the future".to_owned());
    }
    let next_update = single.next_update.as_ref().map(to_time);
    if let Some(next) = next_update
        && next < now
    {
        return Err("the response is past its nextUpdate".to_owned());
    }
    let status = match single.cert_status {
        CertStatus::Good(_) => Status::Good,
        CertStatus::Revoked(_) => Status::Revoked,
        CertStatus::Unknown(_) => {
            return Err("the responder does not know the certificate (status unknown)".to_owned());
        }
    };
    Ok((status, next_update))
}

#[cfg(any(feature = "aws-lc-rs", feature = "ring"))]
fn signed_by(
    basic: &BasicOcspResponse,
    tbs: &[u8],
    spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>,
) -> bool {
    let Ok(alg_der) = basic.signature_algorithm.to_der() else {
        return false;
    };
    let Ok((_, alg)) = x509_parser::x509::AlgorithmIdentifier::from_der(&alg_der) else {
        return false;
    };
    let Some(sig) = basic.signature.as_bytes() else {
        return false;
    };
    let sig = x509_parser::der_parser::asn1_rs::BitString::new(0, sig);
    x509_parser::verify::verify_signature(spki, &alg, &sig, tbs).is_ok()
}

/// Without a provider nothing can be verified: every response is refused.
#[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
fn signed_by(
    _basic: &BasicOcspResponse,
    _tbs: &[u8],
    _spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>,
) -> bool {
    false
}

fn check_signature(
    basic: &BasicOcspResponse,
    issuer: &X509Certificate<'_>,
    now: SystemTime,
) -> Result<(), String> {
    let tbs = basic
        .tbs_response_data
        .to_der()
        .map_err(|e| format!("cannot encode the response data ({e})"))?;
    if signed_by(basic, &tbs, issuer.public_key()) {
        return Ok(());
    }
    let unix = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    for cert in basic.certs.iter().flatten() {
        let Ok(der) = cert.to_der() else { continue };
        let Ok((_, responder)) = X509Certificate::from_der(&der) else {
            continue;
        };
        let delegated = responder.issuer().as_raw() == issuer.subject().as_raw()
            && responder
                .verify_signature(Some(issuer.public_key()))
                .is_ok()
            && has_ocsp_signing(&responder)
            && responder.validity().not_before.timestamp() <= unix
            && unix <= responder.validity().not_after.timestamp();
        if delegated && signed_by(basic, &tbs, responder.public_key()) {
            return Ok(());
        }
    }
    Err(
        "the response is signed neither by the issuer nor by a responder certificate the \
         issuer signed with the OCSP-signing EKU"
            .to_owned(),
    )
}

/// A snapshot's OCSP check: the shared state, the configured CAs (issuers of the
/// certificates clients send), and the provider's randomness for nonces.
#[derive(Debug, Clone)]
pub(crate) struct Check {
    pub(crate) ocsp: Arc<Ocsp>,
    pub(crate) cas: Arc<Vec<CertificateDer<'static>>>,
    pub(crate) random: &'static dyn SecureRandom,
}

/// A cached verdict on a chain, for the verifier.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Good,
    Revoked(String),
    /// Some status is not cached (or was unavailable): the acceptor decides.
    Pending,
}

fn serial_hex(cert: &X509Certificate<'_>) -> String {
    data_encoding::HEXUPPER.encode(cert.raw_serial())
}

impl Check {
    /// The (certificate, issuer) pairs to check in `chain`, leaf first.
    fn pairs<'c>(
        &'c self,
        chain: &'c [CertificateDer<'c>],
    ) -> Vec<(X509Certificate<'c>, &'c [u8], Option<X509Certificate<'c>>)> {
        let take = match self.ocsp.settings.mode {
            OcspMode::Leaf => 1,
            OcspMode::Chain => chain.len(),
        };
        let cas = self.cas.as_slice();
        let mut out = Vec::new();
        for (i, der) in chain.iter().enumerate().take(take) {
            let Ok((_, cert)) = X509Certificate::from_der(der.as_ref()) else {
                continue;
            };
            // A configured CA the client sent along is trusted as such.
            if i > 0 && cas.iter().any(|c| c.as_ref() == der.as_ref()) {
                continue;
            }
            let issuer = chain[i + 1..]
                .iter()
                .chain(cas.iter())
                .filter_map(|c| X509Certificate::from_der(c.as_ref()).ok().map(|(_, c)| c))
                .find(|c| {
                    c.subject().as_raw() == cert.issuer().as_raw()
                        && cert.verify_signature(Some(c.public_key())).is_ok()
                });
            out.push((cert, der.as_ref(), issuer));
        }
        out
    }

    /// What the cache says about `chain`, without the network.
    pub(crate) fn cached(&self, chain: &[CertificateDer<'_>]) -> Verdict {
        let now = SystemTime::now();
        let take = match self.ocsp.settings.mode {
            OcspMode::Leaf => 1,
            OcspMode::Chain => chain.len(),
        };
        let mut verdict = Verdict::Good;
        for der in chain.iter().take(take) {
            match self.ocsp.cached(der.as_ref(), now) {
                Some(Status::Revoked) => {
                    let serial = X509Certificate::from_der(der.as_ref())
                        .map_or_else(|_| "?".to_owned(), |(_, c)| serial_hex(&c));
                    return Verdict::Revoked(serial);
                }
                Some(Status::Good) => {}
                // A configured CA in the chain has no entry: it is not checked.
                None if self.cas.iter().any(|c| c.as_ref() == der.as_ref()) => {}
                _ => verdict = Verdict::Pending,
            }
        }
        verdict
    }

    /// Admits `chain` or says why not, asking the responder for what is not cached
    /// (bounded by the OCSP timeout per certificate).
    pub(crate) async fn admit(&self, chain: &[CertificateDer<'_>]) -> Result<(), Rejection> {
        let now = SystemTime::now();
        for (cert, der, issuer) in self.pairs(chain) {
            let status = match self.ocsp.cached(der, now) {
                Some(s) => s,
                None => match &issuer {
                    Some(issuer) => self.ocsp.fetch(&cert, der, issuer, self.random).await,
                    None => Status::Unavailable("its issuer is not in the chain".to_owned()),
                },
            };
            match status {
                Status::Good => {}
                Status::Revoked => {
                    return Err(Rejection::Revoked {
                        serial: serial_hex(&cert),
                    });
                }
                Status::Unavailable(reason) => match self.ocsp.settings.failure {
                    OcspFailure::Hard => return Err(Rejection::OcspUnavailable { reason }),
                    OcspFailure::Soft => tracing::warn!(
                        target: "mtls::revocation",
                        subject = %crate::material::rfc4514(cert.subject()),
                        serial = serial_hex(&cert),
                        reason = %reason,
                        "no OCSP answer; admitting the client (soft-fail)"
                    ),
                },
            }
        }
        Ok(())
    }
}

/// Checks the OCSP response a server stapled for `leaf` (must-staple on the client):
/// present, signed by the issuer (found among `intermediates` and `cas`) or its
/// delegated responder, about this certificate, current, and `good`.
pub(crate) fn check_staple(
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    cas: &[CertificateDer<'static>],
    response: &[u8],
    now: SystemTime,
) -> Result<(), Rejection> {
    let unavailable = |reason: String| Rejection::OcspUnavailable { reason };
    if response.is_empty() {
        return Err(unavailable(
            "the server stapled no OCSP response and one is required".to_owned(),
        ));
    }
    let (_, cert) = X509Certificate::from_der(leaf.as_ref())
        .map_err(|e| unavailable(format!("cannot parse the server certificate: {e}")))?;
    let issuer = intermediates
        .iter()
        .map(|c| c.as_ref())
        .chain(cas.iter().map(|c| c.as_ref()))
        .filter_map(|c| X509Certificate::from_der(c).ok().map(|(_, c)| c))
        .find(|c| {
            c.subject().as_raw() == cert.issuer().as_raw()
                && cert.verify_signature(Some(c.public_key())).is_ok()
        })
        .ok_or_else(|| unavailable("the server certificate's issuer is unknown".to_owned()))?;
    let id = cert_id(&cert, &issuer).map_err(unavailable)?;
    match verify_response(response, &id, &issuer, None, now).map_err(unavailable)? {
        (Status::Good, _) => Ok(()),
        (Status::Revoked, _) => Err(Rejection::Revoked {
            serial: serial_hex(&cert),
        }),
        (Status::Unavailable(reason), _) => Err(unavailable(reason)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn pair() -> (Vec<u8>, Vec<u8>) {
        let pki = mtls_testing::TestPki::new();
        let leaf = pki.intermediate.leaf("alice").client().build();
        (leaf.cert_der(), pki.intermediate.cert_der())
    }

    #[test]
    fn requests_carry_the_cert_id_and_the_nonce() {
        let (leaf, issuer) = pair();
        let (_, leaf) = X509Certificate::from_der(&leaf).unwrap();
        let (_, issuer) = X509Certificate::from_der(&issuer).unwrap();
        let id = cert_id(&leaf, &issuer).unwrap();
        let der = encode_request(&id, Some(&[7; 16])).unwrap();
        let parsed = OcspRequest::from_der(&der).unwrap();
        assert!(same_cert_id(
            &parsed.tbs_request.request_list[0].req_cert,
            &id
        ));
        let ext = &parsed.tbs_request.request_extensions.unwrap()[0];
        assert_eq!(ext.extn_id, NONCE);
    }

    #[test]
    fn garbage_and_unsuccessful_responses_are_errors_not_panics() {
        let (leaf, issuer) = pair();
        let (_, leaf) = X509Certificate::from_der(&leaf).unwrap();
        let (_, issuer) = X509Certificate::from_der(&issuer).unwrap();
        let id = cert_id(&leaf, &issuer).unwrap();
        let now = SystemTime::now();
        for body in [&b""[..], b"\x30\x03\x0a\x01\x01", b"\x30\x80", &[0xff; 64]] {
            assert!(verify_response(body, &id, &issuer, None, now).is_err());
        }
        // tryLater (3), no body.
        let e = verify_response(b"\x30\x03\x0a\x01\x03", &id, &issuer, None, now);
        assert!(e.unwrap_err().contains("TryLater"));
    }

    #[test]
    fn a_cert_id_matches_regardless_of_serial_padding() {
        let (leaf, issuer) = pair();
        let (_, leaf) = X509Certificate::from_der(&leaf).unwrap();
        let (_, issuer) = X509Certificate::from_der(&issuer).unwrap();
        let a = cert_id(&leaf, &issuer).unwrap();
        let mut b = a.clone();
        b.issuer_key_hash = OctetString::new(vec![0; 32]).unwrap();
        assert!(same_cert_id(&a, &a.clone()));
        assert!(
            !same_cert_id(&a, &b),
            "another issuer key is another certificate"
        );
    }
}
