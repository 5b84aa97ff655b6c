//! Writes a PKCS#12 file as OpenSSL 3 does by default: the key in a PBES2 shrouded key
//! bag (PBKDF2-HMAC-SHA256, AES-256-CBC), the certificates in a plain bag, an
//! HMAC-SHA256 MAC from the PKCS#12 key derivation; `localKeyId` on the key and its leaf.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use yasna::models::ObjectIdentifier;
use yasna::{DERWriter, Tag};

use crate::{CliError, Result};

const ITERATIONS: u32 = 2048;

fn oid(arcs: &[u64]) -> ObjectIdentifier {
    ObjectIdentifier::from_slice(arcs)
}

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut buf = [0u8; N];
    rustls::crypto::aws_lc_rs::default_provider()
        .secure_random
        .fill(&mut buf)
        .map_err(|_| CliError::msg("the system random number generator failed".to_owned()))?;
    Ok(buf)
}

/// `ContentInfo` of type data holding `content`.
fn data_content_info(w: DERWriter<'_>, content: &[u8]) {
    w.write_sequence(|w| {
        w.next().write_oid(&oid(&[1, 2, 840, 113_549, 1, 7, 1]));
        w.next()
            .write_tagged(Tag::context(0), |w| w.write_bytes(content));
    });
}

fn local_key_id(w: DERWriter<'_>, id: &[u8]) {
    w.write_set(|w| {
        w.next().write_sequence(|w| {
            w.next().write_oid(&oid(&[1, 2, 840, 113_549, 1, 9, 21]));
            w.next().write_set(|w| w.next().write_bytes(id));
        });
    });
}

/// The `.p12` bytes of `chain` (leaf first) and the PKCS#8 key `key`, under `password`.
pub(crate) fn build(chain: &[Vec<u8>], key: &[u8], password: &str) -> Result<Vec<u8>> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        CliError::msg(format!("cannot make the PKCS#12 file: {what}: {e}"))
    };
    let id: Vec<u8> = chain
        .first()
        .map(|leaf| Sha256::digest(leaf)[..20].to_vec())
        .unwrap_or_default();

    let salt: [u8; 16] = random()?;
    let iv: [u8; 16] = random()?;
    let params = pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(ITERATIONS, &salt, &iv)
        .map_err(|e| fail("PBES2 parameters", &e))?;
    let encrypted = params
        .encrypt(password, key)
        .map_err(|e| fail("key encryption", &e))?;
    let scheme = der::Encode::to_der(&pkcs5::EncryptionScheme::Pbes2(params))
        .map_err(|e| fail("PBES2 encoding", &e))?;

    let key_bags = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_sequence(|w| {
                w.next()
                    .write_oid(&oid(&[1, 2, 840, 113_549, 1, 12, 10, 1, 2]));
                w.next().write_tagged(Tag::context(0), |w| {
                    w.write_sequence(|w| {
                        w.next().write_der(&scheme);
                        w.next().write_bytes(&encrypted);
                    });
                });
                local_key_id(w.next(), &id);
            });
        });
    });
    let cert_bags = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            for (i, cert) in chain.iter().enumerate() {
                w.next().write_sequence(|w| {
                    w.next()
                        .write_oid(&oid(&[1, 2, 840, 113_549, 1, 12, 10, 1, 3]));
                    w.next().write_tagged(Tag::context(0), |w| {
                        w.write_sequence(|w| {
                            w.next().write_oid(&oid(&[1, 2, 840, 113_549, 1, 9, 22, 1]));
                            w.next()
                                .write_tagged(Tag::context(0), |w| w.write_bytes(cert));
                        });
                    });
                    if i == 0 {
                        local_key_id(w.next(), &id);
                    }
                });
            }
        });
    });
    let auth_safe = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            data_content_info(w.next(), &cert_bags);
            data_content_info(w.next(), &key_bags);
        });
    });

    let mac_salt: [u8; 16] = random()?;
    let mac_key = pkcs12::kdf::derive_key_utf8::<Sha256>(
        password,
        &mac_salt,
        pkcs12::kdf::Pkcs12KeyType::Mac,
        ITERATIONS as i32,
        32,
    )
    .map_err(|e| fail("MAC key", &e))?;
    let mut hmac = Hmac::<Sha256>::new_from_slice(&mac_key).map_err(|e| fail("MAC", &e))?;
    hmac.update(&auth_safe);
    let mac = hmac.finalize().into_bytes();

    Ok(yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_u8(3);
            data_content_info(w.next(), &auth_safe);
            w.next().write_sequence(|w| {
                w.next().write_sequence(|w| {
                    w.next().write_sequence(|w| {
                        w.next().write_oid(&oid(&[2, 16, 840, 1, 101, 3, 4, 2, 1]));
                        w.next().write_null();
                    });
                    w.next().write_bytes(&mac);
                });
                w.next().write_bytes(&mac_salt);
                w.next().write_u32(ITERATIONS);
            });
        });
    }))
}

/// The password: the first line of `path` (without its line ending).
pub(crate) fn read_password(path: &std::path::Path) -> Result<String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::msg(format!(
            "cannot read the password file {}: {e}",
            path.display()
        ))
    })?;
    Ok(text.lines().next().unwrap_or_default().to_owned())
}
