//! The client side: a connector for hyper-util's legacy [`Client`] that speaks mTLS with
//! an [`mtls::Client`].
//!
//! [`Connector`] connects over TCP, verifies the server as the host of the request URI
//! (or a [fixed name](Connector::server_name)) with the `mtls::Client`'s verifier — which
//! also runs its [server policy](mtls::ClientBuilder::server_policy) — and presents the
//! client certificate. Each connection runs [`mtls::Client::handshake_with_alpn`]: the
//! material in force when it starts (so a reloaded client certificate is used by the next
//! new connection without rebuilding anything), session resumption that never outlives a
//! reload, and a second check of the server when a reload happened during the handshake.
//!
//! It offers ALPN [`mtls::HTTP_ALPN`] (`h2`, `http/1.1`; replacing any ALPN set on the `mtls::Client`), and
//! tells hyper when `h2` was negotiated, so one `Client` speaks HTTP/2 or HTTP/1.1 as the
//! server prefers. The server's identity is attached to every response as a
//! [`ServerIdentity`] extension.
//!
//! Only `https` URIs are accepted: a plain `http` URI fails with
//! [`ConnectError::NotHttps`] instead of silently skipping TLS.
//!
//! [`Client`]: hyper_util::client::legacy::Client
//!
//! ```no_run
//! use http_body_util::{BodyExt, Empty};
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use mtls_hyper::{Connector, ServerIdentity};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let mtls = mtls::Client::builder()
//!     .identity("client.crt", "client.key")
//!     .ca("ca.crt")
//!     .server_policy("spiffe:prod.example.org".parse()?)
//!     .build()?;
//! let client = Client::builder(TokioExecutor::new())
//!     .build::<_, Empty<bytes::Bytes>>(Connector::new(&mtls));
//!
//! let response = client.get("https://api.example.org/".parse()?).await?;
//! let server = response.extensions().get::<ServerIdentity>();
//! println!("{:?} answered", server.map(|s| s.subject()));
//! let body = response.into_body().collect().await?.to_bytes();
//! # let _ = body; Ok(()) }
//! ```

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use mtls::PeerIdentity;
use mtls::identity::IdentityError;
use mtls::rustls::pki_types::ServerName;
use mtls::rustls::{self, CertificateError};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

type BoxError = Box<dyn StdError + Send + Sync>;

/// The default TLS handshake timeout of a [`Connector`].
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

// === impl Connector ===

/// An mTLS connector for hyper-util's legacy client; see the [module docs](self).
#[derive(Clone)]
pub struct Connector {
    http: HttpConnector,
    client: mtls::Client,
    alpn: Arc<[Vec<u8>]>,
    server_name: Option<ServerName<'static>>,
    handshake_timeout: Duration,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("alpn", &self.alpn)
            .field("server_name", &self.server_name)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// A connector that uses `client`'s identity, trusted CAs and server policy, and
    /// offers ALPN [`mtls::HTTP_ALPN`] (`h2`, `http/1.1`).
    pub fn new(client: &mtls::Client) -> Self {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        Self {
            http,
            client: client.clone(),
            alpn: Arc::new([]),
            server_name: None,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
        .with_alpn(&mtls::HTTP_ALPN.map(str::as_bytes))
    }

    /// Offer only `http/1.1` in ALPN, so every connection uses HTTP/1.1.
    #[must_use]
    pub fn http1_only(self) -> Self {
        self.with_alpn(&[b"http/1.1"])
    }

    /// Offer only `h2` in ALPN. A server that does not select it still gets HTTP/1.1
    /// unless the hyper client is built with `http2_only(true)`.
    #[must_use]
    pub fn http2_only(self) -> Self {
        self.with_alpn(&[b"h2"])
    }

    /// Verify every server as `name` instead of the host of the request URI (e.g. when
    /// connecting by IP address to a server whose certificate names only a DNS name).
    #[must_use]
    pub fn server_name(mut self, name: ServerName<'static>) -> Self {
        self.server_name = Some(name);
        self
    }

    /// The TLS handshake timeout (after the TCP connection is up). Default
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`].
    #[must_use]
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Use `http` for the TCP connections (for its connect timeout, keep-alive, local
    /// address or resolver settings). Its `enforce_http` setting is turned off, since the
    /// URIs are `https`.
    #[must_use]
    pub fn with_http_connector(mut self, mut http: HttpConnector) -> Self {
        http.enforce_http(false);
        self.http = http;
        self
    }

    fn with_alpn(mut self, protocols: &[&[u8]]) -> Self {
        self.alpn = protocols.iter().map(|p| p.to_vec()).collect();
        self.http.enforce_http(false);
        self
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = TlsConnection;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<TlsConnection, ConnectError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        tower_service::Service::<Uri>::poll_ready(&mut self.http, cx).map_err(|e| {
            ConnectError::Tcp {
                authority: String::new(),
                source: Box::new(e),
            }
        })
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let mut http = self.http.clone();
        let client = self.client.clone();
        let alpn = self.alpn.clone();
        let fixed_name = self.server_name.clone();
        let timeout = self.handshake_timeout;
        Box::pin(async move {
            if !uri
                .scheme_str()
                .is_some_and(|s| s.eq_ignore_ascii_case("https"))
            {
                return Err(ConnectError::NotHttps {
                    uri: uri.to_string(),
                });
            }
            let Some(host) = uri.host() else {
                return Err(ConnectError::MissingHost {
                    uri: uri.to_string(),
                });
            };
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let name = match fixed_name {
                Some(name) => name,
                None => ServerName::try_from(host.clone())
                    .map_err(|_| ConnectError::InvalidServerName { host: host.clone() })?,
            };
            let server = name.to_str().into_owned();
            let authority = uri
                .authority()
                .map_or_else(|| host.clone(), ToString::to_string);
            let tcp = tower_service::Service::<Uri>::call(&mut http, uri)
                .await
                .map_err(|e| ConnectError::Tcp {
                    authority,
                    source: Box::new(e),
                })?
                .into_inner();
            let handshake = client.handshake_with_alpn(tcp, name, Some(&alpn));
            let stream = match tokio::time::timeout(timeout, handshake).await {
                Err(_) => return Err(ConnectError::HandshakeTimeout { server, timeout }),
                Ok(Err(e)) => return Err(ConnectError::from_handshake(server, e)),
                Ok(Ok(stream)) => stream,
            };
            let chain = stream.get_ref().1.peer_certificates().unwrap_or_default();
            let identity = PeerIdentity::from_chain(chain)
                .map_err(|source| ConnectError::Identity { server, source })?;
            Ok(TlsConnection {
                inner: TokioIo::new(stream),
                server: ServerIdentity(Arc::new(identity)),
            })
        })
    }
}

// === impl ServerIdentity ===

/// The identity of the server a response came from; a response extension added by
/// [`Connector`]. Dereferences to [`PeerIdentity`].
#[derive(Debug, Clone)]
pub struct ServerIdentity(Arc<PeerIdentity>);

impl ServerIdentity {
    /// The server's identity.
    pub fn identity(&self) -> &Arc<PeerIdentity> {
        &self.0
    }

    /// Unwraps the identity.
    pub fn into_inner(self) -> Arc<PeerIdentity> {
        self.0
    }
}

impl Deref for ServerIdentity {
    type Target = PeerIdentity;

    fn deref(&self) -> &PeerIdentity {
        &self.0
    }
}

// === impl TlsConnection ===

/// A connection made by [`Connector`]: TLS over TCP, with the server's identity.
#[derive(Debug)]
pub struct TlsConnection {
    inner: TokioIo<TlsStream<TcpStream>>,
    server: ServerIdentity,
}

impl TlsConnection {
    /// The verified server's identity.
    pub fn server_identity(&self) -> &ServerIdentity {
        &self.server
    }

    /// The TLS stream.
    pub fn get_ref(&self) -> &TlsStream<TcpStream> {
        self.inner.inner()
    }
}

impl Connection for TlsConnection {
    fn connected(&self) -> Connected {
        let (tcp, tls) = self.inner.inner().get_ref();
        let connected = tcp.connected().extra(self.server.clone());
        if tls.alpn_protocol() == Some(b"h2") {
            connected.negotiated_h2()
        } else {
            connected
        }
    }
}

impl hyper::rt::Read for TlsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for TlsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
}

// === impl ConnectError ===

/// Why [`Connector`] could not connect. hyper-util's client error has it as its
/// [`source`](std::error::Error::source).
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URI's scheme is not `https`.
    NotHttps {
        /// The URI.
        uri: String,
    },
    /// The URI has no host.
    MissingHost {
        /// The URI.
        uri: String,
    },
    /// The URI's host is neither a DNS name nor an IP address.
    InvalidServerName {
        /// The host.
        host: String,
    },
    /// The TCP connection failed.
    Tcp {
        /// `host:port` connected to.
        authority: String,
        /// The error.
        source: BoxError,
    },
    /// The TLS handshake did not finish in time.
    HandshakeTimeout {
        /// The server name.
        server: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The server's certificate was refused: untrusted, expired, revoked, not valid for
    /// the server name, or denied by the client's server policy
    /// ([`is_policy_denied`](Self::is_policy_denied)).
    CertificateRejected {
        /// The server name.
        server: String,
        /// rustls' error, `InvalidCertificate(..)`.
        source: rustls::Error,
    },
    /// The TLS handshake failed for another reason (including the server refusing the
    /// client's certificate, which shows as a received alert or a closed connection).
    Handshake {
        /// The server name.
        server: String,
        /// The error; its inner error is usually a [`rustls::Error`].
        source: io::Error,
    },
    /// The server's certificate could not be read as an identity.
    Identity {
        /// The server name.
        server: String,
        /// The error.
        source: IdentityError,
    },
}

impl ConnectError {
    fn from_handshake(server: String, e: io::Error) -> Self {
        let rustls_error = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        match rustls_error {
            Some(err @ rustls::Error::InvalidCertificate(_)) => Self::CertificateRejected {
                server,
                source: err.clone(),
            },
            _ => Self::Handshake { server, source: e },
        }
    }

    /// The reason the server's certificate was refused, if it was.
    pub fn certificate_error(&self) -> Option<&CertificateError> {
        match self {
            Self::CertificateRejected {
                source: rustls::Error::InvalidCertificate(e),
                ..
            } => Some(e),
            _ => None,
        }
    }

    /// Whether the server's certificate was valid but refused by the `mtls::Client`'s
    /// server policy. The `mtls::verify` log names the rule.
    pub fn is_policy_denied(&self) -> bool {
        matches!(
            self.certificate_error(),
            Some(CertificateError::ApplicationVerificationFailure)
        )
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotHttps { uri } => write!(
                f,
                "`{uri}` is not an https URI; the mTLS connector only connects with TLS"
            ),
            Self::MissingHost { uri } => write!(f, "`{uri}` has no host to connect to"),
            Self::InvalidServerName { host } => write!(
                f,
                "`{host}` is not a valid server name (DNS name or IP address)"
            ),
            Self::Tcp { authority, .. } => write!(f, "could not connect to {authority}"),
            Self::HandshakeTimeout { server, timeout } => write!(
                f,
                "TLS handshake with `{server}` did not finish within {timeout:?}"
            ),
            Self::CertificateRejected { server, .. } if self.is_policy_denied() => write!(
                f,
                "the certificate of server `{server}` was refused by the client's server \
                 policy (the `mtls::verify` log names the rule)"
            ),
            Self::CertificateRejected { server, .. } => {
                write!(f, "the certificate of server `{server}` was refused")
            }
            Self::Handshake { server, .. } => write!(f, "TLS handshake with `{server}` failed"),
            Self::Identity { server, .. } => write!(
                f,
                "the certificate of server `{server}` could not be read as an identity"
            ),
        }
    }
}

impl StdError for ConnectError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::NotHttps { .. }
            | Self::MissingHost { .. }
            | Self::InvalidServerName { .. }
            | Self::HandshakeTimeout { .. } => None,
            Self::Tcp { source, .. } => Some(source.as_ref()),
            Self::CertificateRejected { source, .. } => Some(source),
            Self::Handshake { source, .. } => Some(source),
            Self::Identity { source, .. } => Some(source),
        }
    }
}
