//! The client side: a connector for tonic's
//! [`Endpoint::connect_with_connector`](tonic::transport::Endpoint::connect_with_connector)
//! (and `connect_with_connector_lazy`) that speaks mTLS with an [`mtls::Client`].
//!
//! [`ChannelConnector`] is mtls-hyper's [`Connector`] offering
//! only `h2` in ALPN, as gRPC needs. For every new connection of the `Channel` it connects
//! over TCP and runs [`mtls::Client::handshake_with_alpn`]: it presents the client
//! certificate in force *at that moment*, verifies the server as the host of the
//! endpoint's URI (or a [fixed name](ChannelConnector::server_name)) and then with the
//! client's [server policy](mtls::ClientBuilder::server_policy), resumes sessions only
//! within one reload, and checks the server again when a reload happened during the
//! handshake. Only `https` URIs are accepted: `http://` fails with
//! [`ConnectError::NotHttps`] rather than silently
//! skipping TLS.
//!
//! # Rotation and long-lived channels
//!
//! A reload ([`mtls::ReloadHandle::reload`], or the file watcher) reaches the next *new*
//! connection without rebuilding the `Channel`; an HTTP/2 connection that stays open keeps
//! the certificate it was opened with. A `Channel` opens a new connection when the old one
//! closes, so to make rotation (and the server's revocation) take effect within a bound:
//!
//! - on the server, set `max_connection_age` (tonic's `Server::builder()`, or the
//!   equivalent `GRPC_ARG_MAX_CONNECTION_AGE_MS` elsewhere): each connection is closed
//!   gracefully after that age and the channel reconnects with the new certificate;
//! - on the client, tonic has no maximum connection age of its own: build a new `Channel`
//!   from a clone of the same connector (cheap; every clone follows the same reloads), for
//!   instance when [`mtls::ReloadHandle::subscribe`]-style events report a reload, or on a
//!   timer.
//!
//! # Load-balanced channels
//!
//! `Channel::balance_list` and `Channel::balance_channel` build their own connector from
//! each endpoint and take no custom one, so they cannot use this connector. Balance over
//! several `Channel`s made with it instead (e.g. with `tower::balance`).
//!
//! ```no_run
//! use mtls_tonic::ChannelConnector;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let client = mtls::Client::builder()
//!     .identity("client.crt", "client.key")
//!     .ca("ca.crt")
//!     .build()?;
//! let channel = tonic::transport::Endpoint::from_static("https://api.example.org:50051")
//!     .connect_with_connector(ChannelConnector::new(&client))
//!     .await?;
//! # let _ = channel; Ok(()) }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use mtls::rustls::pki_types::ServerName;
use mtls_hyper::{ConnectError, Connector, TlsConnection};

/// An mTLS connector for tonic channels; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct ChannelConnector {
    inner: Connector,
}

impl ChannelConnector {
    /// A connector that uses `client`'s identity, trusted CAs and server policy, and
    /// offers ALPN `h2`.
    pub fn new(client: &mtls::Client) -> Self {
        Self {
            inner: Connector::new(client).http2_only(),
        }
    }

    /// Verify every server as `name` instead of the host of the endpoint URI (e.g. when
    /// connecting by IP address to a server whose certificate names only a DNS name).
    #[must_use]
    pub fn server_name(self, name: ServerName<'static>) -> Self {
        Self {
            inner: self.inner.server_name(name),
        }
    }

    /// The TLS handshake timeout (after the TCP connection is up). Default
    /// [`mtls_hyper::connector::DEFAULT_HANDSHAKE_TIMEOUT`]. The endpoint's
    /// `connect_timeout`, when set, bounds TCP and TLS together.
    #[must_use]
    pub fn handshake_timeout(self, timeout: Duration) -> Self {
        Self {
            inner: self.inner.handshake_timeout(timeout),
        }
    }
}

impl tower_service::Service<Uri> for ChannelConnector {
    type Response = TlsConnection;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<TlsConnection, ConnectError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        self.inner.call(uri)
    }
}
