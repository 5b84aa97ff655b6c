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
use x509_parser::prelude::FromDer;

use crate::error::{Error, Result, Role};
use crate::spec::IdentityPaths;

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
    pub(crate) certs: Vec<CertificateDer<'static>>,
    /// (subject, not_after) of each CA.
    pub(crate) info: Vec<(String, SystemTime)>,
    pub(crate) roots: Arc<RootCertStore>,
}

/// Loads the CA files, checking that each holds CA certificates that have not all expired.
pub(crate) fn load_cas(paths: &[PathBuf], now: SystemTime) -> Result<LoadedCas> {
    let mut out = LoadedCas {
        certs: Vec::new(),
        info: Vec::new(),
        roots: Arc::new(RootCertStore::empty()),
    };
    let mut roots = RootCertStore::empty();
    for path in paths {
        let certs = crate::pem::load_certs(path)?;
        let mut expired = Vec::new();
        for (i, der) in certs.iter().enumerate() {
            let cert = parse(der, path, i + 1)?;
            let subject = cert.subject().to_string();
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
                    not_after = %crate::error::fmt_time(not_after),
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

/// Loads CRL files; each must parse, and a CRL whose issuer is one of `cas` must carry
/// that CA's signature (one whose issuer is none of `cas` is logged).
pub(crate) fn load_crls(
    paths: &[PathBuf],
    cas: &LoadedCas,
) -> Result<Vec<CertificateRevocationListDer<'static>>> {
    let mut out = Vec::new();
    let ca_certs: Vec<X509Certificate<'_>> = cas
        .certs
        .iter()
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
            let issuers: Vec<&X509Certificate<'_>> = ca_certs
                .iter()
                .filter(|ca| ca.subject().as_raw() == parsed.issuer().as_raw())
                .collect();
            if issuers.is_empty() {
                // Intermediates usually reach us in the peer's chain, not in the CA file,
                // so a CRL from a CA we were not given is legitimate; say so in the log.
                // Its signature is checked when a peer's chain reaches that CA.
                tracing::info!(
                    target: "mtls::material",
                    file = %path.display(),
                    issuer = %parsed.issuer(),
                    "CRL is issued by a CA that is not in the CA files (an intermediate?); \
                     it applies to the certificates that CA issued"
                );
            } else if !issuers.iter().any(|ca| crl_signed_by(&parsed, ca)) {
                return Err(Error::BadCrl {
                    path: path.clone(),
                    reason: format!(
                        "its signature does not verify with the key of the configured CA \
                         \"{}\" it names as issuer: it was not issued by that CA (or was \
                         altered). Generate it again with that CA's key \
                         (`openssl ca -gencrl -keyfile ca.key -cert ca.crt -out crl.pem`)",
                        parsed.issuer()
                    ),
                });
            }
            if let Some(next) = parsed.next_update() {
                let next = to_system_time(next.timestamp());
                if next < SystemTime::now() {
                    tracing::warn!(
                        target: "mtls::material",
                        file = %path.display(),
                        next_update = %crate::error::fmt_time(next),
                        "a configured CRL is past its nextUpdate; publish a fresh one"
                    );
                }
            }
            out.push(crl);
        }
    }
    Ok(out)
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

/// Loads an identity and runs every preflight check on it.
pub(crate) fn load_identity(
    paths: &IdentityPaths,
    provider: &Arc<CryptoProvider>,
    checks: IdentityChecks<'_>,
) -> Result<LoadedIdentity> {
    let chain = crate::pem::load_certs(&paths.cert)?;
    let key = crate::pem::load_key(&paths.key)?;
    let path = &paths.cert;
    let leaf_der = chain.first().ok_or_else(|| Error::NoCertificate {
        path: path.clone(),
        hint: "",
    })?;
    let leaf = parse(leaf_der, path, 1)?;
    let subject = leaf.subject().to_string();
    let not_after = to_system_time(leaf.validity().not_after.timestamp());
    let not_before = to_system_time(leaf.validity().not_before.timestamp());

    let certified = CertifiedKey::from_der(chain.clone(), key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            Error::KeyMismatch {
                cert: paths.cert.clone(),
                key: paths.key.clone(),
            }
        }
        other => Error::UnsupportedKey {
            path: paths.key.clone(),
            error: other,
        },
    })?;

    if not_after < checks.now {
        return Err(Error::Expired {
            path: path.clone(),
            subject,
            not_after,
        });
    }
    if not_before > checks.now {
        return Err(Error::NotYetValid {
            path: path.clone(),
            subject,
            not_before,
        });
    }
    if let Ok(Some(bc)) = leaf.basic_constraints()
        && bc.value.ca
    {
        return Err(Error::CaCertificateAsLeaf {
            path: path.clone(),
            subject,
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
            return Err(Error::WrongExtendedKeyUsage {
                path: path.clone(),
                subject,
                role: checks.role,
                present: eku_names(e),
            });
        }
    }
    let server_name = match checks.role {
        Role::Server => match first_name(&leaf) {
            Some(name) => Some(name),
            None => {
                return Err(Error::NoSubjectAltName {
                    path: path.clone(),
                    subject,
                });
            }
        },
        Role::Client => None,
    };
    if checks.check_chain {
        check_chain(&chain, server_name, provider, &checks, path)?;
    }
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
        return Ok(());
    };
    let top = chain.last().unwrap_or(leaf);
    let top = parse(top, path, chain.len())?;
    match err {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            if chain.len() > 1 || top.subject().as_raw() == top.issuer().as_raw() {
                tracing::debug!(
                    target: "mtls::material",
                    file = %path.display(),
                    issuer = %top.issuer(),
                    "identity chain is issued by a CA that is not configured on this side; not checked"
                );
                return Ok(());
            }
            Err(Error::UnknownIssuer {
                path: path.to_owned(),
                subject: top.subject().to_string(),
                issuer: top.issuer().to_string(),
                known_cas: checks.cas.info.iter().map(|(s, _)| s.clone()).collect(),
            })
        }
        rustls::Error::InvalidCertificate(CertificateError::Revoked) => {
            let leaf = parse(leaf, path, 1)?;
            Err(Error::Revoked {
                path: path.to_owned(),
                subject: leaf.subject().to_string(),
                serial: crate::identity::format_serial(leaf.raw_serial()),
            })
        }
        other => Err(Error::ChainInvalid {
            path: path.to_owned(),
            reason: crate::verify::Rejection::from_rustls(&other, "?"),
        }),
    }
}

fn first_name(cert: &X509Certificate<'_>) -> Option<ServerName<'static>> {
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|n| match n {
        GeneralName::DNSName(d) => ServerName::try_from(d.trim_start_matches("*.").to_owned())
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

pub(crate) fn to_system_time(unix: i64) -> SystemTime {
    if unix >= 0 {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(unix.unsigned_abs())
    } else {
        SystemTime::UNIX_EPOCH - std::time::Duration::from_secs(unix.unsigned_abs())
    }
}
