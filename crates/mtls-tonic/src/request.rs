//! Typed access to the peer of a request: [`RequestExt`] for `tonic::Request<T>` (in
//! handlers and interceptors) and `http::Request<B>` (in tower layers).

use std::sync::Arc;

use mtls::{ConnectionInfo, PeerIdentity};

/// Reads the core's [`ConnectionInfo`] that a [`TlsIncoming`](crate::TlsIncoming)
/// connection puts into every request's extensions.
///
/// Implemented for `tonic::Request<T>` (handlers, and interceptors, which get a
/// `Request<()>` with the same extensions) and `http::Request<B>` (tower layers given to
/// `Server::builder().layer(..)`).
///
/// The plain accessors read the info of the default identity extractor
/// (`ConnectionInfo<Arc<PeerIdentity>>`). A server whose acceptor was built with a
/// custom [`IdentityExtractor`](mtls::IdentityExtractor) (`Server::acceptor_with`) puts
/// `ConnectionInfo<P>` there instead: read it with
/// [`connection_info_with`](Self::connection_info_with) /
/// [`principal`](Self::principal).
///
/// ```
/// use mtls_tonic::RequestExt;
///
/// fn who(request: &tonic::Request<()>) -> Result<String, tonic::Status> {
///     let id = request
///         .peer_identity()
///         .ok_or_else(|| tonic::Status::unauthenticated("client certificate required"))?;
///     Ok(id.common_name().unwrap_or_default().to_owned())
/// }
/// # assert!(who(&tonic::Request::new(())).is_err());
/// ```
pub trait RequestExt {
    /// The request's extensions.
    #[doc(hidden)]
    fn mtls_extensions(&self) -> &http::Extensions;

    /// The connection's info (default extractor), or `None` when the request did not
    /// come over a [`TlsIncoming`](crate::TlsIncoming) connection.
    fn connection_info(&self) -> Option<&ConnectionInfo> {
        self.mtls_extensions().get::<ConnectionInfo>()
    }

    /// The connection's info with a custom principal type `P`.
    fn connection_info_with<P: Send + Sync + 'static>(&self) -> Option<&ConnectionInfo<P>> {
        self.mtls_extensions().get::<ConnectionInfo<P>>()
    }

    /// The client's verified identity; `None` for an anonymous client (only under
    /// [`ClientAuth::Optional`](mtls::ClientAuth::Optional)) or a request that did not
    /// come over a [`TlsIncoming`](crate::TlsIncoming) connection
    /// ([`connection_info`](Self::connection_info) tells them apart).
    fn peer_identity(&self) -> Option<&Arc<PeerIdentity>> {
        self.connection_info()?.identity()
    }

    /// The application's principal from a custom extractor.
    fn principal<P: Send + Sync + 'static>(&self) -> Option<&P> {
        self.connection_info_with::<P>()?.principal()
    }
}

impl<T> RequestExt for tonic::Request<T> {
    fn mtls_extensions(&self) -> &http::Extensions {
        self.extensions()
    }
}

impl<B> RequestExt for http::Request<B> {
    fn mtls_extensions(&self) -> &http::Extensions {
        self.extensions()
    }
}
