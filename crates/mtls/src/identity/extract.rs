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
///
/// Its message is printed; an underlying cause is returned by
/// [`source`](std::error::Error::source) only when the message does not already contain
/// the cause's text (so error reporters never print it twice), and is always available
/// from [`cause`](Self::cause).
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

    /// An error with a message and an underlying cause. The cause is returned by
    /// [`source`](std::error::Error::source), so the message should not repeat it: write
    /// `with_source("tenant lookup failed", e)`, not `with_source(format!("…: {e}"), e)`
    /// (if it does, `source()` skips the cause and returns the cause's own source).
    pub fn with_source(
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// An error whose message is the `Display` of `error`. The error is kept as the
    /// [`cause`](Self::cause); as its text is the message, [`source`](std::error::Error::source)
    /// returns the error's own source instead.
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

    /// The underlying cause given to [`with_source`](Self::with_source) or
    /// [`from_error`](Self::from_error), whether or not `source()` returns it.
    pub fn cause(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.source.as_deref()
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
        let cause = self.source.as_deref()?;
        if self.message.contains(&cause.to_string()) {
            // Printed already: return only what the message does not print.
            cause.source()
        } else {
            Some(cause)
        }
    }
}
