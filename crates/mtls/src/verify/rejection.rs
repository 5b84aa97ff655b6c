//! [`Rejection`]: why a peer's certificate was refused, classified from rustls' and
//! WebPki's errors, with a stable [`class`](Rejection::class) and an explanatory message.

use std::fmt;

use rustls::CertificateError;
use rustls::pki_types::UnixTime;

use crate::error::fmt_time;
use crate::identity::IdentityError;

/// Why a peer's certificate was refused; the `reason` field of rejection events.
///
/// Each variant names a failure a peer (or its CA) can cause, and [`class`](Self::class)
/// gives it a stable short name for logs and metrics. The `Display` text says what is
/// wrong in `openssl` terms and how the certificate's owner fixes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// The peer sent no certificate where one is required.
    NoCertificate,
    /// The chain does not lead to a trusted CA (unknown CA, or a missing intermediate).
    UnknownIssuer,
    /// The certificate (or one in its chain) has expired.
    Expired {
        /// When it expired, RFC 3339, when known.
        not_after: Option<String>,
    },
    /// The certificate is not valid yet.
    NotYetValid {
        /// When it becomes valid, RFC 3339, when known.
        not_before: Option<String>,
    },
    /// The certificate is revoked by a configured CRL.
    Revoked {
        /// Serial of the revoked certificate, hex.
        serial: String,
    },
    /// No CRL covers the certificate's issuer while revocation checking is on.
    UnknownRevocationStatus,
    /// OCSP is on with hard-fail and no verified OCSP answer could be had (responder
    /// down, slow, answering `unknown`, or with a response that does not verify).
    OcspUnavailable {
        /// Why, for the log.
        reason: String,
    },
    /// The CRL that covers the certificate is past its nextUpdate, and CRL expiry is
    /// enforced (`enforce_crl_expiry`).
    CrlExpired {
        /// The CRL's nextUpdate, RFC 3339, when known.
        next_update: Option<String>,
    },
    /// The extended key usage does not allow this role (or the extension is empty).
    BadExtendedKeyUsage,
    /// The certificate does not match the expected server name.
    NameMismatch,
    /// A signature in the chain or the handshake does not verify.
    BadSignature,
    /// A certificate in the chain is signed with an algorithm the verifier does not
    /// support (SHA-1, MD5, …), or one that does not fit the issuer's key type.
    UnsupportedSignatureAlgorithm {
        /// The algorithm, as OpenSSL names it (`sha1WithRSAEncryption`), when rustls
        /// reported it.
        algorithm: Option<String>,
    },
    /// A certificate in the chain is not well-formed: invalid DER, trailing data, a
    /// misencoded serial number or date, or a signature algorithm that differs between the
    /// certificate body and its signature.
    BadEncoding,
    /// A certificate in the chain is not X.509 version 3: a v1 certificate (no
    /// extensions), as `openssl x509 -req` and `openssl ca` make without an extensions
    /// file. Class `x509_v1`.
    UnsupportedCertVersion,
    /// A certificate in the chain has an extension marked critical that the verifier
    /// does not understand.
    UnhandledCriticalExtension,
    /// A certificate in the chain has a malformed or duplicated extension.
    InvalidExtension,
    /// The peer's own certificate is a CA certificate (basicConstraints `CA:TRUE`).
    CaUsedAsLeaf,
    /// A certificate that issued another one in the chain is not a CA certificate.
    IssuerNotCa,
    /// The certificate's names are outside a name constraint of a CA in its chain, or the
    /// constraint itself is malformed.
    NameConstraintViolation,
    /// The chain is deeper than a CA's `pathlen` constraint allows.
    PathLenConstraintViolated,
    /// The chain is too deep or too complex to verify within the verifier's limits.
    PathTooComplex,
    /// The chain verified, but the leaf cannot be read as an identity (x509-parser refused
    /// what WebPki accepted).
    Unparseable(IdentityError),
    /// The verifier refused a valid certificate for application reasons (rustls'
    /// `ApplicationVerificationFailure`, the `access_denied` alert), as seen in a failed
    /// handshake's error. This crate's verifiers send it only for a policy refusal, which
    /// they log as [`Rejection::Policy`] with the rule.
    ApplicationDenied,
    /// The certificate is valid but the policy refused it.
    Policy {
        /// The rule that refused it.
        rule: String,
        /// Why.
        reason: String,
    },
    /// A rustls or WebPki error that none of the variants above names, in rustls' words:
    /// kinds rustls and WebPki may add later (their error enums are `#[non_exhaustive]`),
    /// and failures a peer cannot cause under this crate's configuration (an unusable CRL
    /// of this side's own, which the preflight checks refuse when loading; a distrusted
    /// key or an OCSP response, which are never checked).
    Other(String),
}

impl Rejection {
    /// Classifies a rustls certificate error.
    pub(crate) fn from_rustls(err: &rustls::Error, serial: &str) -> Self {
        let rustls::Error::InvalidCertificate(e) = err else {
            return match err {
                rustls::Error::NoCertificatesPresented => Self::NoCertificate,
                other => Self::Other(other.to_string()),
            };
        };
        #[allow(deprecated)] // `UnsupportedSignatureAlgorithm` is still reported by rustls 0.23
        match e {
            CertificateError::UnknownIssuer => Self::UnknownIssuer,
            CertificateError::Expired => Self::Expired { not_after: None },
            CertificateError::ExpiredContext { not_after, .. } => Self::Expired {
                not_after: Some(fmt_unix(*not_after)),
            },
            CertificateError::NotValidYet => Self::NotYetValid { not_before: None },
            CertificateError::NotValidYetContext { not_before, .. } => Self::NotYetValid {
                not_before: Some(fmt_unix(*not_before)),
            },
            CertificateError::Revoked => Self::Revoked {
                serial: serial.to_owned(),
            },
            CertificateError::UnknownRevocationStatus => Self::UnknownRevocationStatus,
            CertificateError::ExpiredRevocationList => Self::CrlExpired { next_update: None },
            CertificateError::ExpiredRevocationListContext { next_update, .. } => {
                Self::CrlExpired {
                    next_update: Some(fmt_unix(*next_update)),
                }
            }
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                Self::BadExtendedKeyUsage
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                Self::NameMismatch
            }
            CertificateError::BadSignature => Self::BadSignature,
            CertificateError::UnsupportedSignatureAlgorithm => {
                Self::UnsupportedSignatureAlgorithm { algorithm: None }
            }
            CertificateError::UnsupportedSignatureAlgorithmContext {
                signature_algorithm_id,
                ..
            }
            | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext {
                signature_algorithm_id,
                ..
            } => Self::UnsupportedSignatureAlgorithm {
                algorithm: algorithm_name(signature_algorithm_id),
            },
            CertificateError::BadEncoding => Self::BadEncoding,
            CertificateError::UnhandledCriticalExtension => Self::UnhandledCriticalExtension,
            CertificateError::ApplicationVerificationFailure => Self::ApplicationDenied,
            // rustls passes the WebPki errors it has no variant for as `Other`.
            CertificateError::Other(other) => match other.0.downcast_ref::<webpki::Error>() {
                Some(e) => Self::from_webpki(e).unwrap_or_else(|| Self::Other(format!("{e:?}"))),
                None => Self::Other(other.to_string()),
            },
            other => Self::Other(format!("{other:?}")),
        }
    }

    /// Names the WebPki errors that rustls 0.23 reports as `CertificateError::Other`.
    fn from_webpki(e: &webpki::Error) -> Option<Self> {
        use webpki::Error as W;
        Some(match e {
            W::BadDer
            | W::BadDerTime
            | W::TrailingData(_)
            | W::InvalidSerialNumber
            | W::SignatureAlgorithmMismatch => Self::BadEncoding,
            W::UnsupportedCertVersion => Self::UnsupportedCertVersion,
            W::UnsupportedCriticalExtension => Self::UnhandledCriticalExtension,
            W::ExtensionValueInvalid | W::MalformedExtensions => Self::InvalidExtension,
            W::EmptyEkuExtension => Self::BadExtendedKeyUsage,
            W::CaUsedAsEndEntity => Self::CaUsedAsLeaf,
            W::EndEntityUsedAsCa => Self::IssuerNotCa,
            W::NameConstraintViolation
            | W::MalformedNameConstraint
            | W::InvalidNetworkMaskConstraint => Self::NameConstraintViolation,
            W::PathLenConstraintViolated => Self::PathLenConstraintViolated,
            W::MaximumPathDepthExceeded
            | W::MaximumSignatureChecksExceeded
            | W::MaximumPathBuildCallsExceeded
            | W::MaximumNameConstraintComparisonsExceeded => Self::PathTooComplex,
            _ => return None,
        })
    }

    /// A short, stable name for the class: `no_certificate`, `unknown_issuer`, `expired`,
    /// `not_yet_valid`, `revoked`, `unknown_revocation_status`, `ocsp_unavailable`,
    /// `crl_expired`, `bad_eku`,
    /// `name_mismatch`, `bad_signature`, `unsupported_signature_algorithm`,
    /// `bad_encoding`, `x509_v1`, `unhandled_critical_extension`,
    /// `invalid_extension`, `ca_as_leaf`, `issuer_not_ca`, `name_constraint_violation`,
    /// `path_len_constraint_violated`, `path_too_complex`, `unparseable`,
    /// `access_denied`, `policy`, `other`.
    pub fn class(&self) -> &'static str {
        match self {
            Self::NoCertificate => "no_certificate",
            Self::UnknownIssuer => "unknown_issuer",
            Self::Expired { .. } => "expired",
            Self::NotYetValid { .. } => "not_yet_valid",
            Self::Revoked { .. } => "revoked",
            Self::UnknownRevocationStatus => "unknown_revocation_status",
            Self::OcspUnavailable { .. } => "ocsp_unavailable",
            Self::CrlExpired { .. } => "crl_expired",
            Self::BadExtendedKeyUsage => "bad_eku",
            Self::NameMismatch => "name_mismatch",
            Self::BadSignature => "bad_signature",
            Self::UnsupportedSignatureAlgorithm { .. } => "unsupported_signature_algorithm",
            Self::BadEncoding => "bad_encoding",
            Self::UnsupportedCertVersion => "x509_v1",
            Self::UnhandledCriticalExtension => "unhandled_critical_extension",
            Self::InvalidExtension => "invalid_extension",
            Self::CaUsedAsLeaf => "ca_as_leaf",
            Self::IssuerNotCa => "issuer_not_ca",
            Self::NameConstraintViolation => "name_constraint_violation",
            Self::PathLenConstraintViolated => "path_len_constraint_violated",
            Self::PathTooComplex => "path_too_complex",
            Self::Unparseable(_) => "unparseable",
            Self::ApplicationDenied => "access_denied",
            Self::Policy { .. } => "policy",
            Self::Other(_) => "other",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoCertificate => f.write_str(
                "no certificate presented (\"no certificate returned\"): configure the client \
                 with its certificate and key (curl --cert/--key)",
            ),
            Self::UnknownIssuer => f.write_str(
                "unknown issuer (\"unable to get local issuer certificate\"): the chain does not \
                 lead to a trusted CA; send the intermediate after the leaf, or trust the CA",
            ),
            Self::Expired { not_after } => match not_after {
                Some(t) => write!(
                    f,
                    "certificate expired on {t} (\"certificate has expired\")"
                ),
                None => f.write_str("certificate expired (\"certificate has expired\")"),
            },
            Self::NotYetValid { not_before } => match not_before {
                Some(t) => write!(f, "certificate not valid until {t}; check clocks"),
                None => f.write_str("certificate not valid yet; check clocks"),
            },
            Self::Revoked { serial } => write!(f, "certificate serial {serial} is revoked"),
            Self::UnknownRevocationStatus => f.write_str(
                "no CRL covers the certificate's issuer; add that CA's CRL or allow unknown \
                 revocation status",
            ),
            Self::OcspUnavailable { reason } => write!(
                f,
                "no OCSP answer for the certificate and OCSP is hard-fail ({reason}); bring \
                 the responder back, or use soft-fail"
            ),
            Self::CrlExpired { next_update } => {
                f.write_str("the CRL for the certificate's issuer ")?;
                match next_update {
                    Some(t) => write!(f, "expired on {t}")?,
                    None => f.write_str("has expired")?,
                }
                f.write_str(
                    " (its nextUpdate) and CRL expiry is enforced (\"CRL has expired\"); \
                     install a fresh CRL from that CA (`openssl ca -gencrl`)",
                )
            }
            Self::BadExtendedKeyUsage => f.write_str(
                "extended key usage does not allow this role (clientAuth / serverAuth missing)",
            ),
            Self::NameMismatch => f.write_str(
                "certificate is not valid for the server name (subjectAltName does not match)",
            ),
            Self::BadSignature => f.write_str("a signature does not verify"),
            Self::UnsupportedSignatureAlgorithm { algorithm: None } => f.write_str(
                "a certificate in the chain is signed with an unsupported algorithm (such as \
                 SHA-1 or MD5, or one that does not fit the issuer's key); sign it again with \
                 SHA-256 (`-sha256`)",
            ),
            Self::UnsupportedSignatureAlgorithm {
                algorithm: Some(name),
            } => {
                let weak = ["sha1", "SHA1", "md5", "md2", "MD5"]
                    .iter()
                    .any(|w| name.contains(w));
                if weak {
                    write!(
                        f,
                        "a certificate in the chain is signed with {name} ({}), which TLS \
                         verifiers no longer accept; sign it again with SHA-256 (`-sha256`)",
                        if name.to_ascii_lowercase().contains("md") {
                            "MD5"
                        } else {
                            "SHA-1"
                        }
                    )
                } else {
                    write!(
                        f,
                        "a certificate in the chain is signed with {name}, which the verifier \
                         does not support (or which does not fit the issuer's key type); sign \
                         it again with SHA-256 and an RSA, ECDSA P-256/P-384 or Ed25519 key"
                    )
                }
            }
            Self::BadEncoding => f.write_str(
                "a certificate in the chain is malformed (invalid DER, trailing data, a \
                 misencoded serial or date, or mismatched signature algorithms); check it with \
                 `openssl x509 -noout -text` and issue it again",
            ),
            Self::UnsupportedCertVersion => f.write_str(
                "a certificate in the chain is an X.509 v1 certificate (no extensions; \
                 `openssl x509 -noout -text` shows \"Version: 1\"), which TLS libraries \
                 refuse: `openssl x509 -req` and `openssl ca` make v1 certificates when given \
                 no extensions; sign it again with `-extfile`/`-extensions` giving \
                 basicConstraints, keyUsage, extendedKeyUsage and subjectAltName",
            ),
            Self::UnhandledCriticalExtension => f.write_str(
                "a certificate in the chain has an extension marked critical that the verifier \
                 does not understand (\"unhandled critical extension\"); issue it again without \
                 that extension, or without marking it `critical`",
            ),
            Self::InvalidExtension => f.write_str(
                "a certificate in the chain has a malformed or duplicated extension; check it \
                 with `openssl x509 -noout -text` and issue it again",
            ),
            Self::CaUsedAsLeaf => f.write_str(
                "the certificate is a CA certificate (basicConstraints CA:TRUE), which is \
                 refused as a peer's own certificate; sign it again with \
                 `basicConstraints=CA:FALSE` (not `-extensions v3_ca`)",
            ),
            Self::IssuerNotCa => f.write_str(
                "a certificate in the chain issued another one but is not a CA certificate \
                 (\"invalid CA certificate\"): sign the intermediate with \
                 `basicConstraints=critical,CA:TRUE`, and check the chain's order (leaf first)",
            ),
            Self::NameConstraintViolation => f.write_str(
                "the certificate's names are outside the name constraints of a CA in its chain \
                 (\"permitted subtree violation\"), or a constraint is malformed; issue it for \
                 names that CA may certify",
            ),
            Self::PathLenConstraintViolated => f.write_str(
                "the chain is deeper than a CA's pathlen constraint allows (\"path length \
                 constraint exceeded\"), e.g. an intermediate below a CA with pathlen:0",
            ),
            Self::PathTooComplex => f.write_str(
                "the chain is too deep or too complex to verify; send only the leaf and the \
                 intermediates that lead to the CA",
            ),
            Self::Unparseable(e) => write!(f, "the chain verifies, but {e}"),
            Self::ApplicationDenied => f.write_str(
                "the certificate is valid but the verifier's application checks refused it \
                 (\"access denied\"); mtls' verifiers do that only for a policy refusal, \
                 logged with its rule on target mtls::verify",
            ),
            Self::Policy { rule, reason } => write!(f, "denied by policy rule `{rule}`: {reason}"),
            Self::Other(s) => write!(f, "{s}"),
        }
    }
}

/// The OpenSSL short name of a signature algorithm from the DER of its OID (what rustls
/// reports: the OID's tag, length and value, maybe followed by parameters), or its dotted
/// form.
fn algorithm_name(id: &[u8]) -> Option<String> {
    use x509_parser::asn1_rs::{FromDer, Oid};
    let (_, oid) = Oid::from_der(id).ok()?;
    Some(
        x509_parser::objects::oid2sn(&oid, x509_parser::objects::oid_registry())
            .map(str::to_owned)
            .unwrap_or_else(|_| oid.to_id_string()),
    )
}

fn fmt_unix(t: UnixTime) -> String {
    fmt_time(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.as_secs()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::{CertificateError as C, OtherError};

    use super::*;

    fn cert(e: C) -> rustls::Error {
        rustls::Error::InvalidCertificate(e)
    }

    /// How rustls 0.23 reports the WebPki errors it has no variant for.
    fn webpki(e: webpki::Error) -> rustls::Error {
        cert(C::Other(OtherError(Arc::new(e))))
    }

    #[test]
    fn rustls_errors_map_to_named_rejections() {
        use webpki::Error as W;
        let t = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_767_225_600));
        #[allow(deprecated)]
        let cases = [
            (rustls::Error::NoCertificatesPresented, "no_certificate"),
            (cert(C::UnknownIssuer), "unknown_issuer"),
            (cert(C::Expired), "expired"),
            (cert(C::NotValidYet), "not_yet_valid"),
            (cert(C::Revoked), "revoked"),
            (
                cert(C::UnknownRevocationStatus),
                "unknown_revocation_status",
            ),
            (cert(C::ExpiredRevocationList), "crl_expired"),
            (cert(C::InvalidPurpose), "bad_eku"),
            (cert(C::NotValidForName), "name_mismatch"),
            (cert(C::BadSignature), "bad_signature"),
            (
                cert(C::UnsupportedSignatureAlgorithm),
                "unsupported_signature_algorithm",
            ),
            (
                cert(C::UnsupportedSignatureAlgorithmContext {
                    signature_algorithm_id: vec![6, 9, 42, 134, 72, 134, 247, 13, 1, 1, 5],
                    supported_algorithms: Vec::new(),
                }),
                "unsupported_signature_algorithm",
            ),
            (cert(C::BadEncoding), "bad_encoding"),
            (
                cert(C::UnhandledCriticalExtension),
                "unhandled_critical_extension",
            ),
            (cert(C::ApplicationVerificationFailure), "access_denied"),
            (webpki(W::UnsupportedCertVersion), "x509_v1"),
            (
                webpki(W::UnsupportedCriticalExtension),
                "unhandled_critical_extension",
            ),
            (webpki(W::CaUsedAsEndEntity), "ca_as_leaf"),
            (webpki(W::EndEntityUsedAsCa), "issuer_not_ca"),
            (webpki(W::ExtensionValueInvalid), "invalid_extension"),
            (webpki(W::MalformedExtensions), "invalid_extension"),
            (webpki(W::EmptyEkuExtension), "bad_eku"),
            (webpki(W::InvalidSerialNumber), "bad_encoding"),
            (webpki(W::SignatureAlgorithmMismatch), "bad_encoding"),
            (
                webpki(W::NameConstraintViolation),
                "name_constraint_violation",
            ),
            (
                webpki(W::PathLenConstraintViolated),
                "path_len_constraint_violated",
            ),
            (webpki(W::MaximumPathDepthExceeded), "path_too_complex"),
            (
                webpki(W::MaximumSignatureChecksExceeded),
                "path_too_complex",
            ),
            // Not a peer's doing (distrust lists are not used): left to `Other`.
            (webpki(W::CertDistrusted), "other"),
            (
                cert(C::Other(OtherError(Arc::new(std::io::Error::other(
                    "custom",
                ))))),
                "other",
            ),
            (rustls::Error::General("something new".into()), "other"),
        ];
        for (err, class) in cases {
            let r = Rejection::from_rustls(&err, "0A");
            assert_eq!(r.class(), class, "{err:?} -> {r:?}");
            assert!(!r.to_string().is_empty());
        }

        assert_eq!(
            Rejection::from_rustls(
                &cert(C::ExpiredContext {
                    time: t,
                    not_after: t
                }),
                "?"
            ),
            Rejection::Expired {
                not_after: Some("2026-01-01T00:00:00Z".into())
            }
        );
        assert_eq!(
            Rejection::from_rustls(
                &cert(C::ExpiredRevocationListContext {
                    time: t,
                    next_update: t
                }),
                "?"
            ),
            Rejection::CrlExpired {
                next_update: Some("2026-01-01T00:00:00Z".into())
            }
        );
        assert_eq!(
            Rejection::from_rustls(&cert(C::Revoked), "0A"),
            Rejection::Revoked {
                serial: "0A".into()
            }
        );
        assert_eq!(
            Rejection::from_rustls(&webpki(W::CertDistrusted), "?"),
            Rejection::Other("CertDistrusted".into())
        );
    }

    /// The classes are logged as `reason=` and used in dashboards: each variant has its
    /// own, and none of them changes.
    #[test]
    fn classes_are_distinct_and_stable() {
        let all = [
            (Rejection::NoCertificate, "no_certificate"),
            (Rejection::UnknownIssuer, "unknown_issuer"),
            (Rejection::Expired { not_after: None }, "expired"),
            (Rejection::NotYetValid { not_before: None }, "not_yet_valid"),
            (
                Rejection::Revoked {
                    serial: String::new(),
                },
                "revoked",
            ),
            (
                Rejection::UnknownRevocationStatus,
                "unknown_revocation_status",
            ),
            (Rejection::CrlExpired { next_update: None }, "crl_expired"),
            (Rejection::BadExtendedKeyUsage, "bad_eku"),
            (Rejection::NameMismatch, "name_mismatch"),
            (Rejection::BadSignature, "bad_signature"),
            (
                Rejection::UnsupportedSignatureAlgorithm { algorithm: None },
                "unsupported_signature_algorithm",
            ),
            (Rejection::BadEncoding, "bad_encoding"),
            (Rejection::UnsupportedCertVersion, "x509_v1"),
            (
                Rejection::UnhandledCriticalExtension,
                "unhandled_critical_extension",
            ),
            (Rejection::InvalidExtension, "invalid_extension"),
            (Rejection::CaUsedAsLeaf, "ca_as_leaf"),
            (Rejection::IssuerNotCa, "issuer_not_ca"),
            (
                Rejection::NameConstraintViolation,
                "name_constraint_violation",
            ),
            (
                Rejection::PathLenConstraintViolated,
                "path_len_constraint_violated",
            ),
            (Rejection::PathTooComplex, "path_too_complex"),
            (
                Rejection::Unparseable(IdentityError::EmptyChain),
                "unparseable",
            ),
            (Rejection::ApplicationDenied, "access_denied"),
            (
                Rejection::Policy {
                    rule: String::new(),
                    reason: String::new(),
                },
                "policy",
            ),
            (Rejection::Other(String::new()), "other"),
        ];
        let mut seen = std::collections::HashSet::new();
        for (r, class) in &all {
            assert_eq!(r.class(), *class, "{r:?}");
            assert!(seen.insert(*class), "{class} used twice");
        }
    }
}
