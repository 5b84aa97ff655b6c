//! Choosing the rustls [`CryptoProvider`].
//!
//! Every configuration this crate builds names its provider explicitly, so nothing
//! depends on a process-wide default and nothing panics when both the `aws-lc-rs` and
//! `ring` features end up compiled in. The provider used is, in order:
//!
//! 1. the one given to the builder (`crypto_provider(..)`), used as it is;
//! 2. the process default, if the application installed one with
//!    [`CryptoProvider::install_default`], used as it is;
//! 3. the provider of this crate's feature: `aws-lc-rs` (the default) or else `ring`.
//!
//! In case 3 the key-exchange groups are named explicitly: X25519, then secp256r1 and
//! secp384r1. rustls' own default list depends on how rustls was pulled into the
//! dependency graph (with aws-lc-rs and `prefer-post-quantum` it starts with the hybrid
//! X25519MLKEM768, which costs about 11 % more per handshake and which OpenSSL 3.0 peers
//! do not speak); fixing the list keeps the handshake cost and the wire behaviour the
//! same whatever else is in the tree. To get post-quantum key exchange, pass a provider
//! whose `kx_groups` put `X25519MLKEM768` first.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

use crate::error::{Error, Result};

/// Returns the provider to use, following the order in the module docs.
///
/// # Errors
/// [`Error::NoCryptoProvider`] when neither a provider was given or installed nor a
/// provider feature is enabled.
pub fn resolve(explicit: Option<&Arc<CryptoProvider>>) -> Result<Arc<CryptoProvider>> {
    if let Some(p) = explicit {
        return Ok(p.clone());
    }
    if let Some(p) = CryptoProvider::get_default() {
        return Ok(p.clone());
    }
    feature_default()
        .map(Arc::new)
        .ok_or(Error::NoCryptoProvider)
}

/// The provider of this crate's enabled feature with the explicit key-exchange groups
/// described in the module docs, or `None` when no provider feature is enabled.
pub fn feature_default() -> Option<CryptoProvider> {
    #[cfg(feature = "aws-lc-rs")]
    {
        use rustls::crypto::aws_lc_rs::{self, kx_group};
        let mut p = aws_lc_rs::default_provider();
        p.kx_groups = vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1];
        Some(p)
    }
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    {
        use rustls::crypto::ring::{self, kx_group};
        let mut p = ring::default_provider();
        p.kx_groups = vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1];
        Some(p)
    }
    #[cfg(not(any(feature = "ring", feature = "aws-lc-rs")))]
    {
        None
    }
}
