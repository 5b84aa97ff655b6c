//! Our servers, run in the test process on 127.0.0.1:0: axum (mtls-axum) and hyper
//! (mtls-hyper), answering `GET /whoami` with the client's identity as JSON and 401 for
//! an anonymous client. They are built from the guide PKI exactly as a user would:
//! `server.pem` as both certificate and key, `ca.crt` as client CA, the CRL from
//! `openssl ca -gencrl`.

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use mtls::{ClientAuth, Policy, Server, TlsListener};
use mtls_axum::{ClientIdentity, MtlsListener, MtlsRouterExt};

use super::pki::guide;

/// Which of our servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Axum,
    Hyper,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Axum => "axum server",
            Self::Hyper => "hyper server",
        }
    }
}

/// A running server of ours; stops on drop.
#[derive(Debug)]
pub struct OurServer {
    pub kind: Kind,
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OurServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl OurServer {
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
    /// `https://localhost:PORT/whoami` (localhost is 127.0.0.1 here).
    pub fn url(&self) -> String {
        format!("https://localhost:{}/whoami", self.addr.port())
    }
}

/// The mtls server config from the guide PKI, in `mode`.
pub fn guide_server(mode: ClientAuth) -> Server {
    let g = guide();
    Server::builder()
        .identity(g.server_pem(), g.server_pem())
        .client_ca(g.ca())
        .crl(g.crl())
        .client_auth(mode)
        .policy(Policy::any_verified())
        .alpn(mtls::HTTP_ALPN)
        .build()
        .expect("our server accepts the openssl-made guide PKI unchanged")
}

/// Starts our `kind` server in `mode` (use `Required` for the refusal cases).
pub async fn start(kind: Kind, mode: ClientAuth) -> OurServer {
    serve(kind, guide_server(mode)).await
}

/// Starts `server` as our `kind` server.
pub async fn serve(kind: Kind, server: Server) -> OurServer {
    let (addr, task) = match kind {
        Kind::Axum => {
            let listener = MtlsListener::bind("127.0.0.1:0", &server).await.unwrap();
            let addr = listener.local_addr();
            let app = Router::new().route("/whoami", get(axum_whoami));
            let task = tokio::spawn(async move {
                let _ = axum::serve(listener, app.into_mtls_service()).await;
            });
            (addr, task)
        }
        Kind::Hyper => {
            let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let listener = TlsListener::new(tcp, server.acceptor()).unwrap();
            let addr = listener.local_addr();
            let service = hyper::service::service_fn(hyper_whoami);
            let task = tokio::spawn(mtls_hyper::HttpServer::new(listener).serve(service));
            (addr, task)
        }
    };
    OurServer { kind, addr, task }
}

/// axum: the extractor answers 401 for an anonymous client.
async fn axum_whoami(peer: ClientIdentity) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::to_value(&*peer.0).unwrap_or_default())
}

/// hyper: the identity is in the connection info on every request.
async fn hyper_whoami(req: Request<Incoming>) -> Result<Response<String>, Infallible> {
    let identity = req
        .extensions()
        .get::<mtls::ConnectionInfo>()
        .and_then(mtls::ConnectionInfo::identity);
    let (status, body) = match identity {
        Some(id) => (
            StatusCode::OK,
            serde_json::to_string(id.as_ref()).unwrap_or_default(),
        ),
        None => (
            StatusCode::UNAUTHORIZED,
            r#"{"error":"unauthenticated"}"#.to_owned(),
        ),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}
