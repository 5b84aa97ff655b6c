//! Shared helpers: a PKI, mTLS servers served by `mtls_hyper::HttpServer` on 127.0.0.1:0, and
//! hyper clients using `mtls_hyper::Connector`.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::error::Error as StdError;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mtls::{ClientAuth, ConnectionInfo, PeerIdentity, Policy, TlsListener};
use mtls_hyper::{ConnectError, Connector, HttpServer};
use mtls_testing::TestPki;

pub const TIMEOUT: Duration = Duration::from_secs(10);

pub type HttpClient = Client<Connector, Empty<Bytes>>;

/// A PKI with a `localhost` server and clients `alice` and `bob`.
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
            .alpn(mtls::HTTP_ALPN)
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

pub async fn listener(server: &mtls::Server) -> TlsListener {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    TlsListener::new(tcp, server.acceptor()).unwrap()
}

/// Answers `<cn>|<remote port>|<identity pointer>`, or `anonymous|<port>|-`, from the
/// request's `ConnectionInfo`; `no connection info` (500) without one.
pub async fn whoami(req: Request<Incoming>) -> Result<Response<String>, Infallible> {
    let Some(info) = req.extensions().get::<ConnectionInfo>() else {
        let mut response = Response::new("no connection info".to_owned());
        *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
        return Ok(response);
    };
    let port = info.remote_addr().map_or(0, |a| a.port());
    // The bare identity is the connection info's, not a copy.
    let bare = req.extensions().get::<Arc<PeerIdentity>>();
    assert_eq!(bare.map(Arc::as_ptr), info.identity().map(Arc::as_ptr));
    let body = match info.identity() {
        Some(id) => format!(
            "{}|{port}|{:p}",
            id.common_name().unwrap_or("?"),
            Arc::as_ptr(id)
        ),
        None => format!("anonymous|{port}|-"),
    };
    Ok(Response::new(body))
}

/// Serves [`whoami`] with `HttpServer` in a task; returns the address.
pub async fn serve_whoami(server: &mtls::Server) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = listener(server).await;
    let addr = listener.local_addr();
    let task = tokio::spawn(HttpServer::new(listener).serve(hyper::service::service_fn(whoami)));
    (addr, task)
}

pub fn http_client(connector: Connector) -> HttpClient {
    Client::builder(TokioExecutor::new()).build(connector)
}

pub fn url(addr: SocketAddr, path: &str) -> http::Uri {
    format!("https://localhost:{}{path}", addr.port())
        .parse()
        .unwrap()
}

/// GET with a timeout; returns the response head and the body as text.
pub async fn get(
    client: &HttpClient,
    uri: http::Uri,
) -> Result<(http::response::Parts, String), hyper_util::client::legacy::Error> {
    let fut = async {
        let response = client.get(uri).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Ok((parts, String::from_utf8(body.to_vec()).unwrap()))
    };
    tokio::time::timeout(TIMEOUT, fut)
        .await
        .expect("request timed out")
}

/// The `ConnectError` somewhere in an error's source chain.
pub fn connect_error<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a ConnectError> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(c) = e.downcast_ref::<ConnectError>() {
            return Some(c);
        }
        next = e.source();
    }
    None
}

/// The error and its sources, joined by `: `.
pub fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        parts.push(e.to_string());
        next = e.source();
    }
    parts.join(": ")
}
