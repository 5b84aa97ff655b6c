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
//! handshake.
//!
//! # Endpoints: use [`endpoint`]
//!
//! Make the `Endpoint` with [`endpoint("https://host:port")`](endpoint). tonic looks at
//! the scheme of the endpoint's URI *after* a custom connector has connected: when any
//! of tonic's own TLS features is compiled in (`tls-ring`, `tls-aws-lc`, … — Cargo
//! turns them on for the whole build as soon as one crate in the dependency graph asks),
//! an `https://` endpoint either fails ("Connecting to HTTPS without TLS enabled") or
//! gets tonic's TLS run inside ours (`Endpoint::new`, and the generated clients'
//! `connect`, add a TLS config by default). So the endpoint's URI must say `http`, and
//! the `https` goes in its *origin*, which is what tonic writes in each request's
//! `:scheme` and `:authority`. [`endpoint`] does both; the connector always speaks TLS
//! whatever the URI's scheme, and refuses an `https://` endpoint URI with
//! [`ConnectError::HttpsEndpoint`] rather than working only in some builds.
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
//! let channel = mtls_tonic::endpoint("https://api.example.org:50051")?
//!     .connect_with_connector(ChannelConnector::new(&client))
//!     .await?;
//! # let _ = channel; Ok(()) }
//! ```

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use mtls::rustls::CertificateError;
use mtls::rustls::pki_types::ServerName;
use mtls_hyper::{Connector, TlsConnection};
use tonic::transport::Endpoint;

/// The tonic `Endpoint` for an mTLS server at `url` (`https://host[:port]`, port 443 when
/// absent), to connect with a [`ChannelConnector`]: its URI is `http://host:port` and its
/// origin `https://host:port` (see the [module docs](self#endpoints-use-endpoint) for why).
/// Set timeouts and the rest on the returned `Endpoint` as usual.
///
/// ```
/// let endpoint = mtls_tonic::endpoint("https://api.example.org:50051")?;
/// assert_eq!(endpoint.uri(), "http://api.example.org:50051/");
/// assert!(mtls_tonic::endpoint("http://api.example.org").is_err());
/// # Ok::<(), mtls_tonic::InvalidEndpoint>(())
/// ```
pub fn endpoint(url: impl AsRef<str>) -> Result<Endpoint, InvalidEndpoint> {
    let url = url.as_ref();
    let invalid = |reason: &'static str| InvalidEndpoint {
        url: url.to_owned(),
        reason,
    };
    let uri: Uri = url.parse().map_err(|_| invalid("it is not a valid URI"))?;
    if !uri
        .scheme_str()
        .is_some_and(|s| s.eq_ignore_ascii_case("https"))
    {
        return Err(invalid(
            "its scheme is not `https` (the connector only speaks TLS)",
        ));
    }
    let Some(authority) = uri.authority() else {
        return Err(invalid("it has no host"));
    };
    if authority.as_str().contains('@') {
        return Err(invalid("user information (`user@`) is not allowed in it"));
    }
    if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return Err(invalid(
            "it has a path or query, which gRPC does not use (give `https://host:port`)",
        ));
    }
    let authority = match authority.port_u16() {
        Some(_) => authority.as_str().to_owned(),
        None => format!("{}:443", authority.as_str()),
    };
    let parse = |scheme: &str| -> Result<Uri, InvalidEndpoint> {
        format!("{scheme}://{authority}/")
            .parse()
            .map_err(|_| invalid("it is not a valid URI"))
    };
    let origin = parse("https")?;
    let transport = parse("http")?;
    Ok(Endpoint::from(transport).origin(origin))
}

/// A URL [`endpoint`] cannot make an endpoint of: it says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidEndpoint {
    url: String,
    reason: &'static str,
}

impl fmt::Display for InvalidEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` cannot be an mTLS gRPC endpoint: {}",
            self.url, self.reason
        )
    }
}

impl StdError for InvalidEndpoint {}

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
        self.inner.poll_ready(cx).map_err(ConnectError::Connect)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        // tonic hands over the endpoint's URI. `http://` is what `endpoint()` makes (the
        // connection is TLS all the same); `https://` is refused, see the module docs.
        let tls_uri = if uri
            .scheme_str()
            .is_some_and(|s| s.eq_ignore_ascii_case("http"))
        {
            let mut parts = uri.clone().into_parts();
            parts.scheme = Some(http::uri::Scheme::HTTPS);
            Uri::from_parts(parts).ok()
        } else {
            None
        };
        let Some(tls_uri) = tls_uri else {
            let err = if uri
                .scheme_str()
                .is_some_and(|s| s.eq_ignore_ascii_case("https"))
            {
                ConnectError::HttpsEndpoint {
                    uri: uri.to_string(),
                }
            } else {
                ConnectError::Connect(mtls_hyper::ConnectError::NotHttps {
                    uri: uri.to_string(),
                })
            };
            return Box::pin(std::future::ready(Err(err)));
        };
        let connect = self.inner.call(tls_uri);
        Box::pin(async move { connect.await.map_err(ConnectError::Connect) })
    }
}

/// Why [`ChannelConnector`] could not connect; tonic's transport error has it as its
/// [`source`](std::error::Error::source).
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError {
    /// The endpoint's URI is `https://…`: make the endpoint with [`endpoint`] instead
    /// (see the [module docs](self#endpoints-use-endpoint)).
    HttpsEndpoint {
        /// The URI.
        uri: String,
    },
    /// Connecting failed: TCP, the TLS handshake, or the server's certificate.
    Connect(mtls_hyper::ConnectError),
}

impl ConnectError {
    /// The reason the server's certificate was refused, if it was.
    pub fn certificate_error(&self) -> Option<&CertificateError> {
        match self {
            Self::Connect(e) => e.certificate_error(),
            Self::HttpsEndpoint { .. } => None,
        }
    }

    /// Whether the server's certificate was valid but refused by the `mtls::Client`'s
    /// server policy. The `mtls::verify` log names the rule.
    pub fn is_policy_denied(&self) -> bool {
        matches!(self, Self::Connect(e) if e.is_policy_denied())
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HttpsEndpoint { uri } => write!(
                f,
                "the endpoint URI `{uri}` is https: tonic would run its own TLS on top of the \
                 mTLS connection, or refuse it; make the endpoint with \
                 `mtls_tonic::endpoint(\"{uri}\")` (an http URI with an https origin; the \
                 connection is TLS all the same)"
            ),
            Self::Connect(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl StdError for ConnectError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::HttpsEndpoint { .. } => None,
            Self::Connect(e) => e.source(),
        }
    }
}
