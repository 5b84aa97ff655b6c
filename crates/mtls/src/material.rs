//! Loading and cross-checking the material a side is built from (preflight checks).
//!
//! Everything here runs when a configuration is built and on every reload, never during a
//! handshake. A check that fails returns the [`Error`] variant that explains it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, RootCertStore};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Name};
use x509_parser::x509::X509Version;

use crate::error::{Error, Result, Role, fmt_time};
use crate::spec::{CaSource, IdentitySource};

/// A loaded, checked identity.
#[derive(Debug)]
pub(crate) struct LoadedIdentity {
    pub(crate) certified: Arc<CertifiedKey>,
    pub(crate) subject: String,
    pub(crate) not_after: SystemTime,
}

/// Loaded, checked CA certificates.
#[derive(Debug, Clone)]
pub(crate) struct LoadedCas {
    /// Raw subject of each CA, in `certs` order.
    subjects: Vec<Vec<u8>>,
    pub(crate) certs: Vec<CertificateDer<'static>>,
    /// (subject, not_after) of each CA.
    pub(crate) info: Vec<(String, SystemTime)>,
    pub(crate) roots: Arc<RootCertStore>,
}

impl LoadedCas {
    /// No CAs (what the later checks see when the CA files failed to load).
    pub(crate) fn empty() -> Self {
        Self {
            subjects: Vec::new(),
            certs: Vec::new(),
            info: Vec::new(),
            roots: Arc::new(RootCertStore::empty()),
        }
    }

    fn subjects_raw(&self) -> impl Iterator<Item = &[u8]> {
        self.subjects.iter().map(Vec::as_slice)
    }
}

/// The certificates of a CA file: PEM / DER, or a PKCS#12 trust bundle.
pub(crate) fn ca_source_certs(source: &CaSource) -> Result<Vec<CertificateDer<'static>>> {
    let path = &source.path;
    match &source.pkcs12 {
        None => crate::pem::load_certs(path),
        Some(password) => {
            let certs = crate::pkcs12::load(path, password)?.certs;
            if certs.is_empty() {
                return Err(Error::NoCertificate {
                    path: path.clone(),
                    hint: "; the PKCS#12 file holds no certificate",
                });
            }
            Ok(certs)
        }
    }
}

/// Loads the CA files, checking that each holds CA certificates that have not all expired.
pub(crate) fn load_cas(sources: &[CaSource], now: SystemTime) -> Result<LoadedCas> {
    let mut out = LoadedCas {
        subjects: Vec::new(),
        certs: Vec::new(),
        info: Vec::new(),
        roots: Arc::new(RootCertStore::empty()),
    };
    let mut roots = RootCertStore::empty();
    for source in sources {
        let path = &source.path;
        let certs = ca_source_certs(source)?;
        let mut expired = Vec::new();
        for (i, der) in certs.iter().enumerate() {
            let cert = parse(der, path, i + 1)?;
            let subject = rfc4514(cert.subject());
            if let Ok(Some(bc)) = cert.basic_constraints()
                && !bc.value.ca
            {
                return Err(Error::NotACa {
                    path: path.clone(),
                    index: i + 1,
                    subject,
                });
            }
            let not_after = to_system_time(cert.validity().not_after.timestamp());
            if not_after < now {
                tracing::warn!(
                    target: "mtls::material",
                    file = %path.display(),
                    ca = %subject,
                    not_after = %fmt_time(not_after),
                    "a configured CA certificate has expired"
                );
                expired.push((subject.clone(), not_after));
            }
            roots.add(der.clone()).map_err(|e| Error::BadCertificate {
                path: path.clone(),
                index: i + 1,
                detail: format!("not usable as a trust anchor: {e}"),
            })?;
            out.info.push((subject, not_after));
            out.subjects.push(cert.subject().as_raw().to_vec());
            out.certs.push(der.clone());
        }
        if expired.len() == certs.len()
            && let Some((subject, not_after)) = expired.into_iter().next()
        {
            return Err(Error::CaExpired {
                path: path.clone(),
                subject,
                not_after,
            });
        }
    }
    out.roots = Arc::new(roots);
    Ok(out)
}

/// What a reload compares between the CRLs in force and the new ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CrlInfo {
    pub(crate) path: PathBuf,
    pub(crate) issuer: String,
    /// The issuer in RFC 4514, as identities write names.
    pub(crate) issuer_rfc4514: String,
    issuer_raw: Vec<u8>,
    number: Option<x509_parser::num_bigint::BigUint>,
    this_update: i64,
    pub(crate) next_update: Option<SystemTime>,
}

impl CrlInfo {
    /// Whether `self` is older than `other` (same issuer): a lower CRL number, or an
    /// earlier thisUpdate.
    fn older_than(&self, other: &Self) -> bool {
        match (&self.number, &other.number) {
            (Some(a), Some(b)) if a != b => a < b,
            _ => self.this_update < other.this_update,
        }
    }

    fn describe(&self) -> String {
        let this = fmt_time(to_system_time(self.this_update));
        match &self.number {
            Some(n) => format!("CRL number {n}, thisUpdate {this}"),
            None => format!("thisUpdate {this}"),
        }
    }
}

/// Loaded, checked CRLs.
#[derive(Debug, Clone, Default)]
pub(crate) struct LoadedCrls {
    pub(crate) ders: Vec<CertificateRevocationListDer<'static>>,
    pub(crate) info: Vec<CrlInfo>,
}

/// Loads CRL files. Each must parse, and must be issued by a configured CA or by a CA
/// certificate in this side's own chain (an intermediate), whose signature it must carry:
/// a CRL that covers none of the CAs would revoke nothing, and with unknown revocation
/// status allowed it would silently turn revocation off. A CRL past its nextUpdate is an
/// error when `enforce_expiry` is set (the verifier would refuse every peer it covers),
/// and a warning otherwise.
pub(crate) fn load_crls(
    paths: &[PathBuf],
    cas: &LoadedCas,
    own_chain: &[CertificateDer<'static>],
    enforce_expiry: bool,
    now: SystemTime,
) -> Result<LoadedCrls> {
    let mut out = LoadedCrls::default();
    let issuers: Vec<X509Certificate<'_>> = cas
        .certs
        .iter()
        .chain(own_chain.iter().skip(1))
        .filter_map(|c| X509Certificate::from_der(c.as_ref()).ok())
        .map(|(_, c)| c)
        .collect();
    for path in paths {
        for crl in crate::pem::load_crls(path)? {
            let (_, parsed) =
                x509_parser::parse_x509_crl(crl.as_ref()).map_err(|e| Error::BadCrl {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            if parsed.version().is_none_or(|v| v != X509Version::V2) {
                return Err(Error::CrlNotV2 {
                    path: path.clone(),
                    issuer: rfc4514(parsed.issuer()),
                });
            }
            let named: Vec<&X509Certificate<'_>> = issuers
                .iter()
                .filter(|ca| ca.subject().as_raw() == parsed.issuer().as_raw())
                .collect();
            if named.is_empty() {
                return Err(Error::CrlIssuerUnknown {
                    path: path.clone(),
                    issuer: rfc4514(parsed.issuer()),
                    known_cas: cas.info.iter().map(|(s, _)| s.clone()).collect(),
                });
            }
            if !named.iter().any(|ca| crl_signed_by(&parsed, ca)) {
                return Err(Error::BadCrl {
                    path: path.clone(),
                    reason: format!(
                        "its signature does not verify with the key of the CA \
                         \"{}\" it names as issuer: it was not issued by that CA (or was \
                         altered). Generate it again with that CA's key \
                         (`openssl ca -gencrl -keyfile ca.key -cert ca.crt -out crl.pem`)",
                        rfc4514(parsed.issuer())
                    ),
                });
            }
            let next_update = parsed.next_update().map(|t| to_system_time(t.timestamp()));
            if let Some(next) = next_update
                && next < now
            {
                if enforce_expiry {
                    return Err(Error::CrlExpired {
                        path: path.clone(),
                        issuer: rfc4514(parsed.issuer()),
                        next_update: next,
                    });
                }
                tracing::warn!(
                    target: "mtls::material",
                    file = %path.display(),
                    next_update = %fmt_time(next),
                    "a configured CRL is past its nextUpdate; publish a fresh one"
                );
            }
            out.info.push(CrlInfo {
                path: path.clone(),
                issuer: rfc4514(parsed.issuer()),
                issuer_rfc4514: crate::dn::Name::parse(parsed.issuer()).rfc4514,
                issuer_raw: parsed.issuer().as_raw().to_vec(),
                number: parsed.crl_number().cloned(),
                this_update: parsed.last_update().timestamp(),
                next_update,
            });
            out.ders.push(crl);
        }
    }
    Ok(out)
}

/// Refuses a reload whose CRLs would un-revoke: for each issuer with a CRL in force, the
/// new set must hold a CRL from that issuer that is not older (lower CRL number, or
/// earlier thisUpdate) than the newest one in force, while that issuer is still a
/// configured CA.
pub(crate) fn check_crl_progress(
    in_force: &[CrlInfo],
    new: &[CrlInfo],
    cas: &LoadedCas,
) -> Result<()> {
    let newest = |set: &[CrlInfo], issuer: &[u8]| -> Option<CrlInfo> {
        set.iter()
            .filter(|c| c.issuer_raw == issuer)
            .fold(None, |best: Option<&CrlInfo>, c| match best {
                Some(b) if !b.older_than(c) => Some(b),
                _ => Some(c),
            })
            .cloned()
    };
    for old in in_force {
        let Some(old) = newest(in_force, &old.issuer_raw) else {
            continue;
        };
        match newest(new, &old.issuer_raw) {
            Some(n) if n.older_than(&old) => {
                return Err(Error::CrlRollback {
                    path: n.path.clone(),
                    issuer: n.issuer.clone(),
                    in_force: old.describe(),
                    offered: n.describe(),
                });
            }
            Some(_) => {}
            None if cas.subjects_raw().any(|s| s == old.issuer_raw.as_slice()) => {
                return Err(Error::CrlMissing {
                    issuer: old.issuer.clone(),
                    was: old.path.clone(),
                });
            }
            None => {}
        }
    }
    Ok(())
}

#[cfg(any(feature = "aws-lc-rs", feature = "ring"))]
fn crl_signed_by(
    crl: &x509_parser::revocation_list::CertificateRevocationList<'_>,
    ca: &X509Certificate<'_>,
) -> bool {
    crl.verify_signature(ca.public_key()).is_ok()
}

/// Without a provider feature there is nothing to check signatures with; the CRL is
/// checked by rustls when it is used.
#[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
fn crl_signed_by(
    _crl: &x509_parser::revocation_list::CertificateRevocationList<'_>,
    _ca: &X509Certificate<'_>,
) -> bool {
    true
}

/// Options of the identity preflight.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdentityChecks<'a> {
    pub(crate) role: Role,
    /// CAs the identity's chain should lead to (the side's configured CAs).
    pub(crate) cas: &'a LoadedCas,
    pub(crate) crls: &'a [CertificateRevocationListDer<'static>],
    /// Whether to check that the chain leads to `cas`.
    pub(crate) check_chain: bool,
    pub(crate) now: SystemTime,
}

/// An identity as read from its files, before the checks.
pub(crate) struct RawIdentity {
    /// The file the certificates came from (the `.p12` for PKCS#12).
    pub(crate) cert_path: PathBuf,
    /// The file the key came from.
    pub(crate) key_path: PathBuf,
    /// Leaf first, then intermediates.
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: RawKey,
}

/// An identity's key: bytes, or a signer elsewhere.
pub(crate) enum RawKey {
    Der(rustls::pki_types::PrivateKeyDer<'static>),
    Signer(Arc<dyn crate::signer::KeySigner>),
}

/// Reads an identity's certificates and key (decrypting the key, or the PKCS#12 file).
/// The certificates come first so that a file holding only a key says so.
pub(crate) fn read_identity(
    source: &IdentitySource,
    key_password: &crate::Password,
    provider: &Arc<CryptoProvider>,
) -> Result<RawIdentity> {
    match source {
        IdentitySource::Pem { cert, key } => {
            let chain = crate::pem::load_certs(cert)?;
            let key_der = crate::pem::load_key_with_password(key, key_password)?;
            Ok(RawIdentity {
                cert_path: cert.clone(),
                key_path: key.clone(),
                chain,
                key: RawKey::Der(key_der),
            })
        }
        IdentitySource::Pkcs12 { path, password } => {
            let bundle = crate::pkcs12::load(path, password)?;
            let Some(key) = bundle.key else {
                return Err(Error::NoPrivateKey {
                    path: path.clone(),
                    hint: "; the PKCS#12 file holds only certificates. Use it as a trust \
                           bundle (`.ca_pkcs12`), or export it with its key: `openssl \
                           pkcs12 -export -in cert.pem -inkey key.pem -out FILE.p12`",
                });
            };
            if bundle.certs.is_empty() {
                return Err(Error::NoCertificate {
                    path: path.clone(),
                    hint: "; the PKCS#12 file holds only a key",
                });
            }
            let chain = order_by_key(bundle.certs, &key, provider, path)?;
            Ok(RawIdentity {
                cert_path: path.clone(),
                key_path: path.clone(),
                chain,
                key: RawKey::Der(key),
            })
        }
        IdentitySource::Signer { cert, key } => Ok(RawIdentity {
            cert_path: cert.clone(),
            key_path: cert.clone(),
            chain: crate::pem::load_certs(cert)?,
            key: RawKey::Signer(key.clone()),
        }),
    }
}

/// Puts the certificate whose public key is the key's first, then the certificates that
/// chain it (each the issuer of the one before), leaving out self-signed roots and
/// certificates not on the path.
fn order_by_key(
    certs: Vec<CertificateDer<'static>>,
    key: &rustls::pki_types::PrivateKeyDer<'static>,
    provider: &Arc<CryptoProvider>,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>> {
    let signing = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|error| Error::UnsupportedKey {
            path: path.to_owned(),
            error,
        })?;
    let parsed: Vec<X509Certificate<'_>> = certs
        .iter()
        .enumerate()
        .map(|(i, c)| parse(c, path, i + 1))
        .collect::<Result<_>>()?;
    let leaf = match signing.public_key() {
        Some(spki) => parsed
            .iter()
            .position(|c| c.public_key().raw == spki.as_ref())
            .ok_or_else(|| Error::Pkcs12NoMatchingCertificate {
                path: path.to_owned(),
            })?,
        // The provider cannot tell the key's public half; rustls checks the pair later.
        None => 0,
    };
    let mut order = vec![leaf];
    while order.len() < parsed.len() {
        let Some(last) = order.last().map(|&i| &parsed[i]) else {
            break;
        };
        if last.subject().as_raw() == last.issuer().as_raw() && order.len() > 1 {
            break;
        }
        let next = parsed.iter().enumerate().position(|(i, c)| {
            !order.contains(&i)
                && c.subject().as_raw() == last.issuer().as_raw()
                && c.subject().as_raw() != c.issuer().as_raw()
        });
        match next {
            Some(i) => order.push(i),
            None => break,
        }
    }
    Ok(order.into_iter().map(|i| certs[i].clone()).collect())
}

/// Loads an identity and runs every preflight check on it.
pub(crate) fn load_identity(
    raw: RawIdentity,
    provider: &Arc<CryptoProvider>,
    checks: IdentityChecks<'_>,
) -> Result<LoadedIdentity> {
    let RawIdentity {
        cert_path,
        key_path,
        mut chain,
        key,
    } = raw;
    let path = &cert_path;
    if let RawKey::Der(key) = &key {
        chain = leaf_first(chain, key, provider, path)?;
    }
    let leaf_der = chain.first().ok_or_else(|| Error::NoCertificate {
        path: path.clone(),
        hint: "",
    })?;
    let leaf = parse(leaf_der, path, 1)?;
    check_version(&leaf, path, 1)?;
    for (i, der) in chain.iter().enumerate().skip(1) {
        check_version(&parse(der, path, i + 1)?, path, i + 1)?;
    }
    let subject = rfc4514(leaf.subject());
    let not_after = to_system_time(leaf.validity().not_after.timestamp());
    let not_before = to_system_time(leaf.validity().not_before.timestamp());

    // A key problem is recorded with the certificate's own problems below, not alone.
    let certified: Result<CertifiedKey> = match key {
        RawKey::Der(key) => {
            // Read from the key as it was loaded (decrypted, if it was encrypted), before
            // rustls takes it: what a refusal below is really about.
            let explicit_ec = has_explicit_ec_parameters(&leaf, key.secret_der());
            let rsa_pss = is_rsa_pss(key.secret_der());
            CertifiedKey::from_der(chain.clone(), key, provider).map_err(|e| match e {
                // aws-lc-rs loads a key with explicit parameters and then sees a mismatch;
                // ring refuses to load it at all (below).
                _ if explicit_ec => Error::ExplicitEcParameters {
                    path: key_path.clone(),
                },
                rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                    Error::KeyMismatch {
                        cert: cert_path.clone(),
                        key: key_path.clone(),
                    }
                }
                other if rsa_pss => Error::RsaPssKey {
                    path: key_path.clone(),
                    error: other,
                },
                other => Error::UnsupportedKey {
                    path: key_path.clone(),
                    error: other,
                },
            })
        }
        RawKey::Signer(signer) => match crate::signer::check(signer.as_ref(), leaf_der, provider) {
            Ok(()) => Ok(CertifiedKey::new(
                chain.clone(),
                Arc::new(crate::signer::HookKey(signer)),
            )),
            Err(crate::signer::CheckError::Mismatch) => Err(Error::SignerKeyMismatch {
                cert: cert_path.clone(),
                signer: signer.describe(),
            }),
            Err(crate::signer::CheckError::Failed(reason)) => Err(Error::SignerFailed {
                path: cert_path.clone(),
                reason,
            }),
        },
    };

    // The checks below are independent: each problem is reported, not only the first.
    let mut problems = Vec::new();
    let certified = certified.map_err(|e| problems.push(e)).ok();
    if not_after < checks.now {
        problems.push(Error::Expired {
            path: path.clone(),
            subject: subject.clone(),
            not_after,
        });
    }
    if not_before > checks.now {
        problems.push(Error::NotYetValid {
            path: path.clone(),
            subject: subject.clone(),
            not_before,
        });
    }
    if let Ok(Some(bc)) = leaf.basic_constraints()
        && bc.value.ca
    {
        problems.push(Error::CaCertificateAsLeaf {
            path: path.clone(),
            subject: subject.clone(),
            role: checks.role,
        });
    }
    if let Ok(Some(eku)) = leaf.extended_key_usage() {
        let e = eku.value;
        let ok = e.any
            || match checks.role {
                Role::Server => e.server_auth,
                Role::Client => e.client_auth,
            };
        if !ok {
            problems.push(Error::WrongExtendedKeyUsage {
                path: path.clone(),
                subject: subject.clone(),
                role: checks.role,
                present: eku_names(e),
            });
        }
    }
    let server_name = match checks.role {
        Role::Server => {
            let name = first_name(&leaf);
            if name.is_none() {
                problems.push(Error::NoSubjectAltName {
                    path: path.clone(),
                    subject: subject.clone(),
                });
            }
            name
        }
        Role::Client => None,
    };
    // The chain check repeats what the leaf checks found (expired, EKU): only when they
    // found nothing.
    if checks.check_chain
        && problems.is_empty()
        && let Err(e) = check_chain(&chain, server_name, provider, &checks, path)
    {
        problems.push(e);
    }
    if !problems.is_empty() {
        return Err(Error::from_problems(problems));
    }
    let Some(certified) = certified else {
        return Err(Error::from_problems(problems));
    };
    Ok(LoadedIdentity {
        certified: Arc::new(certified),
        subject,
        not_after,
    })
}

/// Checks that the identity's own chain leads to one of the configured CAs.
///
/// A chain whose top certificate is issued by a CA we were not given is accepted when
/// the file already holds an intermediate (a publicly issued server certificate, say),
/// and refused when the file holds a lone leaf: that is the missing-intermediate mistake.
fn check_chain(
    chain: &[CertificateDer<'static>],
    server_name: Option<ServerName<'static>>,
    provider: &Arc<CryptoProvider>,
    checks: &IdentityChecks<'_>,
    path: &Path,
) -> Result<()> {
    if checks.cas.certs.is_empty() {
        return Ok(());
    }
    let now = UnixTime::since_unix_epoch(
        checks
            .now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default(),
    );
    let Some((leaf, intermediates)) = chain.split_first() else {
        return Ok(());
    };
    let result = match server_name {
        Some(name) => rustls::client::WebPkiServerVerifier::builder_with_provider(
            checks.cas.roots.clone(),
            provider.clone(),
        )
        .with_crls(checks.crls.iter().cloned())
        .allow_unknown_revocation_status()
        .only_check_end_entity_revocation()
        .build()
        .map_err(Error::Verifier)?
        .verify_server_cert(leaf, intermediates, &name, &[], now)
        .map(|_| ()),
        None => rustls::server::WebPkiClientVerifier::builder_with_provider(
            checks.cas.roots.clone(),
            provider.clone(),
        )
        .with_crls(checks.crls.iter().cloned())
        .allow_unknown_revocation_status()
        .only_check_end_entity_revocation()
        .build()
        .map_err(Error::Verifier)?
        .verify_client_cert(leaf, intermediates, now)
        .map(|_| ()),
    };
    let Err(err) = result else {
        if checks.role == Role::Server {
            warn_intermediate_only_in_cas(chain, checks, path);
        }
        return Ok(());
    };
    let top = chain.last().unwrap_or(leaf);
    let top = parse(top, path, chain.len())?;
    match err {
        // A bad signature here is the same as an unknown issuer: the chain met a configured
        // CA with its issuer's name but another key (two PKIs made by one script).
        rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => {
            if chain.len() > 1 || top.subject().as_raw() == top.issuer().as_raw() {
                tracing::debug!(
                    target: "mtls::material",
                    file = %path.display(),
                    issuer = %rfc4514(top.issuer()),
                    "identity chain is issued by a CA that is not configured on this side; not checked"
                );
                return Ok(());
            }
            Err(Error::UnknownIssuer {
                path: path.to_owned(),
                subject: rfc4514(top.subject()),
                issuer: rfc4514(top.issuer()),
                known_cas: checks.cas.info.iter().map(|(s, _)| s.clone()).collect(),
            })
        }
        rustls::Error::InvalidCertificate(CertificateError::Revoked) => {
            let leaf = parse(leaf, path, 1)?;
            Err(Error::Revoked {
                path: path.to_owned(),
                subject: rfc4514(leaf.subject()),
                serial: crate::identity::format_serial(leaf.raw_serial()),
            })
        }
        other => Err(Error::ChainInvalid {
            path: path.to_owned(),
            reason: crate::verify::Rejection::from_rustls(&other, "?"),
        }),
    }
}

/// Checks that the leaf of `chain` is valid for the SNI name it is configured for (for
/// a `*.domain` entry: for any one-label name under `domain`).
pub(crate) fn check_sni_name(
    chain: &[CertificateDer<'static>],
    name: &str,
    path: &Path,
) -> Result<()> {
    let Some(leaf) = chain.first() else {
        return Ok(());
    };
    let probe = match name.strip_prefix("*.") {
        Some(parent) => format!("mtls-sni-check.{parent}"),
        None => name.to_owned(),
    };
    let ok = match (
        webpki::EndEntityCert::try_from(leaf),
        ServerName::try_from(probe.as_str()),
    ) {
        (Ok(ee), Ok(server_name)) => ee.verify_is_valid_for_subject_name(&server_name).is_ok(),
        _ => false,
    };
    if ok {
        return Ok(());
    }
    let cert = parse(leaf, path, 1)?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => names.push((*d).to_owned()),
                GeneralName::IPAddress(ip) => {
                    let addr = match ip.len() {
                        4 => <[u8; 4]>::try_from(*ip).ok().map(std::net::IpAddr::from),
                        16 => <[u8; 16]>::try_from(*ip).ok().map(std::net::IpAddr::from),
                        _ => None,
                    };
                    names.extend(addr.map(|a| a.to_string()));
                }
                _ => {}
            }
        }
    }
    Err(Error::SniNameMismatch {
        path: path.to_owned(),
        name: name.to_owned(),
        names,
    })
}

/// The server's chain verified, but maybe only because its intermediate is among the
/// *client* CAs (where it is a trust anchor for client certificates): the server then
/// sends its leaf without it, and clients, which trust the root only, fail with "unable to
/// get local issuer certificate". Warns when the top of the chain is issued by a
/// configured CA that is not self-signed and is not in the chain.
fn warn_intermediate_only_in_cas(
    chain: &[CertificateDer<'static>],
    checks: &IdentityChecks<'_>,
    path: &Path,
) {
    let Some(Ok(top)) = chain.last().map(|c| parse(c, path, chain.len())) else {
        return;
    };
    if top.subject().as_raw() == top.issuer().as_raw() {
        return;
    }
    let issuer_is_intermediate_ca = checks.cas.certs.iter().any(|ca| {
        parse(ca, path, 0).is_ok_and(|ca| {
            ca.subject().as_raw() == top.issuer().as_raw()
                && ca.subject().as_raw() != ca.issuer().as_raw()
        })
    });
    if issuer_is_intermediate_ca {
        tracing::warn!(
            target: "mtls::material",
            file = %path.display(),
            issuer = %rfc4514(top.issuer()),
            "the server certificate's issuer is an intermediate CA found only among the client \
             CAs, so the server sends its certificate without it and clients that trust the \
             root fail with \"unable to get local issuer certificate\"; append the \
             intermediate's certificate to the certificate file, leaf first \
             (`cat server.crt intermediate.crt > server-chain.crt`)"
        );
    }
}

fn first_name(cert: &X509Certificate<'_>) -> Option<ServerName<'static>> {
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|n| match n {
        // A wildcard is checked as a name it covers (`*.a.b` covers `x.a.b`, not `a.b`).
        GeneralName::DNSName(d) => ServerName::try_from(match d.strip_prefix("*.") {
            Some(parent) => format!("mtls-check.{parent}"),
            None => (*d).to_owned(),
        })
        .ok()
        .map(|n| match n {
            ServerName::DnsName(d) if d.as_ref() != "" => ServerName::DnsName(d),
            other => other,
        }),
        GeneralName::IPAddress(ip) => match ip.len() {
            4 => {
                let b: [u8; 4] = (*ip).try_into().ok()?;
                Some(ServerName::IpAddress(std::net::IpAddr::from(b).into()))
            }
            16 => {
                let b: [u8; 16] = (*ip).try_into().ok()?;
                Some(ServerName::IpAddress(std::net::IpAddr::from(b).into()))
            }
            _ => None,
        },
        _ => None,
    })
}

fn eku_names(e: &x509_parser::extensions::ExtendedKeyUsage<'_>) -> Vec<String> {
    let mut v = Vec::new();
    for (on, name) in [
        (e.server_auth, "serverAuth"),
        (e.client_auth, "clientAuth"),
        (e.code_signing, "codeSigning"),
        (e.email_protection, "emailProtection"),
        (e.time_stamping, "timeStamping"),
        (e.ocsp_signing, "OCSPSigning"),
    ] {
        if on {
            v.push(name.to_owned());
        }
    }
    v.extend(e.other.iter().map(|o| o.to_id_string()));
    v
}

/// A bundle with the leaf after its intermediate (`cat intermediate.crt leaf.crt`): the
/// certificate that matches the key goes first, the others after it in issuer order,
/// with a warning. A chain whose first certificate matches the key, or none does, is
/// returned as it is (the key check then says what is wrong).
fn leaf_first(
    chain: Vec<CertificateDer<'static>>,
    key: &rustls::pki_types::PrivateKeyDer<'static>,
    provider: &Arc<CryptoProvider>,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>> {
    let Some(spki) = provider
        .key_provider
        .load_private_key(key.clone_key())
        .ok()
        .and_then(|k| k.public_key().map(|s| s.as_ref().to_vec()))
    else {
        return Ok(chain);
    };
    let matches = |der: &CertificateDer<'_>| {
        X509Certificate::from_der(der.as_ref())
            .is_ok_and(|(_, c)| c.public_key().raw == spki.as_slice())
    };
    match chain.iter().position(matches) {
        Some(i) if i > 0 => {
            tracing::warn!(
                target: "mtls::material",
                file = %path.display(),
                leaf = i + 1,
                "the certificate that matches the key is not first in the file; it is served \
                 first (leaf first, then its intermediates). Reorder the file: `cat leaf.crt \
                 intermediate.crt > chain.crt`"
            );
            order_by_key(chain, key, provider, path)
        }
        _ => Ok(chain),
    }
}

/// Whether the certificate's public key or the key (DER) has explicit EC curve parameters
/// (`-param_enc explicit`), which TLS cannot use and which makes the key and certificate
/// look mismatched.
fn has_explicit_ec_parameters(leaf: &X509Certificate<'_>, key_der: &[u8]) -> bool {
    use x509_parser::der_parser::ber::BerObjectContent;
    const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
    let spki = &leaf.public_key().algorithm;
    let cert_explicit = spki.algorithm.to_id_string() == EC_PUBLIC_KEY
        && spki
            .parameters
            .as_ref()
            .is_some_and(|p| p.tag() == x509_parser::der_parser::asn1_rs::Tag::Sequence);
    if cert_explicit {
        return true;
    }
    let Ok((_, obj)) = x509_parser::der_parser::parse_der(key_der) else {
        return false;
    };
    let BerObjectContent::Sequence(items) = &obj.content else {
        return false;
    };
    // SEC1: ECPrivateKey { version, privateKey, [0] parameters, … }; PKCS#8:
    // { version, AlgorithmIdentifier { id-ecPublicKey, parameters }, … }.
    // (PKCS#8 has version 0, and its own [0] holds attributes: only SEC1's [0] counts.)
    let sec1 = items.first().is_some_and(|v| v.as_u32() == Ok(1));
    items.iter().any(|item| {
        let inner = match &item.content {
            BerObjectContent::Sequence(alg)
                if alg
                    .first()
                    .and_then(|oid| oid.as_oid().ok())
                    .is_some_and(|oid| oid.to_id_string() == EC_PUBLIC_KEY) =>
            {
                alg.get(1)
            }
            BerObjectContent::Unknown(any) if sec1 && any.tag().0 == 0 => {
                return any.data.first() == Some(&0x30);
            }
            _ => None,
        };
        inner.is_some_and(|p| matches!(p.content, BerObjectContent::Sequence(_)))
    })
}

/// Whether the key (DER) is an RSA-PSS key (PKCS#8 with the `rsassaPss` algorithm),
/// which the crypto providers cannot load.
fn is_rsa_pss(key_der: &[u8]) -> bool {
    const RSASSA_PSS: pkcs8::ObjectIdentifier =
        pkcs8::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
    pkcs8::PrivateKeyInfo::try_from(key_der).is_ok_and(|info| info.algorithm.oid == RSASSA_PSS)
}

/// A name as RFC 4514 writes it (`CN=…,O=…,C=US`), as `PeerIdentity::subject()` and the
/// `subject:` / `issuer:` policies read it: one format in every message.
pub(crate) fn rfc4514(name: &X509Name<'_>) -> String {
    crate::dn::Name::parse(name).rfc4514
}

/// Refuses a certificate of the identity's own chain that is not X.509 v3: TLS
/// libraries (WebPki among them) refuse v1 and v2, and rustls would report it as a key
/// that "cannot be used".
fn check_version(cert: &X509Certificate<'_>, path: &Path, index: usize) -> Result<()> {
    if cert.version() == X509Version::V3 {
        return Ok(());
    }
    Err(Error::NotX509V3 {
        path: path.to_owned(),
        index,
        subject: rfc4514(cert.subject()),
        version: cert.version().0 + 1,
    })
}

pub(crate) fn parse<'a>(
    der: &'a CertificateDer<'_>,
    path: &Path,
    index: usize,
) -> Result<X509Certificate<'a>> {
    X509Certificate::from_der(der.as_ref())
        .map(|(_, c)| c)
        .map_err(|e| Error::BadCertificate {
            path: path.to_owned(),
            index,
            detail: e.to_string(),
        })
}

/// The certificates in force on a side, for observers and the health view: its own chain
/// (leaf, then intermediates) and its CAs. A certificate that does not parse (it was
/// checked at load, so this does not happen) is left out.
pub(crate) fn certificates_in_force(
    own_chain: &[CertificateDer<'_>],
    cas: &[CertificateDer<'_>],
) -> Vec<crate::observe::CertificateInForce> {
    use crate::observe::{CertificateInForce, CertificateRole};
    let roles = own_chain
        .iter()
        .enumerate()
        .map(|(i, der)| {
            let role = if i == 0 {
                CertificateRole::Identity
            } else {
                CertificateRole::Chain
            };
            (role, der)
        })
        .chain(cas.iter().map(|der| (CertificateRole::Ca, der)));
    roles
        .filter_map(|(role, der)| {
            let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
            Some(CertificateInForce {
                role,
                subject: crate::dn::Name::parse(cert.subject()).rfc4514,
                serial: crate::identity::format_serial(cert.raw_serial()),
                not_after: to_system_time(cert.validity().not_after.timestamp()),
            })
        })
        .collect()
}

/// The CRLs in force, for observers and the health view.
pub(crate) fn crls_in_force(crls: &[CrlInfo]) -> Vec<crate::observe::CrlInForce> {
    crls.iter()
        .map(|c| crate::observe::CrlInForce {
            issuer: c.issuer_rfc4514.clone(),
            path: c.path.clone(),
            next_update: c.next_update,
        })
        .collect()
}

pub(crate) fn to_system_time(unix: i64) -> SystemTime {
    if unix >= 0 {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(unix.unsigned_abs())
    } else {
        SystemTime::UNIX_EPOCH - std::time::Duration::from_secs(unix.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkcs12_leaf_is_found_by_its_key_not_by_position() {
        let pki = mtls_testing::TestPki::new();
        let (_, files) = pki.server("localhost");
        let chain = crate::pem::load_certs(&files.cert).unwrap();
        assert_eq!(chain.len(), 2);
        let key = crate::pem::load_key(&files.key).unwrap();
        let provider = crate::provider::resolve(None).unwrap();
        let reversed: Vec<_> = chain.iter().rev().cloned().collect();
        let ordered = order_by_key(reversed, &key, &provider, Path::new("x.p12")).unwrap();
        assert_eq!(ordered, chain);
        // A key that matches none of the certificates.
        let (_, other) = pki.client("other");
        let other_key = crate::pem::load_key(&other.key).unwrap();
        let e = order_by_key(chain, &other_key, &provider, Path::new("x.p12")).unwrap_err();
        assert!(
            matches!(e, Error::Pkcs12NoMatchingCertificate { .. }),
            "{e:?}"
        );
    }
}
