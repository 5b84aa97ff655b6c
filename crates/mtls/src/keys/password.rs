//! Where the password of an encrypted key or a PKCS#12 file comes from.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use zeroize::Zeroizing;

/// A password kept in memory only while a file is decrypted, then wiped.
pub(crate) type Secret = Zeroizing<Vec<u8>>;

/// The callback type of [`Password::from_fn`].
type Callback = dyn Fn() -> Result<Zeroizing<String>, String> + Send + Sync;

/// Where the password of an encrypted private key or a PKCS#12 file comes from.
///
/// The password is read when the file is loaded, at build and at every reload (so a
/// rotated password file is picked up with the key it belongs to), used, and wiped from
/// memory (`zeroize`). It is never logged and never part of an error message: errors
/// and `Debug` name only the *source* ("file /run/secrets/key-pass", "environment
/// variable KEY_PASS").
///
/// ```
/// use mtls::Password;
/// let from_file = Password::from_file("/run/secrets/key-pass");
/// let from_env = Password::from_env("KEY_PASS");
/// let from_vault = Password::from_fn(|| Ok(mtls::Zeroizing::new("s3cret".to_owned())));
/// let none = Password::none(); // unencrypted, or a .p12 made with `-passout pass:`
/// assert_eq!(format!("{from_env:?}"), "Password(environment variable KEY_PASS)");
/// # let _ = (from_file, from_vault, none);
/// ```
#[derive(Clone)]
pub struct Password(Source);

#[derive(Clone)]
enum Source {
    None,
    File(PathBuf),
    Env(String),
    Callback(Arc<Callback>),
}

impl Password {
    /// No password: for an unencrypted key or `.p12`, or one made with an empty
    /// password (`openssl pkcs12 -export -passout pass:`, `openssl pkcs8 -topk8 -passout
    /// pass:`). Another encrypted key then fails with
    /// [`Error::EncryptedKey`](crate::Error::EncryptedKey).
    pub fn none() -> Self {
        Self(Source::None)
    }

    /// The first line of a file (without its line ending), as `openssl … -passin
    /// file:PATH` reads it. Keep the file readable only by the service (`chmod 600`).
    pub fn from_file(path: impl Into<PathBuf>) -> Self {
        Self(Source::File(path.into()))
    }

    /// The value of an environment variable.
    pub fn from_env(variable: impl Into<String>) -> Self {
        Self(Source::Env(variable.into()))
    }

    /// A callback, called at every load (a secret manager, a prompt). An `Err` carries
    /// the reason shown in [`Error::PasswordUnavailable`](crate::Error::PasswordUnavailable);
    /// it must not contain the password.
    pub fn from_fn(
        callback: impl Fn() -> Result<Zeroizing<String>, String> + Send + Sync + 'static,
    ) -> Self {
        Self(Source::Callback(Arc::new(callback)))
    }

    pub(crate) fn is_none(&self) -> bool {
        matches!(self.0, Source::None)
    }

    /// What the password comes from, for messages (never the password).
    pub(crate) fn describe(&self) -> String {
        match &self.0 {
            Source::None => "no password (empty)".to_owned(),
            Source::File(p) => format!("file {}", p.display()),
            Source::Env(v) => format!("environment variable {v}"),
            Source::Callback(_) => "the password callback".to_owned(),
        }
    }

    /// The files a reload should follow besides the key itself.
    pub(crate) fn path(&self) -> Option<&std::path::Path> {
        match &self.0 {
            Source::File(p) => Some(p),
            _ => None,
        }
    }

    /// Reads the password. `Err` is the reason, for [`crate::Error::PasswordUnavailable`].
    pub(crate) fn read(&self) -> Result<Secret, String> {
        match &self.0 {
            Source::None => Ok(Zeroizing::new(Vec::new())),
            Source::File(path) => {
                let data = Zeroizing::new(std::fs::read(path).map_err(|e| {
                    format!("cannot read the password file {}: {e}", path.display())
                })?);
                let line = data.split(|b| *b == b'\n').next().unwrap_or_default();
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                Ok(Zeroizing::new(line.to_vec()))
            }
            Source::Env(var) => match std::env::var_os(var) {
                Some(v) => Ok(Zeroizing::new(v.into_encoded_bytes())),
                None => Err(format!("the environment variable {var} is not set")),
            },
            Source::Callback(f) => {
                let s = f()?;
                Ok(Zeroizing::new(s.as_bytes().to_vec()))
            }
        }
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Password({})", self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_first_line_only_and_debug_hides_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "hunter2\r\nsecond line\n").unwrap();
        let pw = Password::from_file(&p);
        assert_eq!(pw.read().unwrap().as_slice(), b"hunter2");
        assert!(!format!("{pw:?}").contains("hunter2"));
        let missing = Password::from_file(dir.path().join("nope"));
        assert!(missing.read().unwrap_err().contains("nope"));
        let cb = Password::from_fn(|| Err("vault is sealed".to_owned()));
        assert_eq!(cb.read().unwrap_err(), "vault is sealed");
        assert!(Password::none().read().unwrap().is_empty());
    }
}
