//! [`IdentityExtractor`]: mapping a verified peer to the application's principal.

use std::fmt;
use std::sync::Arc;

use super::PeerIdentity;

/// Maps a verified peer to the application's own principal type.
///
/// Called once per connection, after the handshake, with the parsed identity (which also
/// holds the DER chain, for extractors that need to parse something else). Returning an
/// error rejects the connection. Closures `Fn(&Arc<PeerIdentity>) -> Result<P, ExtractError>`
/// implement this trait, and [`DefaultExtractor`] returns the identity itself.
///
/// ```
/// use std::sync::Arc;
/// use mtls::identity::{ExtractError, IdentityExtractor, PeerIdentity};
///
/// #[derive(Clone)]
/// struct Tenant(String);
///
/// struct TenantFromOu;
/// impl IdentityExtractor for TenantFromOu {
///     type Principal = Tenant;
///     fn extract(&self, peer: &Arc<PeerIdentity>) -> Result<Tenant, ExtractError> {
///         peer.org_units()
///             .first()
///             .map(|ou| Tenant(ou.clone()))
///             .ok_or_else(|| ExtractError::new("client certificate has no OU"))
///     }
/// }
/// ```
pub trait IdentityExtractor: Send + Sync + 'static {
    /// The application's principal type.
    type Principal: Clone + Send + Sync + 'static;

    /// Maps the peer to a principal.
    ///
    /// # Errors
    ///
    /// An [`ExtractError`] saying why this peer has no principal; the connection is rejected.
    fn extract(&self, peer: &Arc<PeerIdentity>) -> Result<Self::Principal, ExtractError>;
}

impl<F, P> IdentityExtractor for F
where
    F: Fn(&Arc<PeerIdentity>) -> Result<P, ExtractError> + Send + Sync + 'static,
    P: Clone + Send + Sync + 'static,
{
    type Principal = P;

    fn extract(&self, peer: &Arc<PeerIdentity>) -> Result<P, ExtractError> {
        self(peer)
    }
}

/// The extractor whose principal is the [`PeerIdentity`] itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultExtractor;

impl IdentityExtractor for DefaultExtractor {
    type Principal = Arc<PeerIdentity>;

    fn extract(&self, peer: &Arc<PeerIdentity>) -> Result<Arc<PeerIdentity>, ExtractError> {
        Ok(Arc::clone(peer))
    }
}

/// An [`IdentityExtractor`] refused a peer.
pub struct ExtractError {
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl ExtractError {
    /// An error with a message saying why the peer has no principal.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// An error with a message and an underlying cause (returned by
    /// [`source`](std::error::Error::source), not repeated in the message).
    pub fn with_source(
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// An error whose message is the `Display` of `error` (also kept as the source).
    pub fn from_error(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            message: error.to_string(),
            source: Some(Box::new(error)),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Debug for ExtractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExtractError")
            .field("message", &self.message)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for ExtractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ExtractError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.source {
            Some(e) if e.to_string() != self.message => Some(&**e as _),
            _ => None,
        }
    }
}
