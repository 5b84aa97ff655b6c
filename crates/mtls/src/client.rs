//! The client side: a rustls [`ClientConfig`] that presents a rotating client
//! certificate and authorizes the server with a [`Policy`] on top of the usual host-name
//! check.
//!
//! ```no_run
//! use mtls::{Client, Policy};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::builder()
//!     .identity("client.crt", "client.key")
//!     .ca("ca.crt")
//!     .server_policy("spiffe:spiffe://prod.example.org/ns/api/sa/api".parse::<Policy>()?)
//!     .build()?;
//! let tls = client.connect("api.example.org:443").await?;
//! # let _ = tls; Ok(()) }
//! ```
//!
//! The config is returned without ALPN unless [`ClientBuilder::alpn`] is called, because
//! some HTTP connectors (hyper-rustls) insist on setting it themselves.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::error::{Error, Result, Role};
use crate::policy::Policy;
use crate::reload::{ReloadHandle, Reloader};
use crate::snapshot::client::{ClientLoader, ClientSnapshot, Following};
use crate::spec::{Spec, shared_setters};

/// Builds a [`Client`]. Start from [`Client::builder`].
#[must_use]
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    pub(crate) spec: Spec,
    server_name: Option<String>,
    connect_timeout: Duration,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self {
            spec: Spec::default(),
            server_name: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

/// The default of [`ClientBuilder::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl ClientBuilder {
    shared_setters!(own = "client", peer = "server");

    /// Authorize the server with a policy, after the host-name check (e.g. the server must
    /// present a given SPIFFE ID). Default: any server valid for the name.
    pub fn server_policy(mut self, policy: Policy) -> Self {
        self.spec.policy = Some(policy);
        self
    }

    /// The name to verify the server's certificate against in [`Client::connect`].
    /// Default: the host part of the address connected to.
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// How long [`Client::connect`] may take for the TCP connection and the TLS handshake
    /// together, and [`Client::handshake`] for the handshake: a server that accepts TCP and
    /// then says nothing must not hang the caller. Default [`DEFAULT_CONNECT_TIMEOUT`]
    /// (10 s). A timeout is an `io::Error` of kind `TimedOut` that wraps a
    /// [`ConnectTimeout`] (`err.get_ref()` and downcast it).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Loads and checks all the material and builds the client.
    ///
    /// # Errors
    /// [`Error::MissingCa`] without a CA; [`Error::InvalidServerName`] when the
    /// [`server_name`](Self::server_name) is neither a DNS name nor an IP address; every
    /// loading and preflight error (see [`ServerBuilder::build`](crate::ServerBuilder::build));
    /// [`Error::NoCryptoProvider`].
    pub fn build(self) -> Result<Client> {
        if self.spec.cas.is_empty() {
            return Err(Error::MissingCa { role: Role::Client });
        }
        let server_name = match &self.server_name {
            Some(n) => Some(
                ServerName::try_from(n.clone())
                    .map_err(|_| Error::InvalidServerName { name: n.clone() })?,
            ),
            None => None,
        };
        let loader = ClientLoader {
            provider: crate::provider::resolve(self.spec.provider.as_ref())?,
        };
        let reloader = Reloader::start(loader, self.spec.clone())?;
        let config = reloader
            .loader()
            .following_config(&self.spec, reloader.current())?;
        Ok(Client {
            current: reloader.current().clone(),
            config,
            handle: ReloadHandle::new(reloader),
            server_name,
            connect_timeout: self.connect_timeout,
            observer: self.spec.observer,
        })
    }
}

/// An mTLS client: the snapshot of its identity and trust in force, and the handle that
/// rotates them.
///
/// [`connect`](Self::connect) uses the snapshot in force for each connection, with
/// session resumption that never outlives a reload. For HTTP clients that keep one
/// rustls config for their whole life (reqwest takes one by value), [`config`](Self::config)
/// follows reloads without resuming sessions; see the crate docs' *Resumption* section.
#[derive(Debug, Clone)]
pub struct Client {
    current: Arc<ArcSwap<ClientSnapshot>>,
    config: Arc<ClientConfig>,
    handle: ReloadHandle,
    server_name: Option<ServerName<'static>>,
    connect_timeout: Duration,
    observer: crate::observe::Slot,
}

/// [`Client::connect`] or [`Client::handshake`] did not finish within the
/// [connect timeout](ClientBuilder::connect_timeout); the error wrapped by the
/// `io::Error` (of kind `TimedOut`) they return then, reached with
/// [`io::Error::get_ref`](std::io::Error::get_ref).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectTimeout {
    /// The timeout that passed.
    pub after: Duration,
}

impl std::fmt::Display for ConnectTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the server did not complete the TLS handshake within {:?}; check that it \
             speaks TLS on this port, or raise ClientBuilder::connect_timeout",
            self.after
        )
    }
}

impl std::error::Error for ConnectTimeout {}

impl Client {
    /// Starts a builder.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A rustls client configuration for an HTTP client that keeps one config for its
    /// whole life: its certificate resolver and server verifier read the material in force
    /// at each handshake, so clones of it (reqwest takes one by value) follow reloads. It
    /// never resumes a session, since a session made before a reload would carry the old
    /// identity, or skip the new trust.
    pub fn config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }

    /// The rustls client configuration of the material in force now, with session
    /// resumption. Take it once per connection (as [`connect`](Self::connect) does): it
    /// does not follow later reloads, and its sessions are never offered by the
    /// configuration of a later reload.
    pub fn current_config(&self) -> Arc<ClientConfig> {
        self.current.load().config.clone()
    }

    /// The reload handle.
    pub fn handle(&self) -> ReloadHandle {
        self.handle.clone()
    }

    /// The server-certificate verifier of [`config`](Self::config): WebPki validation
    /// (chain, expiry, host name, CRLs) with the CAs in force, then the server policy.
    pub fn server_verifier(&self) -> Arc<dyn rustls::client::danger::ServerCertVerifier> {
        Arc::new(Following(self.current.clone()))
    }

    /// A tokio-rustls connector over [`current_config`](Self::current_config).
    pub fn connector(&self) -> TlsConnector {
        TlsConnector::from(self.current_config())
    }

    /// Connects over TCP and runs the handshake. The server's certificate is checked
    /// against the configured server name, or else the host part of `addr`.
    ///
    /// # Errors
    /// Connection and handshake errors; a refused handshake carries the rustls error as
    /// the `io::Error`'s source.
    pub async fn connect(&self, addr: &str) -> std::io::Result<TlsStream<TcpStream>> {
        let name = match &self.server_name {
            Some(n) => n.clone(),
            None => host_of(addr)?,
        };
        self.connect_to(addr, name).await
    }

    /// Connects to `addr` and verifies the server as `name`.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn connect_to(
        &self,
        addr: impl ToSocketAddrs,
        name: ServerName<'static>,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        self.observed(self.within_timeout(async {
            let tcp = TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            self.handshake_inner(tcp, name, None).await
        }))
        .await
    }

    /// Reports the handshake `f` runs to the observer, when there is one.
    async fn observed<IO>(
        &self,
        f: impl Future<Output = std::io::Result<TlsStream<IO>>>,
    ) -> std::io::Result<TlsStream<IO>> {
        let Some(timing) = self.observer.start(crate::observe::Side::Client) else {
            return f.await;
        };
        let result = f.await;
        match &result {
            Ok(tls) => {
                let conn = tls.get_ref().1;
                timing.finish(
                    crate::observe::HandshakeResult::Accepted,
                    "none",
                    conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
                    crate::observe::version_of(conn.protocol_version()),
                );
            }
            Err(e) => {
                let (result, reason) = crate::observe::failure_of(e, None);
                timing.finish(result, reason, false, None);
            }
        }
        result
    }

    async fn within_timeout<T>(
        &self,
        f: impl Future<Output = std::io::Result<T>>,
    ) -> std::io::Result<T> {
        tokio::time::timeout(self.connect_timeout, f)
            .await
            .unwrap_or_else(|_| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    ConnectTimeout {
                        after: self.connect_timeout,
                    },
                ))
            })
    }

    /// Runs the client handshake over `io` with the material in force, and checks the
    /// server again against the material in force when the handshake ends, in case a
    /// reload happened meanwhile. Bounded by the
    /// [connect timeout](ClientBuilder::connect_timeout).
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn handshake<IO>(
        &self,
        io: IO,
        name: ServerName<'static>,
    ) -> std::io::Result<TlsStream<IO>>
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        self.handshake_with_alpn(io, name, None).await
    }

    /// [`handshake`](Self::handshake), offering `alpn` instead of the builder's ALPN
    /// protocols when it is given (HTTP connectors choose their own).
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn handshake_with_alpn<IO>(
        &self,
        io: IO,
        name: ServerName<'static>,
        alpn: Option<&[Vec<u8>]>,
    ) -> std::io::Result<TlsStream<IO>>
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        self.observed(self.within_timeout(self.handshake_inner(io, name, alpn)))
            .await
    }

    async fn handshake_inner<IO>(
        &self,
        io: IO,
        name: ServerName<'static>,
        alpn: Option<&[Vec<u8>]>,
    ) -> std::io::Result<TlsStream<IO>>
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let used = self.current.load_full();
        let tls = TlsConnector::from(used.config_with_alpn(alpn))
            .connect(name.clone(), io)
            .await?;
        self.recheck(&used, tls.get_ref().1, &name)?;
        Ok(tls)
    }

    /// A connection made with `used`'s config is checked against the snapshot in force
    /// when it is handed out, if that is another one.
    fn recheck(
        &self,
        used: &Arc<ClientSnapshot>,
        conn: &rustls::ClientConnection,
        name: &ServerName<'_>,
    ) -> std::io::Result<()> {
        let now = self.current.load();
        if Arc::ptr_eq(&now, used) {
            return Ok(());
        }
        let chain = conn.peer_certificates().unwrap_or_default();
        now.trust
            .admit(chain, name, crate::snapshot::unix_now())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}

fn host_of(addr: &str) -> std::io::Result<ServerName<'static>> {
    let host = if let Some(rest) = addr.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        addr.rsplit_once(':').map_or(addr, |(h, _)| h)
    };
    ServerName::try_from(host.to_owned()).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("`{host}` is not a valid server name"),
        )
    })
}
