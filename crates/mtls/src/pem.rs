//! Reading certificates, private keys and CRLs from files.
//!
//! Accepts what OpenSSL 3 and other common tools write:
//!
//! | input | example command |
//! |---|---|
//! | PKCS#8 keys (`PRIVATE KEY`) | `openssl genrsa`, `openssl genpkey` |
//! | PKCS#1 RSA keys (`RSA PRIVATE KEY`) | `openssl genrsa -traditional` |
//! | SEC1 EC keys (`EC PRIVATE KEY`), also after an `EC PARAMETERS` block | `openssl ecparam -genkey` |
//! | Ed25519 keys | `openssl genpkey -algorithm ed25519` |
//! | combined certificate + key files | `cat server.crt server.key > server.pem` |
//! | CA bundles and chains (leaf first) with many certificates | `cat a.crt b.crt > bundle.pem` |
//! | CRLF line endings, a UTF-8 byte-order mark, indented PEM lines | files edited on Windows, pasted from YAML or a web page |
//! | a DER certificate followed by PEM ones | `cat server.der intermediate.pem > chain.crt` |
//! | DER certificates, keys and CRLs | `openssl x509 -outform DER` |
//!
//! Encrypted keys (PKCS#8 `ENCRYPTED PRIVATE KEY` and the traditional `Proc-Type:
//! 4,ENCRYPTED` form) are decrypted by [`load_key_with_password`]; [`load_key`] refuses
//! them with [`Error::EncryptedKey`]. PKCS#12 files are read by
//! [`pkcs12`](crate::pkcs12). Empty files, files without the expected item and non-PEM
//! data each produce their own [`Error`] variant naming the file.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let pki = mtls_testing::TestPki::new();
//! # let (_, files) = pki.server("localhost");
//! let chain = mtls::pem::load_certs(&files.cert)?;
//! let key = mtls::pem::load_key(&files.key)?;
//! assert_eq!(chain.len(), 2); // leaf + intermediate
//! # let _ = (key, dir);
//! # Ok(()) }
//! ```

use std::path::Path;

use rustls::pki_types::pem::{PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use crate::error::{Error, Result};
use crate::keys::Password;

/// Reads every certificate in a PEM or DER file, in file order.
///
/// # Errors
/// [`Error::Io`], [`Error::Empty`], [`Error::NotPem`], [`Error::BadPem`],
/// [`Error::NoCertificate`], [`Error::BadCertificate`].
pub fn load_certs(path: impl AsRef<Path>) -> Result<Vec<CertificateDer<'static>>> {
    let path = path.as_ref();
    parse_certs(&read(path)?, path)
}

/// Reads the one private key in a PEM or DER file (which may also hold certificates).
///
/// # Errors
/// [`Error::Io`], [`Error::Empty`], [`Error::NotPem`], [`Error::BadPem`],
/// [`Error::EncryptedKey`], [`Error::NoPrivateKey`], [`Error::MultipleKeys`].
pub fn load_key(path: impl AsRef<Path>) -> Result<PrivateKeyDer<'static>> {
    let path = path.as_ref();
    parse_key(&read(path)?, path)
}

/// Reads the one private key in a PEM or DER file, decrypting it with `password` when it
/// is encrypted (PKCS#8 `ENCRYPTED PRIVATE KEY`, or the traditional `Proc-Type:
/// 4,ENCRYPTED` form; see [`Password`] for what is read when). An unencrypted key is
/// returned as [`load_key`] returns it, whatever the password.
///
/// # Errors
/// As [`load_key`], and [`Error::WrongPassword`], [`Error::PasswordUnavailable`],
/// [`Error::UnsupportedEncryption`], [`Error::Truncated`]; [`Error::EncryptedKey`] when
/// the key is encrypted and `password` is [`Password::none`] (a key encrypted with the
/// empty password, `-passout pass:`, is read then).
pub fn load_key_with_password(
    path: impl AsRef<Path>,
    password: &Password,
) -> Result<PrivateKeyDer<'static>> {
    let path = path.as_ref();
    parse_key_with_password(&read(path)?, path, password)
}

/// Reads every CRL in a PEM or DER file.
///
/// # Errors
/// [`Error::Io`], [`Error::Empty`], [`Error::NotPem`], [`Error::BadPem`],
/// [`Error::BadCrl`].
pub fn load_crls(path: impl AsRef<Path>) -> Result<Vec<CertificateRevocationListDer<'static>>> {
    let path = path.as_ref();
    parse_crls(&read(path)?, path)
}

/// Parses certificates from bytes; `origin` names the data in errors.
///
/// # Errors
/// As [`load_certs`].
pub fn parse_certs(data: &[u8], origin: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let cleaned = clean(data);
    let data = cleaned.as_ref();
    // A DER certificate with PEM after it (`cat server.der intermediate.pem`).
    if data.first() == Some(&0x30)
        && is_pem(data)
        && let Ok((rest, _)) = x509_parser::parse_x509_certificate(data)
    {
        let der_len = data.len() - rest.len();
        let mut certs = vec![CertificateDer::from(data[..der_len].to_vec())];
        certs.extend(parse_certs(rest, origin)?);
        return Ok(certs);
    }
    let certs: Vec<CertificateDer<'static>> = if is_pem(data) {
        sections(data, origin)?
            .into_iter()
            .filter(|(kind, _)| *kind == SectionKind::Certificate)
            .map(|(_, der)| CertificateDer::from(der))
            .collect()
    } else if is_blank(data) {
        return Err(Error::Empty {
            path: origin.to_owned(),
        });
    } else if parses_as_certificate(data) {
        vec![CertificateDer::from(data.to_vec())]
    } else if is_pkcs12(data) {
        return Err(Error::IsPkcs12 {
            path: origin.to_owned(),
        });
    } else if PrivateKeyDer::try_from(data).is_ok() {
        return Err(Error::NoCertificate {
            path: origin.to_owned(),
            hint: "; it is a DER private key. Pass the certificate file here and the key file \
                   as the key",
        });
    } else {
        return Err(Error::NotPem {
            path: origin.to_owned(),
            expected: "CERTIFICATE",
        });
    };
    if certs.is_empty() {
        return Err(Error::NoCertificate {
            path: origin.to_owned(),
            hint: no_cert_hint(data),
        });
    }
    for (i, cert) in certs.iter().enumerate() {
        if let Err(detail) = check_certificate(cert.as_ref()) {
            return Err(Error::BadCertificate {
                path: origin.to_owned(),
                index: i + 1,
                detail,
            });
        }
    }
    Ok(certs)
}

/// Parses one private key from bytes; `origin` names the data in errors.
///
/// # Errors
/// As [`load_key`].
pub fn parse_key(data: &[u8], origin: &Path) -> Result<PrivateKeyDer<'static>> {
    parse_key_with_password(data, origin, &Password::none())
}

/// Parses one private key from bytes, decrypting it with `password` when it is
/// encrypted; `origin` names the data in errors.
///
/// # Errors
/// As [`load_key_with_password`].
pub fn parse_key_with_password(
    data: &[u8],
    origin: &Path,
    password: &Password,
) -> Result<PrivateKeyDer<'static>> {
    let cleaned = clean(data);
    let data = cleaned.as_ref();
    if is_pem(data) {
        if crate::keys::pem_is_encrypted(data) {
            return crate::keys::decrypt_pem(data, origin, password);
        }
        let mut keys: Vec<PrivateKeyDer<'static>> = sections(data, origin)?
            .into_iter()
            .filter_map(|(kind, der)| PrivateKeyDer::from_pem(kind, der))
            .collect();
        return match keys.len() {
            0 => Err(Error::NoPrivateKey {
                path: origin.to_owned(),
                hint: no_key_hint(data),
            }),
            1 => Ok(keys.remove(0)),
            count => Err(Error::MultipleKeys {
                path: origin.to_owned(),
                count,
            }),
        };
    }
    if is_blank(data) {
        return Err(Error::Empty {
            path: origin.to_owned(),
        });
    }
    if is_pkcs12(data) {
        return Err(Error::IsPkcs12 {
            path: origin.to_owned(),
        });
    }
    if let Ok(key) = PrivateKeyDer::try_from(data) {
        return Ok(key.clone_key());
    }
    if parses_as_certificate(data) {
        return Err(Error::NoPrivateKey {
            path: origin.to_owned(),
            hint: "; it is a DER certificate. Pass the key file here",
        });
    }
    if looks_like_encrypted_pkcs8(data) {
        return crate::keys::decrypt_pkcs8_der(data, origin, password);
    }
    Err(Error::NotPem {
        path: origin.to_owned(),
        expected: "PRIVATE KEY",
    })
}

/// Parses CRLs from bytes; `origin` names the data in errors.
///
/// # Errors
/// As [`load_crls`].
pub fn parse_crls(
    data: &[u8],
    origin: &Path,
) -> Result<Vec<CertificateRevocationListDer<'static>>> {
    let cleaned = clean(data);
    let data = cleaned.as_ref();
    let crls: Vec<CertificateRevocationListDer<'static>> = if is_pem(data) {
        sections(data, origin)?
            .into_iter()
            .filter(|(kind, _)| *kind == SectionKind::Crl)
            .map(|(_, der)| CertificateRevocationListDer::from(der))
            .collect()
    } else if is_blank(data) {
        return Err(Error::Empty {
            path: origin.to_owned(),
        });
    } else if x509_parser::parse_x509_crl(data).is_ok() {
        vec![CertificateRevocationListDer::from(data.to_vec())]
    } else {
        return Err(Error::NotPem {
            path: origin.to_owned(),
            expected: "X509 CRL",
        });
    };
    if crls.is_empty() {
        return Err(Error::BadCrl {
            path: origin.to_owned(),
            reason: "the file holds no \"-----BEGIN X509 CRL-----\" block; make one with \
                     `openssl ca -gencrl -out crl.pem`"
                .to_owned(),
        });
    }
    for (i, crl) in crls.iter().enumerate() {
        match x509_parser::parse_x509_crl(crl.as_ref()) {
            Ok(([], _)) => {}
            Ok(_) => {
                return Err(Error::BadCrl {
                    path: origin.to_owned(),
                    reason: format!("CRL #{} has trailing data after its end", i + 1),
                });
            }
            Err(e) => {
                return Err(Error::BadCrl {
                    path: origin.to_owned(),
                    reason: format!("CRL #{} is not a valid X.509 CRL ({e})", i + 1),
                });
            }
        }
    }
    Ok(crls)
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|error| Error::Io {
        path: path.to_owned(),
        error,
    })
}

fn sections(data: &[u8], origin: &Path) -> Result<Vec<(SectionKind, Vec<u8>)>> {
    <(SectionKind, Vec<u8>)>::pem_slice_iter(data)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::BadPem {
            path: origin.to_owned(),
            detail: pem_detail(&e),
        })
}

fn pem_detail(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error as E;
    match e {
        E::MissingSectionEnd { end_marker } => format!(
            "the \"-----END {}-----\" line is missing",
            String::from_utf8_lossy(end_marker)
        ),
        E::IllegalSectionStart { .. } => "a \"-----BEGIN\" line is malformed".to_owned(),
        E::Base64Decode(_) => "the base64 text between BEGIN and END is corrupt".to_owned(),
        E::SectionTooLarge => "a PEM section is too large".to_owned(),
        other => other.to_string(),
    }
}

fn check_certificate(der: &[u8]) -> std::result::Result<(), String> {
    match x509_parser::parse_x509_certificate(der) {
        Ok(([], _)) => Ok(()),
        Ok(_) => Err("trailing data after the certificate".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

fn parses_as_certificate(data: &[u8]) -> bool {
    check_certificate(data).is_ok()
}

/// EncryptedPrivateKeyInfo ::= SEQUENCE { AlgorithmIdentifier (PBES2 …), OCTET STRING }.
fn looks_like_encrypted_pkcs8(data: &[u8]) -> bool {
    // OID 1.2.840.113549.1.5.13 (PBES2) or the PKCS#12 PBE family 1.2.840.113549.1.12.1.*.
    const PBES2: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d];
    const PKCS12_PBE: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01];
    data.first() == Some(&0x30)
        && (contains(&data[..data.len().min(64)], PBES2)
            || contains(&data[..data.len().min(64)], PKCS12_PBE))
}

/// What OpenSSL reads but the PEM parser does not: a UTF-8 byte-order mark before the
/// first line (which would hide the first `BEGIN` line, and so the first certificate of
/// a bundle), and PEM lines indented by spaces or tabs (PEM pasted from YAML, a web page
/// or an email). Other data is returned as it is.
fn clean(data: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let data = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
    // Text only: binary DER (a DER certificate with PEM after it) is left alone.
    let indented = is_pem(data)
        && data.first() != Some(&0x30)
        && data
            .split(|&b| b == b'\n')
            .any(|line| matches!(line.first(), Some(b' ' | b'\t')) && !is_blank(line));
    if !indented {
        return std::borrow::Cow::Borrowed(data);
    }
    let mut out = Vec::with_capacity(data.len());
    for line in data.split_inclusive(|&b| b == b'\n') {
        let start = line
            .iter()
            .position(|&b| b != b' ' && b != b'\t')
            .unwrap_or(line.len());
        out.extend_from_slice(&line[start..]);
    }
    std::borrow::Cow::Owned(out)
}

/// A PKCS#12 file: `PFX ::= SEQUENCE { version INTEGER (3), authSafe ContentInfo, … }`.
fn is_pkcs12(data: &[u8]) -> bool {
    use x509_parser::der_parser::ber::BerObjectContent;
    let Ok((_, pfx)) = x509_parser::der_parser::parse_der(data) else {
        return false;
    };
    let BerObjectContent::Sequence(items) = &pfx.content else {
        return false;
    };
    let version_3 = items.first().is_some_and(|v| v.as_u32() == Ok(3));
    let content_info = items.get(1).is_some_and(|c| {
        c.as_sequence()
            .ok()
            .and_then(|s| s.first())
            .and_then(|oid| oid.as_oid().ok())
            .is_some_and(|oid| oid.to_id_string().starts_with("1.2.840.113549.1.7."))
    });
    version_3 && content_info
}

fn is_pem(data: &[u8]) -> bool {
    contains(data, b"-----BEGIN ")
}

fn is_blank(data: &[u8]) -> bool {
    data.iter().all(u8::is_ascii_whitespace)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn no_cert_hint(data: &[u8]) -> &'static str {
    if contains(data, b"-----BEGIN TRUSTED CERTIFICATE-----") {
        "; it holds an OpenSSL \"TRUSTED CERTIFICATE\" (made with -trustout). Convert it with \
         `openssl x509 -in FILE -out FILE.pem`"
    } else if contains(data, b"PRIVATE KEY-----") {
        "; it holds a private key. Pass the certificate file here and the key file as the key"
    } else if contains(data, b"-----BEGIN CERTIFICATE REQUEST-----") {
        "; it holds a certificate signing request (CSR), which must first be signed by the CA, \
         e.g. `openssl x509 -req -in FILE -CA ca.crt -CAkey ca.key -out cert.pem`"
    } else if contains(data, b"-----BEGIN X509 CRL-----") {
        "; it holds a CRL. Pass it as a CRL, not as a certificate"
    } else {
        ""
    }
}

fn no_key_hint(data: &[u8]) -> &'static str {
    if contains(data, b"-----BEGIN CERTIFICATE-----") {
        "; it holds only certificates. Pass the key file (e.g. server.key) as the key, or \
         append the key to this file: `cat server.crt server.key > server.pem`"
    } else if contains(data, b"-----BEGIN PUBLIC KEY-----") {
        "; it holds a public key, and the private key is needed"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_is_empty() {
        let p = Path::new("x.pem");
        assert!(matches!(parse_certs(b"", p), Err(Error::Empty { .. })));
        assert!(matches!(parse_key(b" \n\r\n", p), Err(Error::Empty { .. })));
        assert!(matches!(parse_crls(b"", p), Err(Error::Empty { .. })));
    }

    #[test]
    fn garbage_is_not_pem() {
        let p = Path::new("g.pem");
        let e = parse_certs(b"hello world", p).unwrap_err();
        assert!(matches!(e, Error::NotPem { .. }), "{e}");
        assert!(e.to_string().contains("g.pem"));
        assert!(matches!(
            parse_key(b"\x01\x02\x03garbage", p),
            Err(Error::NotPem { .. })
        ));
    }
}
