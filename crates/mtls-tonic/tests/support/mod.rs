//! Shared helpers: a PKI, a hand-written tonic service for `mtls.examples.v1.Identity`
//! (prost-derive messages, tonic's generic unary handling and `tonic_prost::ProstCodec`),
//! served over `mtls_tonic::TlsIncoming` on 127.0.0.1:0, and a client for it.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::PathAndQuery;
use mtls::{ClientAuth, Policy, TlsListener};
use mtls_testing::TestPki;
use mtls_tonic::{
    ChannelConnector, MethodPolicyLayer, RequestExt, TcpConnectInfoLayer, TlsIncoming,
};
use tonic::body::Body;
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::transport::{Channel, Endpoint};

use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

pub const TIMEOUT: Duration = Duration::from_secs(10);

pub const WHOAMI: &str = "/mtls.examples.v1.Identity/WhoAmI";
pub const ADMIN: &str = "/mtls.examples.v1.Identity/Admin";

// === messages (proto/whoami.proto, written by hand) ===

#[derive(Clone, PartialEq, prost::Message)]
pub struct WhoAmIRequest {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct WhoAmIReply {
    #[prost(string, tag = "1")]
    pub subject: String,
    #[prost(string, tag = "2")]
    pub common_name: String,
    #[prost(string, tag = "3")]
    pub spiffe_id: String,
    #[prost(string, tag = "4")]
    pub serial: String,
    #[prost(string, tag = "5")]
    pub fingerprint_sha256: String,
    /// Not in the public proto: what `Request::remote_addr()` said, for the tests.
    #[prost(string, tag = "100")]
    pub remote_addr: String,
    /// Not in the public proto: the request's `:scheme://:authority`, for the tests.
    #[prost(string, tag = "101")]
    pub origin: String,
}

/// The request's `:scheme` and `:authority`, put in the extensions by [`IdentityService`].
#[derive(Debug, Clone)]
struct Origin(String);

// === the service ===

/// Answers both methods with the caller's identity.
#[derive(Debug, Clone, Copy)]
struct WhoAmI;

impl UnaryService<WhoAmIRequest> for WhoAmI {
    type Response = WhoAmIReply;
    type Future = std::future::Ready<Result<Response<WhoAmIReply>, Status>>;

    fn call(&mut self, request: Request<WhoAmIRequest>) -> Self::Future {
        let reply = request
            .peer_identity()
            .map(|id| WhoAmIReply {
                subject: id.subject().to_owned(),
                common_name: id.common_name().unwrap_or_default().to_owned(),
                spiffe_id: id.spiffe_id().map(ToString::to_string).unwrap_or_default(),
                serial: id.serial().to_owned(),
                fingerprint_sha256: id.fingerprint_sha256().to_owned(),
                remote_addr: request
                    .remote_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
                origin: request
                    .extensions()
                    .get::<Origin>()
                    .map(|o| o.0.clone())
                    .unwrap_or_default(),
            })
            .ok_or_else(|| Status::unauthenticated("no client certificate"));
        std::future::ready(reply.map(Response::new))
    }
}

/// `mtls.examples.v1.Identity` as a tower service, as tonic-build would generate it.
#[derive(Debug, Clone, Copy)]
pub struct IdentityService;

impl NamedService for IdentityService {
    const NAME: &'static str = "mtls.examples.v1.Identity";
}

impl tower_service::Service<http::Request<Body>> for IdentityService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: http::Request<Body>) -> Self::Future {
        let origin = format!(
            "{}://{}",
            req.uri().scheme_str().unwrap_or_default(),
            req.uri()
                .authority()
                .map(|a| a.as_str())
                .unwrap_or_default()
        );
        req.extensions_mut().insert(Origin(origin));
        match req.uri().path() {
            WHOAMI | ADMIN => Box::pin(async move {
                let codec: ProstCodec<WhoAmIReply, WhoAmIRequest> = ProstCodec::default();
                Ok(Grpc::new(codec).unary(WhoAmI, req).await)
            }),
            _ => Box::pin(async { Ok(Status::unimplemented("no such method").into_http()) }),
        }
    }
}

// === fixture ===

/// A PKI with a `localhost` server.
pub struct Fixture {
    pub pki: TestPki,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub ca: PathBuf,
}

impl Fixture {
    pub fn new() -> Self {
        let pki = TestPki::new();
        let (_, files) = pki.server("localhost");
        let ca = pki.ca_file();
        Self {
            server_cert: files.cert,
            server_key: files.key,
            ca,
            pki,
        }
    }

    pub fn server_builder(&self) -> mtls::ServerBuilder {
        mtls::Server::builder()
            .identity(&self.server_cert, &self.server_key)
            .client_ca(&self.ca)
            .policy(Policy::any_verified())
            .alpn(["h2"])
    }

    pub fn server(&self) -> mtls::Server {
        self.server_builder().build().unwrap()
    }

    pub fn optional_server(&self) -> mtls::Server {
        self.server_builder()
            .client_auth(ClientAuth::Optional)
            .build()
            .unwrap()
    }

    /// An mTLS client with a fresh certificate `CN=<name>`.
    pub fn client(&self, name: &str) -> mtls::Client {
        let (_, files) = self.pki.client(name);
        self.client_builder()
            .identity(files.cert, files.key)
            .build()
            .unwrap()
    }

    pub fn client_builder(&self) -> mtls::ClientBuilder {
        mtls::Client::builder().ca(&self.ca)
    }
}

/// How a test server is set up.
#[derive(Default)]
pub struct ServeOptions {
    pub policy: Option<MethodPolicyLayer>,
    pub max_connection_age: Option<Duration>,
}

/// Serves [`IdentityService`] over `server` on 127.0.0.1:0.
pub async fn serve(
    server: &mtls::Server,
    options: ServeOptions,
) -> (
    SocketAddr,
    Arc<mtls::ListenerStats>,
    tokio::task::JoinHandle<()>,
) {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let incoming = TlsIncoming::new(TlsListener::new(tcp, server.acceptor()).unwrap());
    let addr = incoming.local_addr();
    let stats = incoming.stats();
    let mut builder = tonic::transport::Server::builder();
    if let Some(age) = options.max_connection_age {
        builder = builder.max_connection_age(age);
    }
    let policy = tower::util::option_layer(options.policy);
    let router = builder
        .layer(TcpConnectInfoLayer)
        .layer(policy)
        .add_service(IdentityService);
    let task = tokio::spawn(async move {
        router.serve_with_incoming(incoming).await.unwrap();
    });
    (addr, stats, task)
}

/// The endpoint of a test server, by DNS name (the server certificate names
/// `localhost` and 127.0.0.1).
pub fn endpoint(addr: SocketAddr) -> Endpoint {
    mtls_tonic::endpoint(format!("https://localhost:{}", addr.port()))
        .unwrap()
        .timeout(TIMEOUT)
        // Wraps the connector in hyper-timeout's, which needs hyper-util's `Connection`.
        .connect_timeout(TIMEOUT)
}

/// A channel to `addr` through `connector`, connected lazily.
pub fn channel(addr: SocketAddr, connector: &ChannelConnector) -> Channel {
    endpoint(addr).connect_with_connector_lazy(connector.clone())
}

/// Calls `method` (`WHOAMI` or `ADMIN`).
pub async fn call(channel: Channel, method: &'static str) -> Result<WhoAmIReply, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(format!("not ready: {e}")))?;
    let codec: ProstCodec<WhoAmIRequest, WhoAmIReply> = ProstCodec::default();
    let call = grpc.unary(
        Request::new(WhoAmIRequest {}),
        PathAndQuery::from_static(method),
        codec,
    );
    tokio::time::timeout(TIMEOUT, call)
        .await
        .unwrap_or_else(|_| Err(Status::deadline_exceeded("test timeout")))
        .map(Response::into_inner)
}
