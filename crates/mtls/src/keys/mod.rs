//! Encrypted private keys and PKCS#12 bundles.
//!
//! | form | written by | decrypted with |
//! |---|---|---|
//! | PKCS#8 `ENCRYPTED PRIVATE KEY`, PBES2 (PBKDF2-HMAC-SHA256 or scrypt, AES-CBC or DES-EDE3-CBC) | `openssl pkcs8 -topk8` (OpenSSL 3 default), `-scrypt`, `openssl genpkey -aes256` | RustCrypto `pkcs5` |
//! | PKCS#8 with PKCS#12 PBE (`-v1 PBE-SHA1-3DES`, `PBE-SHA1-RC2-40`, …) or PKCS#5 PBES1 (`-v1 PBE-MD5-DES`, …) | OpenSSL 1.0 and Java tools | `pkcs12`'s KDF, `des`, `rc2` |
//! | traditional `Proc-Type: 4,ENCRYPTED` + `DEK-Info` (AES-128/192/256-CBC, DES-EDE3-CBC, DES-CBC) | `openssl genrsa -aes256 -traditional`, `openssl ec -aes256` | EVP_BytesToKey (MD5), `aes`, `des` |
//! | PKCS#12 `.p12` / `.pfx` | `openssl pkcs12 -export` (with or without `-legacy`) | the above; the MAC (HMAC-SHA-1/-256/…) is checked first |
//!
//! The password comes from a [`Password`]; see there for how it is kept.

pub(crate) mod password;
pub(crate) mod pbe;
pub mod pkcs12;

use std::path::Path;

use der::{Decode, Encode};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer};
use zeroize::Zeroizing;

pub use password::Password;
use password::Secret;
use pbe::PbeError;

use crate::error::{Error, Result};

/// The command that rewrites a key in the form every version of mtls reads.
pub(crate) fn convert_key_command(path: &Path) -> String {
    format!(
        "openssl pkcs8 -topk8 -v2 aes-256-cbc -in {} -out {}.p8",
        path.display(),
        path.display()
    )
}

pub(crate) fn pbe_error(e: PbeError, path: &Path, password: &Password, convert: String) -> Error {
    match e {
        PbeError::WrongPassword => Error::WrongPassword {
            path: path.to_owned(),
            from: password.describe(),
        },
        PbeError::Unsupported(cipher) => Error::UnsupportedEncryption {
            path: path.to_owned(),
            cipher,
            convert,
        },
        PbeError::Truncated => Error::Truncated {
            path: path.to_owned(),
            detail: "the encrypted data ends in the middle of a cipher block".to_owned(),
        },
        PbeError::Malformed(detail) => Error::Truncated {
            path: path.to_owned(),
            detail,
        },
    }
}

pub(crate) fn read_password(password: &Password, path: &Path) -> Result<Secret> {
    password
        .read()
        .map_err(|reason| Error::PasswordUnavailable {
            path: path.to_owned(),
            from: password.describe(),
            reason,
        })
}

/// Whether `data` (PEM) holds an encrypted key in either PEM form.
pub(crate) fn pem_is_encrypted(data: &[u8]) -> bool {
    contains(data, b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || contains(data, b"Proc-Type: 4,ENCRYPTED")
}

/// Decrypts the one encrypted key of a PEM file.
pub(crate) fn decrypt_pem(
    data: &[u8],
    origin: &Path,
    password: &Password,
) -> Result<PrivateKeyDer<'static>> {
    let blocks = pem_blocks(data, origin)?;
    let mut encrypted = blocks.into_iter().filter(|b| {
        b.label == "ENCRYPTED PRIVATE KEY"
            || (b.label.ends_with("PRIVATE KEY")
                && b.headers
                    .iter()
                    .any(|(k, v)| k == "Proc-Type" && v.contains("ENCRYPTED")))
    });
    let Some(block) = encrypted.next() else {
        return Err(Error::NoPrivateKey {
            path: origin.to_owned(),
            hint: "",
        });
    };
    if encrypted.next().is_some() {
        return Err(Error::MultipleKeys {
            path: origin.to_owned(),
            count: 2,
        });
    }
    let decrypt = |pw: &Password| {
        if block.label == "ENCRYPTED PRIVATE KEY" {
            decrypt_pkcs8_der(&block.body, origin, pw)
        } else {
            decrypt_traditional(&block, origin, pw)
        }
    };
    no_password_means_empty(password, origin, decrypt)
}

/// With [`Password::none`], a key encrypted with the empty password
/// (`openssl pkcs8 -topk8 -passout pass:`) is still read; any other encrypted key is
/// [`Error::EncryptedKey`] (no password was given), not a wrong password.
fn no_password_means_empty(
    password: &Password,
    origin: &Path,
    decrypt: impl Fn(&Password) -> Result<PrivateKeyDer<'static>>,
) -> Result<PrivateKeyDer<'static>> {
    if !password.is_none() {
        return decrypt(password);
    }
    match decrypt(password) {
        Err(Error::WrongPassword { .. }) => Err(Error::EncryptedKey {
            path: origin.to_owned(),
        }),
        other => other,
    }
}

/// Decrypts a DER `EncryptedPrivateKeyInfo`.
pub(crate) fn decrypt_pkcs8_der(
    der: &[u8],
    origin: &Path,
    password: &Password,
) -> Result<PrivateKeyDer<'static>> {
    no_password_means_empty(password, origin, |pw| decrypt_pkcs8_with(der, origin, pw))
}

fn decrypt_pkcs8_with(
    der: &[u8],
    origin: &Path,
    password: &Password,
) -> Result<PrivateKeyDer<'static>> {
    let info = ::pkcs12::pbe_params::EncryptedPrivateKeyInfo::from_der(der)
        .map_err(|e| der_error(e, origin, "the encrypted PKCS#8 key"))?;
    let secret = read_password(password, origin)?;
    let plain = pbe::decrypt(
        &info.encryption_algorithm,
        info.encrypted_data.as_bytes(),
        &secret,
        &pbe::bmp(&secret),
    )
    .map_err(|e| pbe_error(e, origin, password, convert_key_command(origin)))?;
    pkcs8_plaintext(plain, origin, password)
}

/// Checks that a decrypted PKCS#8 key is one: a wrong password that happens to leave
/// valid padding (1 in 256) gives garbage here.
pub(crate) fn pkcs8_plaintext(
    plain: Secret,
    origin: &Path,
    password: &Password,
) -> Result<PrivateKeyDer<'static>> {
    if pkcs8::PrivateKeyInfo::from_der(&plain).is_err() {
        return Err(Error::WrongPassword {
            path: origin.to_owned(),
            from: password.describe(),
        });
    }
    Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        plain.to_vec(),
    )))
}

fn decrypt_traditional(
    block: &PemBlock,
    origin: &Path,
    password: &Password,
) -> Result<PrivateKeyDer<'static>> {
    let convert = convert_key_command(origin);
    let dek = block
        .headers
        .iter()
        .find(|(k, _)| k == "DEK-Info")
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| Error::Truncated {
            path: origin.to_owned(),
            detail: "the key says \"Proc-Type: 4,ENCRYPTED\" but has no DEK-Info line".to_owned(),
        })?;
    let (cipher, iv_hex) = dek.split_once(',').unwrap_or((dek, ""));
    let cipher = cipher.trim().to_ascii_uppercase();
    let key_len = match cipher.as_str() {
        "AES-128-CBC" => 16,
        "AES-192-CBC" | "DES-EDE3-CBC" => 24,
        "AES-256-CBC" => 32,
        "DES-CBC" => 8,
        _ => {
            return Err(Error::UnsupportedEncryption {
                path: origin.to_owned(),
                cipher,
                convert,
            });
        }
    };
    let iv = data_encoding::HEXUPPER_PERMISSIVE
        .decode(iv_hex.trim().as_bytes())
        .ok()
        .filter(|iv| iv.len() == if cipher.starts_with("AES") { 16 } else { 8 })
        .ok_or_else(|| Error::Truncated {
            path: origin.to_owned(),
            detail: format!(
                "the IV in \"DEK-Info: {dek}\" is not valid hex of the cipher's block size"
            ),
        })?;
    let secret = read_password(password, origin)?;
    let key = bytes_to_key(&secret, &iv[..8], key_len);
    let plain = pbe::cbc_decrypt_named(&cipher, &key, &iv, &block.body)
        .map_err(|e| pbe_error(e, origin, password, convert))?;
    let wrong = || Error::WrongPassword {
        path: origin.to_owned(),
        from: password.describe(),
    };
    // A whole DER SEQUENCE, or the password was wrong.
    match der::asn1::AnyRef::from_der(&plain) {
        Ok(any) if der::Tagged::tag(&any) == der::Tag::Sequence => {}
        _ => return Err(wrong()),
    }
    let der = plain.to_vec();
    Ok(match block.label.as_str() {
        "RSA PRIVATE KEY" => PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der)),
        "EC PRIVATE KEY" => PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(der)),
        _ => {
            if pkcs8::PrivateKeyInfo::from_der(&plain).is_err() {
                return Err(wrong());
            }
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der))
        }
    })
}

/// OpenSSL's EVP_BytesToKey with MD5 and one iteration, as the traditional PEM form
/// derives its key: D_i = MD5(D_{i-1} || password || salt).
fn bytes_to_key(password: &[u8], salt: &[u8], len: usize) -> Secret {
    use md5::Digest;
    let mut out = Zeroizing::new(Vec::with_capacity(len + 16));
    let mut prev: Option<Zeroizing<Vec<u8>>> = None;
    while out.len() < len {
        let mut d = md5::Md5::new();
        if let Some(p) = &prev {
            d.update(p.as_slice());
        }
        d.update(password);
        d.update(salt);
        let block = Zeroizing::new(d.finalize().to_vec());
        out.extend_from_slice(&block);
        prev = Some(block);
    }
    out.truncate(len);
    out
}

fn der_error(e: der::Error, origin: &Path, what: &str) -> Error {
    match e.kind() {
        der::ErrorKind::Incomplete { .. } => Error::Truncated {
            path: origin.to_owned(),
            detail: format!("{what} ends early; copy the file again"),
        },
        other => Error::Truncated {
            path: origin.to_owned(),
            detail: format!("{what} is corrupt ({other})"),
        },
    }
}

/// One PEM block with its RFC 1421 headers.
#[derive(Debug)]
pub(crate) struct PemBlock {
    pub(crate) label: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Zeroizing<Vec<u8>>,
}

/// Reads every PEM block (any label) with its headers; tolerant of CRLF and text around
/// the blocks.
pub(crate) fn pem_blocks(data: &[u8], origin: &Path) -> Result<Vec<PemBlock>> {
    let text = String::from_utf8_lossy(data);
    let mut out = Vec::new();
    let mut lines = text.lines().map(str::trim_end);
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut headers = Vec::new();
        let mut b64 = Zeroizing::new(String::new());
        let mut in_headers = true;
        let mut closed = false;
        for l in lines.by_ref() {
            if l == end {
                closed = true;
                break;
            }
            if in_headers {
                if let Some((k, v)) = l.split_once(':')
                    && !k.contains(' ')
                {
                    headers.push((k.trim().to_owned(), v.trim().to_owned()));
                    continue;
                }
                in_headers = false;
                if l.trim().is_empty() {
                    continue;
                }
            }
            b64.push_str(l.trim());
        }
        if !closed {
            return Err(Error::BadPem {
                path: origin.to_owned(),
                detail: format!("the \"{end}\" line is missing (the file is truncated)"),
            });
        }
        let body = data_encoding::BASE64
            .decode(b64.as_bytes())
            .map_err(|_| Error::BadPem {
                path: origin.to_owned(),
                detail: "the base64 text between BEGIN and END is corrupt".to_owned(),
            })?;
        out.push(PemBlock {
            label: label.to_owned(),
            headers,
            body: Zeroizing::new(body),
        });
    }
    Ok(out)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Re-encodes a value for a typed decode (the `pkcs12` crate keeps some fields as `Any`).
pub(crate) fn reencode<T: Encode>(v: &T) -> Option<Vec<u8>> {
    v.to_der().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evp_bytes_to_key_matches_openssl() {
        // `openssl enc -aes-256-cbc -P -md md5 -S 0001020304050607 -pass pass:test`
        let key = bytes_to_key(b"test", &[0, 1, 2, 3, 4, 5, 6, 7], 32);
        assert_eq!(
            data_encoding::HEXUPPER.encode(&key),
            "EE529754BB720561FEF2AB980438B1ABFA1392A607394F1F5C42403E338CB5A5"
        );
        let again = bytes_to_key(b"test", &[0, 1, 2, 3, 4, 5, 6, 7], 16);
        assert_eq!(&key[..16], again.as_slice());
    }
}
