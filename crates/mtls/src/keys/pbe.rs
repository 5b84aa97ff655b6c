//! Password-based decryption of the `EncryptedPrivateKeyInfo` family: PBES2 (PBKDF2 or
//! scrypt with AES-CBC or DES-EDE3-CBC) through RustCrypto's `pkcs5`, and the legacy
//! forms it does not decrypt, written here on RustCrypto's ciphers: PKCS#12 PBE
//! (`pbeWithSHAAnd3-KeyTripleDES-CBC`, `…RC2-CBC`; RFC 7292 Appendix C, with the KDF of
//! the `pkcs12` crate) and PKCS#5 v1.5 PBES1 (`pbeWithMD5AndDES-CBC` and friends).

use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, InnerIvInit, KeyInit, KeyIvInit};
use der::asn1::ObjectIdentifier;
use der::{Decode, Encode};
use sha1::Digest;
use spki::AlgorithmIdentifierOwned;
use zeroize::Zeroizing;

use super::password::Secret;

/// Why a decryption failed; the caller adds the file.
#[derive(Debug)]
pub(crate) enum PbeError {
    /// The padding or the structure of the plaintext is wrong: the password is.
    WrongPassword,
    /// A scheme, KDF or cipher we do not decrypt, by name.
    Unsupported(String),
    /// The ciphertext's length is not whole blocks: the file was cut.
    Truncated,
    /// The parameters do not parse.
    Malformed(String),
}

const PBES2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.13");
/// Upper bounds on the work a key file may ask for (the defaults are 2,048 PBKDF2
/// iterations and 16 MiB for scrypt).
const MAX_ITERATIONS: u64 = 10_000_000;
const MAX_SCRYPT_BYTES: u64 = 1 << 30;

/// A human name for an algorithm OID (OpenSSL's where we know it).
pub(crate) fn name(oid: &ObjectIdentifier) -> String {
    let known = match oid.to_string().as_str() {
        "1.2.840.113549.1.12.1.1" => Some("PBE-SHA1-RC4-128"),
        "1.2.840.113549.1.12.1.2" => Some("PBE-SHA1-RC4-40"),
        "1.2.840.113549.1.12.1.3" => Some("PBE-SHA1-3DES"),
        "1.2.840.113549.1.12.1.4" => Some("PBE-SHA1-2DES"),
        "1.2.840.113549.1.12.1.5" => Some("PBE-SHA1-RC2-128"),
        "1.2.840.113549.1.12.1.6" => Some("PBE-SHA1-RC2-40"),
        "1.2.840.113549.1.5.1" => Some("PBE-MD2-DES"),
        "1.2.840.113549.1.5.4" => Some("PBE-MD2-RC2-64"),
        "1.2.840.113549.1.5.3" => Some("PBE-MD5-DES"),
        "1.2.840.113549.1.5.6" => Some("PBE-MD5-RC2-64"),
        "1.2.840.113549.1.5.10" => Some("PBE-SHA1-DES"),
        "1.2.840.113549.1.5.11" => Some("PBE-SHA1-RC2-64"),
        "1.2.392.200011.61.1.1.1.2" => Some("camellia-128-cbc"),
        "1.2.392.200011.61.1.1.1.3" => Some("camellia-192-cbc"),
        "1.2.392.200011.61.1.1.1.4" => Some("camellia-256-cbc"),
        "1.2.410.200046.1.1.2" => Some("aria-128-cbc"),
        "1.2.410.200046.1.1.7" => Some("aria-192-cbc"),
        "1.2.410.200046.1.1.12" => Some("aria-256-cbc"),
        "1.2.840.113549.3.2" => Some("rc2-cbc"),
        "1.3.6.1.4.1.3029.1.2" => Some("bf-cbc"),
        "1.2.156.10197.1.104.2" => Some("sm4-cbc"),
        _ => None,
    };
    match known {
        Some(n) => n.to_owned(),
        None => match const_oid::db::DB.by_oid(oid) {
            Some(n) => n.to_owned(),
            None => format!("the algorithm with OID {oid}"),
        },
    }
}

/// `password` as a PKCS#12 BMPString: UTF-16BE with two zero bytes at the end (RFC 7292
/// Appendix B.1). A password that is not UTF-8 is taken byte by byte.
pub(crate) fn bmp(password: &[u8]) -> Secret {
    let mut out = Zeroizing::new(Vec::with_capacity(password.len() * 2 + 2));
    match std::str::from_utf8(password) {
        Ok(s) => {
            for unit in s.encode_utf16() {
                out.extend_from_slice(&unit.to_be_bytes());
            }
        }
        Err(_) => {
            for b in password {
                out.extend_from_slice(&[0, *b]);
            }
        }
    }
    out.extend_from_slice(&[0, 0]);
    out
}

/// Decrypts `ciphertext` with the scheme `alg`. `password` is the raw password (PBES1,
/// PBES2); `pkcs12_password` the one the PKCS#12 KDF takes (see [`bmp`]; an empty `.p12`
/// password may need the zero-length form, so the caller chooses).
pub(crate) fn decrypt(
    alg: &AlgorithmIdentifierOwned,
    ciphertext: &[u8],
    password: &[u8],
    pkcs12_password: &[u8],
) -> Result<Secret, PbeError> {
    let oid = alg.oid;
    if oid == PBES2 {
        return pbes2(alg, ciphertext, password);
    }
    let params = || -> Result<(Vec<u8>, u64), PbeError> {
        let any = alg
            .parameters
            .as_ref()
            .ok_or_else(|| PbeError::Malformed(format!("{} has no parameters", name(&oid))))?;
        let p = pkcs12::pbe_params::Pkcs12PbeParams::from_der(
            &any.to_der()
                .map_err(|e| PbeError::Malformed(e.to_string()))?,
        )
        .map_err(|e| PbeError::Malformed(format!("{} parameters: {e}", name(&oid))))?;
        let iterations = u64::try_from(p.iterations).unwrap_or(0);
        if iterations == 0 || iterations > MAX_ITERATIONS {
            return Err(PbeError::Unsupported(format!(
                "{} with {} iterations",
                name(&oid),
                p.iterations
            )));
        }
        Ok((p.salt.as_bytes().to_vec(), iterations))
    };
    match oid.to_string().as_str() {
        "1.2.840.113549.1.12.1.3" => {
            let (salt, n) = params()?;
            let (key, iv) = pkcs12_key_iv(pkcs12_password, &salt, n, 24)?;
            cbc_decrypt::<des::TdesEde3>(&key, &iv, ciphertext)
        }
        "1.2.840.113549.1.12.1.4" => {
            let (salt, n) = params()?;
            let (key, iv) = pkcs12_key_iv(pkcs12_password, &salt, n, 16)?;
            cbc_decrypt::<des::TdesEde2>(&key, &iv, ciphertext)
        }
        "1.2.840.113549.1.12.1.5" | "1.2.840.113549.1.12.1.6" => {
            let (salt, n) = params()?;
            let len = if oid.to_string().ends_with(".5") {
                16
            } else {
                5
            };
            let (key, iv) = pkcs12_key_iv(pkcs12_password, &salt, n, len)?;
            let cipher = rc2::Rc2::new_with_eff_key_len(&key, len * 8);
            rc2_decrypt(cipher, &iv, ciphertext)
        }
        // PKCS#5 v1.5 PBES1 (RFC 8018 §6.1): PBKDF1 with MD5 or SHA-1, DES or RC2-64.
        "1.2.840.113549.1.5.3"
        | "1.2.840.113549.1.5.6"
        | "1.2.840.113549.1.5.10"
        | "1.2.840.113549.1.5.11" => {
            let (salt, n) = params()?;
            if salt.len() != 8 {
                return Err(PbeError::Malformed(format!(
                    "{}: the salt must be 8 bytes",
                    name(&oid)
                )));
            }
            let s = oid.to_string();
            let dk = if s.ends_with(".3") || s.ends_with(".6") {
                pbkdf1::<md5::Md5>(password, &salt, n)
            } else {
                pbkdf1::<sha1::Sha1>(password, &salt, n)
            };
            let (key, iv) = dk.split_at(8);
            if s.ends_with(".3") || s.ends_with(".10") {
                cbc_decrypt::<des::Des>(key, iv, ciphertext)
            } else {
                rc2_decrypt(rc2::Rc2::new_with_eff_key_len(key, 64), iv, ciphertext)
            }
        }
        // The other PBES1 and PKCS#12 PBE forms (MD2, RC4), and anything else.
        _ => Err(PbeError::Unsupported(name(&oid))),
    }
}

fn pbes2(
    alg: &AlgorithmIdentifierOwned,
    ciphertext: &[u8],
    password: &[u8],
) -> Result<Secret, PbeError> {
    let der = alg
        .to_der()
        .map_err(|e| PbeError::Malformed(e.to_string()))?;
    let Ok(scheme) = pkcs5::EncryptionScheme::from_der(&der) else {
        return Err(unsupported_pbes2(alg));
    };
    let Some(params) = scheme.pbes2() else {
        return Err(unsupported_pbes2(alg));
    };
    match &params.kdf {
        pkcs5::pbes2::Kdf::Pbkdf2(p) if u64::from(p.iteration_count) > MAX_ITERATIONS => {
            return Err(PbeError::Unsupported(format!(
                "PBKDF2 with {} iterations",
                p.iteration_count
            )));
        }
        pkcs5::pbes2::Kdf::Scrypt(p) => {
            let bytes = 128u64
                .saturating_mul(u64::from(p.block_size))
                .saturating_mul(p.cost_parameter)
                .saturating_mul(u64::from(p.parallelization).max(1));
            if bytes > MAX_SCRYPT_BYTES {
                return Err(PbeError::Unsupported(format!(
                    "scrypt with N={} r={} p={} (more than 1 GiB of memory)",
                    p.cost_parameter, p.block_size, p.parallelization
                )));
            }
        }
        _ => {}
    }
    let block = match params.encryption {
        pkcs5::pbes2::EncryptionScheme::Aes128Cbc { .. }
        | pkcs5::pbes2::EncryptionScheme::Aes192Cbc { .. }
        | pkcs5::pbes2::EncryptionScheme::Aes256Cbc { .. } => 16,
        _ => 8,
    };
    if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(block) {
        return Err(PbeError::Truncated);
    }
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    match params.decrypt_in_place(password, &mut buf) {
        Ok(plain) => {
            let len = plain.len();
            buf.truncate(len);
            Ok(buf)
        }
        // pkcs5 0.7.1 reports a padding failure on decryption as `EncryptFailed`; the
        // length was checked above, so either means the key derived was wrong.
        Err(pkcs5::Error::DecryptFailed | pkcs5::Error::EncryptFailed) => {
            Err(PbeError::WrongPassword)
        }
        Err(pkcs5::Error::UnsupportedAlgorithm { oid }) => Err(PbeError::Unsupported(name(&oid))),
        Err(e) => Err(PbeError::Malformed(e.to_string())),
    }
}

/// Names what `pkcs5` refused in a PBES2 AlgorithmIdentifier: the cipher, the KDF or
/// the KDF's PRF.
fn unsupported_pbes2(alg: &AlgorithmIdentifierOwned) -> PbeError {
    let Some(any) = alg.parameters.as_ref() else {
        return PbeError::Malformed("PBES2 without parameters".to_owned());
    };
    let Ok(der) = any.to_der() else {
        return PbeError::Malformed("PBES2 parameters".to_owned());
    };
    let Ok(p) = pkcs12::pbe_params::Pbes2Params::from_der(&der) else {
        return PbeError::Malformed("PBES2 parameters do not parse".to_owned());
    };
    let known_cipher = [
        "2.16.840.1.101.3.4.1.2",
        "2.16.840.1.101.3.4.1.22",
        "2.16.840.1.101.3.4.1.42",
        "1.2.840.113549.3.7",
        "1.3.14.3.2.7",
    ];
    if !known_cipher.contains(&p.encryption.oid.to_string().as_str()) {
        return PbeError::Unsupported(name(&p.encryption.oid));
    }
    if p.kdf.oid.to_string() == "1.2.840.113549.1.5.12" {
        // PBKDF2: the PRF is what is unknown (say, hmacWithSM3).
        if let Some(prf) = p
            .kdf
            .parameters
            .as_ref()
            .and_then(|a| a.to_der().ok())
            .and_then(|d| pkcs12::pbe_params::Pbkdf2Params::from_der(&d).ok())
        {
            return PbeError::Unsupported(format!("PBKDF2 with {}", name(&prf.prf.oid)));
        }
    }
    PbeError::Unsupported(format!("PBES2 with {}", name(&p.kdf.oid)))
}

fn pkcs12_key_iv(
    password: &[u8],
    salt: &[u8],
    iterations: u64,
    key_len: usize,
) -> Result<(Secret, Secret), PbeError> {
    use pkcs12::kdf::{Pkcs12KeyType, derive_key};
    let rounds = i32::try_from(iterations)
        .map_err(|_| PbeError::Unsupported(format!("{iterations} iterations")))?;
    let key = Zeroizing::new(derive_key::<sha1::Sha1>(
        password,
        salt,
        Pkcs12KeyType::EncryptionKey,
        rounds,
        key_len,
    ));
    let iv = Zeroizing::new(derive_key::<sha1::Sha1>(
        password,
        salt,
        Pkcs12KeyType::Iv,
        rounds,
        8,
    ));
    Ok((key, iv))
}

fn pbkdf1<D: Digest>(password: &[u8], salt: &[u8], iterations: u64) -> Secret {
    let mut t = Zeroizing::new({
        let mut d = D::new();
        d.update(password);
        d.update(salt);
        d.finalize().to_vec()
    });
    for _ in 1..iterations {
        *t = D::digest(t.as_slice()).to_vec();
    }
    t.truncate(16);
    t
}

fn cbc_decrypt<C>(key: &[u8], iv: &[u8], ciphertext: &[u8]) -> Result<Secret, PbeError>
where
    C: cbc::cipher::BlockDecrypt + cbc::cipher::BlockCipher + KeyInit,
{
    if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(8) {
        return Err(PbeError::Truncated);
    }
    let dec = cbc::Decryptor::<C>::new_from_slices(key, iv)
        .map_err(|_| PbeError::Malformed("bad key or IV length".to_owned()))?;
    dec.decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
        .map(Zeroizing::new)
        .map_err(|_| PbeError::WrongPassword)
}

fn rc2_decrypt(cipher: rc2::Rc2, iv: &[u8], ciphertext: &[u8]) -> Result<Secret, PbeError> {
    if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(8) {
        return Err(PbeError::Truncated);
    }
    let dec = cbc::Decryptor::<rc2::Rc2>::inner_iv_slice_init(cipher, iv)
        .map_err(|_| PbeError::Malformed("bad IV length".to_owned()))?;
    dec.decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
        .map(Zeroizing::new)
        .map_err(|_| PbeError::WrongPassword)
}

/// Decrypts with a block cipher in CBC mode from an explicit key and IV (the
/// traditional OpenSSL PEM form).
pub(crate) fn cbc_decrypt_named(
    cipher: &str,
    key: &[u8],
    iv: &[u8],
    ciphertext: &[u8],
) -> Result<Secret, PbeError> {
    let block = if cipher.starts_with("AES") { 16 } else { 8 };
    if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(block) {
        return Err(PbeError::Truncated);
    }
    match cipher {
        "AES-128-CBC" => cbc_decrypt::<aes::Aes128>(key, iv, ciphertext),
        "AES-192-CBC" => cbc_decrypt::<aes::Aes192>(key, iv, ciphertext),
        "AES-256-CBC" => cbc_decrypt::<aes::Aes256>(key, iv, ciphertext),
        "DES-EDE3-CBC" => cbc_decrypt::<des::TdesEde3>(key, iv, ciphertext),
        "DES-CBC" => cbc_decrypt::<des::Des>(key, iv, ciphertext),
        other => Err(PbeError::Unsupported(other.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bmp_encoding() {
        assert_eq!(bmp(b"ab").as_slice(), &[0, b'a', 0, b'b', 0, 0]);
        assert_eq!(bmp(b"").as_slice(), &[0, 0]);
    }

    #[test]
    fn short_ciphertext_is_truncated() {
        assert!(matches!(
            cbc_decrypt_named("AES-256-CBC", &[0; 32], &[0; 16], &[0; 15]),
            Err(PbeError::Truncated)
        ));
        assert!(matches!(
            cbc_decrypt_named("AES-256-CBC", &[0; 32], &[0; 16], &[0; 16]),
            Err(PbeError::WrongPassword)
        ));
    }
}
