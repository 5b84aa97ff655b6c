//! Reading PKCS#12 (`.p12` / `.pfx`) files: a private key and certificates in one file.
//!
//! Reads what `openssl pkcs12 -export` writes with OpenSSL 3's defaults (PBES2 with
//! PBKDF2-HMAC-SHA256 and AES-256-CBC, a SHA-256 MAC), with `-legacy` (RC2-40 or 3DES,
//! a SHA-1 MAC), with an empty password (`-passout pass:`) and without encryption
//! (`-keypbe NONE -certpbe NONE`, with or without `-nomac`). The MAC is checked before
//! anything is decrypted, so a wrong password is reported as such.
//!
//! The builders take a `.p12` as an identity
//! ([`ServerBuilder::identity_pkcs12`](crate::ServerBuilder::identity_pkcs12)), whose
//! leaf is the certificate that matches the key (not the first one), or as a trust
//! bundle ([`ServerBuilder::ca_pkcs12`](crate::ServerBuilder::ca_pkcs12)).
//!
//! ```no_run
//! # fn main() -> Result<(), mtls::Error> {
//! let bundle = mtls::pkcs12::load("client1.p12", &mtls::Password::from_env("P12_PASS"))?;
//! println!("{} certificates, key: {}", bundle.certs.len(), bundle.key.is_some());
//! # Ok(()) }
//! ```

use std::path::Path;

use der::Decode;
use der::asn1::{ObjectIdentifier, OctetString};
use hmac::Mac;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use zeroize::Zeroizing;

use super::password::{Password, Secret};
use super::pbe;
use crate::error::{Error, Result};

const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ID_ENCRYPTED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.6");
const X509_CERTIFICATE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.22.1");
const MAX_MAC_ITERATIONS: i32 = 10_000_000;

/// What a PKCS#12 file holds.
#[derive(Debug)]
#[non_exhaustive]
pub struct Pkcs12 {
    /// The private key, if the file holds one (a trust bundle holds none).
    pub key: Option<PrivateKeyDer<'static>>,
    /// Every certificate, in file order (which need not put the leaf first).
    pub certs: Vec<CertificateDer<'static>>,
}

/// Reads a PKCS#12 file.
///
/// # Errors
/// [`Error::Io`], [`Error::Empty`], [`Error::BadPkcs12`], [`Error::Truncated`],
/// [`Error::PasswordUnavailable`], [`Error::WrongPassword`],
/// [`Error::UnsupportedEncryption`], [`Error::MultipleKeys`].
pub fn load(path: impl AsRef<Path>, password: &Password) -> Result<Pkcs12> {
    let path = path.as_ref();
    parse(&crate::pem::read(path)?, path, password)
}

/// Parses a PKCS#12 file from bytes; `origin` names it in errors.
///
/// # Errors
/// As [`load`].
pub fn parse(data: &[u8], origin: &Path, password: &Password) -> Result<Pkcs12> {
    let bad = |detail: String| Error::BadPkcs12 {
        path: origin.to_owned(),
        detail,
    };
    if data.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::Empty {
            path: origin.to_owned(),
        });
    }
    if super::contains(data, b"-----BEGIN ") {
        return Err(bad(
            "it is a PEM file, not PKCS#12; pass its certificate and key \
                        files with `.identity(cert, key)` (or CA certificates with `.ca`)"
                .to_owned(),
        ));
    }
    let pfx = ::pkcs12::pfx::Pfx::from_der(data).map_err(|e| der_error(e, origin))?;
    if pfx.auth_safe.content_type != ID_DATA {
        return Err(bad(format!(
            "its contents are {} (public-key integrity mode), which mtls does not read; \
             export it again with a password: `openssl pkcs12 -export …`",
            pbe::name(&pfx.auth_safe.content_type)
        )));
    }
    let auth_safe = octets(&pfx.auth_safe.content, origin)?;

    let secret = super::read_password(password, origin)?;
    // OpenSSL derives keys from an empty password both as the empty BMPString (two zero
    // bytes) and as no password at all, depending on the tool that wrote the file.
    let candidates: Vec<Secret> = if secret.is_empty() {
        vec![Zeroizing::new(vec![0, 0]), Zeroizing::new(Vec::new())]
    } else {
        vec![pbe::bmp(&secret)]
    };
    let wrong = || Error::WrongPassword {
        path: origin.to_owned(),
        from: password.describe(),
    };
    let chosen: Vec<&Secret> = match &pfx.mac_data {
        Some(mac) => {
            let mut ok = None;
            for c in &candidates {
                if verify_mac(mac, &auth_safe, c, origin)? {
                    ok = Some(c);
                    break;
                }
            }
            vec![ok.ok_or_else(wrong)?]
        }
        None => candidates.iter().collect(),
    };

    let infos = Vec::<cms::content_info::ContentInfo>::from_der(&auth_safe)
        .map_err(|e| der_error(e, origin))?;
    let mut last_err = None;
    for pass in chosen {
        match read_contents(&infos, origin, password, &secret, pass) {
            Ok(out) => return Ok(out),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(wrong))
}

fn read_contents(
    infos: &[cms::content_info::ContentInfo],
    origin: &Path,
    password: &Password,
    secret: &[u8],
    pkcs12_pass: &[u8],
) -> Result<Pkcs12> {
    let convert = convert_command(origin);
    let mut out = Pkcs12 {
        key: None,
        certs: Vec::new(),
    };
    let mut keys = 0;
    for info in infos {
        let contents: Secret = if info.content_type == ID_DATA {
            Zeroizing::new(octets(&info.content, origin)?)
        } else if info.content_type == ID_ENCRYPTED_DATA {
            let der = super::reencode(&info.content).unwrap_or_default();
            let ed = cms::encrypted_data::EncryptedData::from_der(&der)
                .map_err(|e| der_error(e, origin))?;
            let eci = ed.enc_content_info;
            let Some(ct) = eci.encrypted_content else {
                continue;
            };
            pbe::decrypt(&eci.content_enc_alg, ct.as_bytes(), secret, pkcs12_pass)
                .map_err(|e| super::pbe_error(e, origin, password, convert.clone()))?
        } else {
            continue;
        };
        let bags = Vec::<::pkcs12::safe_bag::SafeBag>::from_der(&contents).map_err(|e| {
            match e.kind() {
                // Decrypted without a MAC to vouch for the password: garbage means it was wrong.
                _ if info.content_type == ID_ENCRYPTED_DATA => Error::WrongPassword {
                    path: origin.to_owned(),
                    from: password.describe(),
                },
                _ => der_error(e, origin),
            }
        })?;
        for bag in bags {
            let inner = explicit_inner(&bag.bag_value, origin)?;
            match bag.bag_id {
                ::pkcs12::PKCS_12_KEY_BAG_OID => {
                    keys += 1;
                    if pkcs8::PrivateKeyInfo::from_der(&inner).is_err() {
                        return Err(Error::BadPkcs12 {
                            path: origin.to_owned(),
                            detail: "its key bag does not hold a PKCS#8 private key".to_owned(),
                        });
                    }
                    out.key = Some(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                        inner.to_vec(),
                    )));
                }
                ::pkcs12::PKCS_12_PKCS8_KEY_BAG_OID => {
                    keys += 1;
                    let epki = ::pkcs12::pbe_params::EncryptedPrivateKeyInfo::from_der(&inner)
                        .map_err(|e| der_error(e, origin))?;
                    let plain = pbe::decrypt(
                        &epki.encryption_algorithm,
                        epki.encrypted_data.as_bytes(),
                        secret,
                        pkcs12_pass,
                    )
                    .map_err(|e| super::pbe_error(e, origin, password, convert.clone()))?;
                    out.key = Some(super::pkcs8_plaintext(plain, origin, password)?);
                }
                ::pkcs12::PKCS_12_CERT_BAG_OID => {
                    let cert = ::pkcs12::cert_type::CertBag::from_der(&inner)
                        .map_err(|e| der_error(e, origin))?;
                    if cert.cert_id == X509_CERTIFICATE {
                        out.certs
                            .push(CertificateDer::from(cert.cert_value.as_bytes().to_vec()));
                    }
                }
                _ => {}
            }
        }
    }
    if keys > 1 {
        return Err(Error::MultipleKeys {
            path: origin.to_owned(),
            count: keys,
        });
    }
    for (i, cert) in out.certs.iter().enumerate() {
        if let Err(e) = x509_parser::parse_x509_certificate(cert.as_ref()) {
            return Err(Error::BadCertificate {
                path: origin.to_owned(),
                index: i + 1,
                detail: e.to_string(),
            });
        }
    }
    Ok(out)
}

fn verify_mac(
    mac: &::pkcs12::mac_data::MacData,
    data: &[u8],
    pass: &[u8],
    origin: &Path,
) -> Result<bool> {
    use ::pkcs12::kdf::{Pkcs12KeyType, derive_key};
    let salt = mac.mac_salt.as_bytes();
    let n = mac.iterations;
    if !(1..=MAX_MAC_ITERATIONS).contains(&n) {
        return Err(Error::UnsupportedEncryption {
            path: origin.to_owned(),
            cipher: format!("a MAC with {n} iterations"),
            convert: convert_command(origin),
        });
    }
    let tag = mac.mac.digest.as_bytes();
    macro_rules! check {
        ($d:ty, $len:expr) => {{
            let key = Zeroizing::new(derive_key::<$d>(pass, salt, Pkcs12KeyType::Mac, n, $len));
            let mut h = hmac::Hmac::<$d>::new_from_slice(&key).map_err(|_| Error::BadPkcs12 {
                path: origin.to_owned(),
                detail: "MAC key".to_owned(),
            })?;
            h.update(data);
            Ok(h.verify_slice(tag).is_ok())
        }};
    }
    match mac.mac.algorithm.oid.to_string().as_str() {
        "1.3.14.3.2.26" => check!(sha1::Sha1, 20),
        "2.16.840.1.101.3.4.2.4" => check!(sha2::Sha224, 28),
        "2.16.840.1.101.3.4.2.1" => check!(sha2::Sha256, 32),
        "2.16.840.1.101.3.4.2.2" => check!(sha2::Sha384, 48),
        "2.16.840.1.101.3.4.2.3" => check!(sha2::Sha512, 64),
        _ => Err(Error::UnsupportedEncryption {
            path: origin.to_owned(),
            cipher: format!("a MAC over {}", pbe::name(&mac.mac.algorithm.oid)),
            convert: convert_command(origin),
        }),
    }
}

/// The contents of an `Any` that holds an OCTET STRING.
fn octets(any: &der::Any, origin: &Path) -> Result<Vec<u8>> {
    any.decode_as::<OctetString>()
        .map(OctetString::into_bytes)
        .map_err(|e| der_error(e, origin))
}

/// The value inside a `[0] EXPLICIT` wrapper, as `SafeBag::bag_value` keeps it.
fn explicit_inner(tlv: &[u8], origin: &Path) -> Result<Vec<u8>> {
    let any = der::asn1::AnyRef::from_der(tlv).map_err(|e| der_error(e, origin))?;
    Ok(any.value().to_vec())
}

fn der_error(e: der::Error, origin: &Path) -> Error {
    match e.kind() {
        der::ErrorKind::Incomplete { .. } => Error::Truncated {
            path: origin.to_owned(),
            detail: "the PKCS#12 data ends early; copy the file again".to_owned(),
        },
        other => Error::BadPkcs12 {
            path: origin.to_owned(),
            detail: format!("it does not parse as PKCS#12 ({other})"),
        },
    }
}

/// How to rewrite a `.p12` with OpenSSL 3's defaults.
pub(crate) fn convert_command(path: &Path) -> String {
    format!(
        "openssl pkcs12 -legacy -in {p} -nodes -out tmp.pem && openssl pkcs12 -export -in \
         tmp.pem -out {p}.new.p12 && rm tmp.pem",
        p = path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_pem_are_refused() {
        let p = Path::new("x.p12");
        let none = Password::none();
        assert!(matches!(parse(b"", p, &none), Err(Error::Empty { .. })));
        assert!(matches!(
            parse(b"-----BEGIN CERTIFICATE-----\n", p, &none),
            Err(Error::BadPkcs12 { .. })
        ));
        assert!(matches!(
            parse(&[0x30, 0x82, 0x10, 0x00, 0x02], p, &none),
            Err(Error::Truncated { .. })
        ));
        assert!(matches!(
            parse(b"\x01\x02garbage", p, &none),
            Err(Error::BadPkcs12 { .. })
        ));
    }
}
