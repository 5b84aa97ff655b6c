//! Private keys that never leave a PKCS#11 token (an HSM, a smart card, SoftHSM2).
//!
//! Feature `pkcs11`. A [`Pkcs11Key`] is a [`KeySigner`]: give it with the certificate
//! to [`ServerBuilder::identity_signer`](crate::ServerBuilder::identity_signer) or
//! [`ClientBuilder::identity_signer`](crate::ClientBuilder::identity_signer). The
//! token's module is loaded at run time (`dlopen`, through the `cryptoki` crate); this
//! feature builds no C code.
//!
//! ```no_run
//! # fn main() -> Result<(), mtls::Error> {
//! use mtls::pkcs11::{Pkcs11Config, Pkcs11Key};
//! use mtls::{Password, Policy, Server};
//!
//! let key = Pkcs11Key::open(
//!     &Pkcs11Config::new("/usr/lib/softhsm/libsofthsm2.so")
//!         .token_label("prod-tls")
//!         .key_label("api-server")
//!         .pin(Password::from_file("/run/secrets/hsm-pin")),
//! )?;
//! let server = Server::builder()
//!     .identity_signer("server.crt", key)
//!     .client_ca("ca.crt")
//!     .policy(Policy::any_verified())
//!     .build()?;
//! # let _ = server; Ok(()) }
//! ```
//!
//! RSA keys sign with RSA-PSS and PKCS#1 v1.5 (SHA-256/384/512, hashed by the token),
//! EC keys on P-256 and P-384 with ECDSA (hashed here, `CKM_ECDSA` on the token). The
//! key is opened once (module, token, login, key lookup); reloads re-read the
//! certificate and check the key against it with a test signature. Signing goes through
//! one session per key, one signature at a time, on the handshake's thread; the load
//! bench in `benches/` measures what that costs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::RvError;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::{AuthPin, Ulong};
use rustls::{SignatureAlgorithm, SignatureScheme};
use sha2::Digest;

use crate::error::{Error, Result};
use crate::keys::Password;
use crate::signer::KeySigner;

/// Which token and key to open, and the PIN.
#[derive(Debug, Clone)]
pub struct Pkcs11Config {
    module: PathBuf,
    token_label: Option<String>,
    slot: Option<u64>,
    key_label: Option<String>,
    key_id: Option<Vec<u8>>,
    pin: Password,
}

impl Pkcs11Config {
    /// The token's PKCS#11 module (`/usr/lib/softhsm/libsofthsm2.so`, a vendor's
    /// `.so`). Without [`token_label`](Self::token_label) or [`slot`](Self::slot), the
    /// only token present is used.
    pub fn new(module: impl Into<PathBuf>) -> Self {
        Self {
            module: module.into(),
            token_label: None,
            slot: None,
            key_label: None,
            key_id: None,
            pin: Password::none(),
        }
    }

    /// The token by its label (`softhsm2-util --init-token --label …`).
    #[must_use]
    pub fn token_label(mut self, label: impl Into<String>) -> Self {
        self.token_label = Some(label.into());
        self
    }

    /// The token by its slot id.
    #[must_use]
    pub fn slot(mut self, id: u64) -> Self {
        self.slot = Some(id);
        self
    }

    /// The private key by its label (`CKA_LABEL`).
    #[must_use]
    pub fn key_label(mut self, label: impl Into<String>) -> Self {
        self.key_label = Some(label.into());
        self
    }

    /// The private key by its id (`CKA_ID`, e.g. the `--id` of `softhsm2-util --import`).
    #[must_use]
    pub fn key_id(mut self, id: impl Into<Vec<u8>>) -> Self {
        self.key_id = Some(id.into());
        self
    }

    /// The user PIN (from a file or an environment variable, like a key password).
    #[must_use]
    pub fn pin(mut self, pin: Password) -> Self {
        self.pin = pin;
        self
    }

    fn describe(&self) -> String {
        let mut s = format!("module {}", self.module.display());
        if let Some(t) = &self.token_label {
            s.push_str(&format!(", token {t:?}"));
        }
        if let Some(id) = self.slot {
            s.push_str(&format!(", slot {id}"));
        }
        if let Some(l) = &self.key_label {
            s.push_str(&format!(", key {l:?}"));
        }
        if let Some(id) = &self.key_id {
            s.push_str(&format!(", key id {}", data_encoding::HEXLOWER.encode(id)));
        }
        s
    }
}

/// The curve or type of a token key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rsa,
    P256,
    P384,
}

/// A private key in a PKCS#11 token; see the [module docs](self).
#[derive(Debug)]
pub struct Pkcs11Key {
    session: Mutex<Session>,
    key: ObjectHandle,
    kind: Kind,
    what: String,
}

/// One initialised context per module for the whole process: `C_Initialize` may run
/// once per module, and dropping the last context would finalize it under other keys.
fn context(module: &Path) -> Result<Pkcs11> {
    static CONTEXTS: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let contexts = CONTEXTS.get_or_init(Default::default);
    let mut map = contexts
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(ctx) = map.get(module) {
        return Ok(ctx.clone());
    }
    let fail = |what: &str, e: cryptoki::error::Error| Error::Pkcs11 {
        reason: format!(
            "cannot {what} the module {}: {e}; check the path (for SoftHSM2: \
             /usr/lib/softhsm/libsofthsm2.so, package softhsm2)",
            module.display()
        ),
    };
    let ctx = Pkcs11::new(module).map_err(|e| fail("load", e))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(cryptoki::error::Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(fail("initialise", e)),
    }
    map.insert(module.to_owned(), ctx.clone());
    Ok(ctx)
}

impl Pkcs11Key {
    /// Loads the module, finds the token, logs in with the PIN and finds the one
    /// private key that matches.
    ///
    /// # Errors
    /// [`Error::Pkcs11`] naming what was not found or refused (module, token, PIN, no
    /// or several matching keys, an unsupported key type);
    /// [`Error::PasswordUnavailable`] when the PIN cannot be read.
    pub fn open(config: &Pkcs11Config) -> Result<Self> {
        let what = config.describe();
        let err = |reason: String| Error::Pkcs11 {
            reason: format!("{what}: {reason}"),
        };
        let ctx = context(&config.module)?;
        let slots = ctx
            .get_slots_with_token()
            .map_err(|e| err(format!("cannot list the tokens ({e})")))?;
        let mut labels = Vec::new();
        let mut chosen = None;
        for slot in slots {
            let label = ctx
                .get_token_info(slot)
                .map(|i| i.label().trim().to_owned())
                .unwrap_or_default();
            let ok = match (&config.token_label, config.slot) {
                (Some(l), _) => *l == label,
                (None, Some(id)) => slot.id() == id,
                (None, None) => true,
            };
            labels.push(label);
            if ok {
                if chosen.is_some() && config.token_label.is_none() && config.slot.is_none() {
                    return Err(err(format!(
                        "several tokens are present ({}); choose one with .token_label(..)",
                        labels.join(", ")
                    )));
                }
                chosen.get_or_insert(slot);
            }
        }
        let slot = chosen.ok_or_else(|| {
            err(format!(
                "no such token; the tokens present are: {}",
                if labels.is_empty() {
                    "none".to_owned()
                } else {
                    labels.join(", ")
                }
            ))
        })?;
        let session = ctx
            .open_ro_session(slot)
            .map_err(|e| err(format!("cannot open a session ({e})")))?;
        if !config.pin.is_none() {
            let secret = config
                .pin
                .read()
                .map_err(|reason| Error::PasswordUnavailable {
                    path: config.module.clone(),
                    from: config.pin.describe(),
                    reason,
                })?;
            let pin = AuthPin::new(String::from_utf8_lossy(&secret).into_owned().into());
            match session.login(UserType::User, Some(&pin)) {
                Ok(()) | Err(cryptoki::error::Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
                Err(cryptoki::error::Error::Pkcs11(RvError::PinIncorrect, _)) => {
                    return Err(err(format!(
                        "the PIN from {} is wrong",
                        config.pin.describe()
                    )));
                }
                Err(e) => return Err(err(format!("login failed ({e})"))),
            }
        }
        let mut template = vec![Attribute::Class(ObjectClass::PRIVATE_KEY)];
        if let Some(l) = &config.key_label {
            template.push(Attribute::Label(l.as_bytes().to_vec()));
        }
        if let Some(id) = &config.key_id {
            template.push(Attribute::Id(id.clone()));
        }
        let keys = session
            .find_objects(&template)
            .map_err(|e| err(format!("cannot search the token ({e})")))?;
        let key = match keys.as_slice() {
            [one] => *one,
            [] => {
                return Err(err(
                    "no private key matches (is the PIN right, and the label or id?)".to_owned(),
                ));
            }
            _ => {
                return Err(err(format!(
                    "{} private keys match; choose one with .key_label(..) or .key_id(..)",
                    keys.len()
                )));
            }
        };
        let attrs = session
            .get_attributes(key, &[AttributeType::KeyType, AttributeType::EcParams])
            .map_err(|e| err(format!("cannot read the key's attributes ({e})")))?;
        let key_type = attrs.iter().find_map(|a| match a {
            Attribute::KeyType(t) => Some(*t),
            _ => None,
        });
        let ec_params = attrs.iter().find_map(|a| match a {
            Attribute::EcParams(p) => Some(p.clone()),
            _ => None,
        });
        // DER OIDs of prime256v1 and secp384r1.
        const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
        const P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
        let kind = match (key_type, ec_params.as_deref()) {
            (Some(KeyType::RSA), _) => Kind::Rsa,
            (Some(KeyType::EC), Some(P256)) => Kind::P256,
            (Some(KeyType::EC), Some(P384)) => Kind::P384,
            (t, _) => {
                return Err(err(format!(
                    "the key's type ({t:?}) is not supported; use an RSA key or an EC key \
                     on P-256 or P-384"
                )));
            }
        };
        Ok(Self {
            session: Mutex::new(session),
            key,
            kind,
            what,
        })
    }
}

impl KeySigner for Pkcs11Key {
    fn algorithm(&self) -> SignatureAlgorithm {
        match self.kind {
            Kind::Rsa => SignatureAlgorithm::RSA,
            Kind::P256 | Kind::P384 => SignatureAlgorithm::ECDSA,
        }
    }

    fn schemes(&self) -> Vec<SignatureScheme> {
        match self.kind {
            Kind::Rsa => vec![
                SignatureScheme::RSA_PSS_SHA256,
                SignatureScheme::RSA_PSS_SHA384,
                SignatureScheme::RSA_PSS_SHA512,
                SignatureScheme::RSA_PKCS1_SHA256,
                SignatureScheme::RSA_PKCS1_SHA384,
                SignatureScheme::RSA_PKCS1_SHA512,
            ],
            Kind::P256 => vec![SignatureScheme::ECDSA_NISTP256_SHA256],
            Kind::P384 => vec![SignatureScheme::ECDSA_NISTP384_SHA384],
        }
    }

    fn describe(&self) -> String {
        format!("the PKCS#11 key ({})", self.what)
    }

    fn sign(&self, scheme: SignatureScheme, message: &[u8]) -> Result<Vec<u8>, String> {
        let pss = |hash: MechanismType, mgf: PkcsMgfType, len: u64| PkcsPssParams {
            hash_alg: hash,
            mgf,
            s_len: Ulong::from(len),
        };
        let (mechanism, data): (Mechanism<'_>, Vec<u8>) = match scheme {
            SignatureScheme::RSA_PSS_SHA256 => (
                Mechanism::Sha256RsaPkcsPss(pss(
                    MechanismType::SHA256,
                    PkcsMgfType::MGF1_SHA256,
                    32,
                )),
                message.to_vec(),
            ),
            SignatureScheme::RSA_PSS_SHA384 => (
                Mechanism::Sha384RsaPkcsPss(pss(
                    MechanismType::SHA384,
                    PkcsMgfType::MGF1_SHA384,
                    48,
                )),
                message.to_vec(),
            ),
            SignatureScheme::RSA_PSS_SHA512 => (
                Mechanism::Sha512RsaPkcsPss(pss(
                    MechanismType::SHA512,
                    PkcsMgfType::MGF1_SHA512,
                    64,
                )),
                message.to_vec(),
            ),
            SignatureScheme::RSA_PKCS1_SHA256 => (Mechanism::Sha256RsaPkcs, message.to_vec()),
            SignatureScheme::RSA_PKCS1_SHA384 => (Mechanism::Sha384RsaPkcs, message.to_vec()),
            SignatureScheme::RSA_PKCS1_SHA512 => (Mechanism::Sha512RsaPkcs, message.to_vec()),
            SignatureScheme::ECDSA_NISTP256_SHA256 => {
                (Mechanism::Ecdsa, sha2::Sha256::digest(message).to_vec())
            }
            SignatureScheme::ECDSA_NISTP384_SHA384 => {
                (Mechanism::Ecdsa, sha2::Sha384::digest(message).to_vec())
            }
            other => return Err(format!("{other:?} is not offered by this key")),
        };
        let session = self
            .session
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let sig = session
            .sign(&mechanism, self.key, &data)
            .map_err(|e| format!("{}: C_Sign failed ({e})", self.what))?;
        drop(session);
        match self.kind {
            Kind::Rsa => Ok(sig),
            Kind::P256 | Kind::P384 => ecdsa_der(&sig)
                .ok_or_else(|| format!("{}: the token's ECDSA signature is malformed", self.what)),
        }
    }
}

/// `r || s` (as `CKM_ECDSA` returns it) as a DER `Ecdsa-Sig-Value`.
fn ecdsa_der(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) || raw.len() > 120 {
        return None;
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let int = |v: &[u8]| {
        let v = match v.iter().position(|b| *b != 0) {
            Some(i) => &v[i..],
            None => &[0u8][..],
        };
        let mut out = vec![0x02];
        let pad = v[0] & 0x80 != 0;
        out.push(u8::try_from(v.len() + usize::from(pad)).unwrap_or(0));
        if pad {
            out.push(0);
        }
        out.extend_from_slice(v);
        out
    };
    let body = [int(r), int(s)].concat();
    let mut out = vec![0x30, u8::try_from(body.len()).ok()?];
    out.extend(body);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_signatures_become_der() {
        let mut raw = vec![0u8; 64];
        raw[0] = 0x80; // r needs a leading zero
        raw[63] = 1; // s is 1
        let der = ecdsa_der(&raw).unwrap();
        assert_eq!(der[0], 0x30);
        assert_eq!(&der[2..5], &[0x02, 33, 0x00]);
        assert_eq!(&der[der.len() - 3..], &[0x02, 1, 1]);
        assert!(ecdsa_der(&[1, 2, 3]).is_none());
    }
}
