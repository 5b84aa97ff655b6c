//! The `serve` subcommand: one server under test, run as a child process so the bench
//! can pin it to its own core and read its CPU time and memory from `/proc`.
//!
//! Every server listens on `127.0.0.1:0`, prints `LISTENING <addr>` on stdout once it
//! accepts connections, and answers every request with `200 ok\n`. All of them run on a
//! tokio multi-thread runtime with one worker (what `#[tokio::main]` gives on one core),
//! with the server's own accept/serve loop spawned onto that worker with `--spawn` (the
//! bench's default), or else run by `block_on` on the main thread, as `#[tokio::main]`
//! runs `main`'s body; they offer ALPN `h2, http/1.1`. The gRPC servers (`tonic`,
//! `mtls-tonic`) offer `h2` only and answer `mtls.examples.v1.Identity/WhoAmI` with a
//! constant reply.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use mtls::rustls::{self, RootCertStore, ServerConfig};
use mtls::{Policy, TlsListener};
use mtls_axum::{MtlsListener, MtlsRouterExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::BoxError;

/// The servers under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServerKind {
    /// Baseline: plain tokio-rustls (WebPkiClientVerifier, `with_single_cert`) and hyper.
    Raw,
    /// Plain tokio-rustls serving an axum Router: the axum cost without mtls.
    RawAxum,
    /// `mtls::TlsListener` + `mtls_hyper::HttpServer`.
    MtlsHyper,
    /// `mtls_axum::MtlsListener` + `axum::serve`.
    MtlsAxum,
    /// The same axum Router served by `mtls_hyper::HttpServer::serve_tower` (one task per
    /// connection, see mtls-axum's docs).
    MtlsAxumHyper,
    /// nginx with `ssl_verify_client on` (not a `serve` kind: nginx runs itself).
    Nginx,
    /// `mtls-hyper` with `mtls::metrics::MetricsObserver` reporting to an installed
    /// Prometheus recorder (metrics-exporter-prometheus), as `axum_server
    /// --metrics-listen` runs it.
    MtlsHyperMetrics,
    /// gRPC baseline: plain tonic with its own `tls_config` (`ServerTlsConfig` with the
    /// server identity and the client CA root) and `serve_with_incoming`.
    Tonic,
    /// gRPC: `mtls_tonic::TlsIncoming` over `mtls::TlsListener`, served by tonic.
    MtlsTonic,
    /// `mtls-hyper` with the server key in a SoftHSM2 token (feature `pkcs11`,
    /// `identity_signer` with a `Pkcs11Key`): what signing in a PKCS#11 token costs.
    MtlsHyperPkcs11,
    /// `mtls-hyper` with OCSP for client certificates on (`ocsp(Leaf)`, hard-fail), the
    /// responder an `openssl ocsp` child over an index of the bench client: the first
    /// connection fetches, every later one is answered from the cache.
    MtlsHyperOcsp,
}

impl ServerKind {
    pub(crate) const ALL: [Self; 11] = [
        Self::Raw,
        Self::RawAxum,
        Self::MtlsHyper,
        Self::MtlsAxum,
        Self::MtlsAxumHyper,
        Self::Nginx,
        Self::MtlsHyperMetrics,
        Self::Tonic,
        Self::MtlsTonic,
        Self::MtlsHyperPkcs11,
        Self::MtlsHyperOcsp,
    ];

    /// What a run measures when `--servers` is not given.
    pub(crate) const DEFAULT: [Self; 8] = [
        Self::Raw,
        Self::RawAxum,
        Self::MtlsHyper,
        Self::MtlsAxum,
        Self::MtlsAxumHyper,
        Self::Nginx,
        Self::Tonic,
        Self::MtlsTonic,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::RawAxum => "raw-axum",
            Self::MtlsHyper => "mtls-hyper",
            Self::MtlsAxum => "mtls-axum",
            Self::MtlsAxumHyper => "mtls-axum-hyper",
            Self::Nginx => "nginx",
            Self::MtlsHyperMetrics => "mtls-hyper-metrics",
            Self::Tonic => "tonic",
            Self::MtlsTonic => "mtls-tonic",
            Self::MtlsHyperPkcs11 => "mtls-hyper-pkcs11",
            Self::MtlsHyperOcsp => "mtls-hyper-ocsp",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self, BoxError> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown server {s:?}: expected one of raw, raw-axum, mtls-hyper, \
                     mtls-axum, mtls-axum-hyper, nginx, mtls-hyper-metrics, tonic, mtls-tonic, \
                     mtls-hyper-pkcs11, mtls-hyper-ocsp"
                )
                .into()
            })
    }

    /// Whether this is one of ours (built on the mtls crates).
    pub(crate) fn is_mtls(self) -> bool {
        matches!(
            self,
            Self::MtlsHyper
                | Self::MtlsAxum
                | Self::MtlsAxumHyper
                | Self::MtlsHyperMetrics
                | Self::MtlsTonic
                | Self::MtlsHyperPkcs11
                | Self::MtlsHyperOcsp
        )
    }

    /// Whether this serves gRPC (the `grpc-*` cases) rather than `GET /`.
    pub(crate) fn is_grpc(self) -> bool {
        matches!(self, Self::Tonic | Self::MtlsTonic)
    }

    /// The baseline this kind is compared with: `raw` for HTTP, `tonic` for gRPC.
    pub(crate) fn baseline(self) -> Self {
        if self.is_grpc() {
            Self::Tonic
        } else {
            Self::Raw
        }
    }
}

/// Options of the `serve` subcommand.
#[derive(Debug)]
pub(crate) struct ServeOptions {
    pub(crate) kind: ServerKind,
    pub(crate) certs: PathBuf,
    pub(crate) reload_every: Option<Duration>,
    /// Spawn the server's top-level future onto the runtime's worker instead of running
    /// it on the main thread with `block_on` (what `#[tokio::main] async fn main() {
    /// serve(..).await }` does).
    pub(crate) spawn: bool,
}

/// Runs the server until the process is killed.
pub(crate) fn run(options: ServeOptions) -> Result<(), BoxError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    if options.spawn {
        rt.block_on(async { tokio::spawn(serve(options, announce)).await? })
    } else {
        rt.block_on(serve(options, announce))
    }
}

/// Serves until the future is dropped; `listening` is called once connections are
/// accepted.
pub(crate) async fn serve(
    options: ServeOptions,
    listening: impl FnOnce(SocketAddr) -> Result<(), BoxError>,
) -> Result<(), BoxError> {
    let tcp = TcpListener::bind("127.0.0.1:0").await?;
    let addr = tcp.local_addr()?;
    let certs = &options.certs;
    match options.kind {
        ServerKind::Raw => {
            let config = raw_config(certs)?;
            listening(addr)?;
            raw_loop(tcp, config, hyper::service::service_fn(hello)).await;
        }
        ServerKind::RawAxum => {
            let config = raw_config(certs)?;
            listening(addr)?;
            raw_loop(tcp, config, TowerToHyperService::new(router())).await;
        }
        ServerKind::MtlsHyper => {
            let server = mtls_server(certs, options.reload_every, Observe::No)?;
            let listener = TlsListener::new(tcp, server.acceptor())?;
            listening(addr)?;
            mtls_hyper::HttpServer::new(listener)
                .serve(hyper::service::service_fn(hello))
                .await;
        }
        ServerKind::MtlsAxum => {
            let server = mtls_server(certs, options.reload_every, Observe::No)?;
            let listener = MtlsListener::new(TlsListener::new(tcp, server.acceptor())?);
            listening(addr)?;
            axum::serve(listener, router().into_mtls_service()).await?;
        }
        ServerKind::MtlsAxumHyper => {
            let server = mtls_server(certs, options.reload_every, Observe::No)?;
            let listener = TlsListener::new(tcp, server.acceptor())?;
            listening(addr)?;
            mtls_hyper::HttpServer::new(listener)
                .serve_tower(router())
                .await;
        }
        ServerKind::MtlsHyperMetrics => {
            install_recorder()?;
            let server = mtls_server(certs, options.reload_every, Observe::Metrics)?;
            let listener = TlsListener::new(tcp, server.acceptor())?;
            listening(addr)?;
            mtls_hyper::HttpServer::new(listener)
                .serve(hyper::service::service_fn(hello))
                .await;
        }
        ServerKind::Tonic => {
            let read = |name: &str| std::fs::read(certs.join(name));
            let tls = tonic::transport::ServerTlsConfig::new()
                .identity(tonic::transport::Identity::from_pem(
                    read("server.crt")?,
                    read("server.key")?,
                ))
                .client_ca_root(tonic::transport::Certificate::from_pem(read("ca.crt")?));
            // TCP_NODELAY, as the other servers set it.
            let incoming =
                tonic::transport::server::TcpIncoming::from(tcp).with_nodelay(Some(true));
            listening(addr)?;
            tonic::transport::Server::builder()
                .tls_config(tls)?
                .add_service(IdentityServer::new(Hello))
                .serve_with_incoming(incoming)
                .await?;
        }
        ServerKind::MtlsTonic => {
            let server = mtls::Server::builder()
                .identity(certs.join("server.crt"), certs.join("server.key"))
                .client_ca(certs.join("ca.crt"))
                .policy(Policy::any_verified())
                .alpn(["h2"])
                .session_cache(256)
                .build()?;
            let incoming = mtls_tonic::TlsIncoming::new(TlsListener::new(tcp, server.acceptor())?);
            listening(addr)?;
            tonic::transport::Server::builder()
                .add_service(IdentityServer::new(Hello))
                .serve_with_incoming(incoming)
                .await?;
        }
        ServerKind::MtlsHyperPkcs11 => {
            let key = mtls::pkcs11::Pkcs11Key::open(
                &mtls::pkcs11::Pkcs11Config::new(SOFTHSM2_MODULE)
                    .token_label(PKCS11_TOKEN)
                    .key_label("server")
                    .pin(mtls::Password::from_file(certs.join("hsm.pin"))),
            )?;
            let server = mtls::Server::builder()
                .identity_signer(certs.join("server.crt"), key)
                .client_ca(certs.join("ca.crt"))
                .policy(Policy::any_verified())
                .alpn(mtls::HTTP_ALPN)
                .session_cache(256)
                .build()?;
            let listener = TlsListener::new(tcp, server.acceptor())?;
            listening(addr)?;
            mtls_hyper::HttpServer::new(listener)
                .serve(hyper::service::service_fn(hello))
                .await;
        }
        ServerKind::MtlsHyperOcsp => {
            let (_responder, url) = ocsp_responder(certs).await?;
            let server = mtls::Server::builder()
                .identity(certs.join("server.crt"), certs.join("server.key"))
                .client_ca(certs.join("ca.crt"))
                .policy(Policy::any_verified())
                .alpn(mtls::HTTP_ALPN)
                .session_cache(256)
                .ocsp(mtls::revocation::OcspMode::Leaf)
                .ocsp_failure(mtls::revocation::OcspFailure::Hard)
                .ocsp_responder(url)
                .build()?;
            let listener = TlsListener::new(tcp, server.acceptor())?;
            listening(addr)?;
            mtls_hyper::HttpServer::new(listener)
                .serve(hyper::service::service_fn(hello))
                .await;
        }
        ServerKind::Nginx => return Err("nginx is not served by this binary".into()),
    }
    Ok(())
}

/// The stubs of `proto/whoami.proto` that mtls-tonic's tests and the examples use.
#[allow(
    unreachable_pub,
    unused_qualifications,
    missing_debug_implementations,
    clippy::all
)]
pub(crate) mod pb {
    include!("../../../../crates/mtls-tonic/tests/generated/mtls.examples.v1.rs");
}

use pb::identity_server::{Identity as IdentityService, IdentityServer};
use pb::{WhoAmIReply, WhoAmIRequest};

/// The gRPC servers' handler: the same constant reply from both, so the comparison is
/// the transport's.
#[derive(Debug, Clone, Copy)]
struct Hello;

#[tonic::async_trait]
impl IdentityService for Hello {
    async fn who_am_i(
        &self,
        _request: tonic::Request<WhoAmIRequest>,
    ) -> Result<tonic::Response<WhoAmIReply>, tonic::Status> {
        Ok(tonic::Response::new(WhoAmIReply {
            common_name: "ok".to_owned(),
            ..WhoAmIReply::default()
        }))
    }

    async fn admin(
        &self,
        request: tonic::Request<WhoAmIRequest>,
    ) -> Result<tonic::Response<WhoAmIReply>, tonic::Status> {
        self.who_am_i(request).await
    }
}

/// The installed recorder of [`ServerKind::MtlsHyperMetrics`].
static RECORDER: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
    std::sync::OnceLock::new();

/// What the installed recorder holds, in Prometheus text format (for the tests).
#[cfg(test)]
pub(crate) fn recorded_metrics() -> String {
    RECORDER.get().map(|h| h.render()).unwrap_or_default()
}

/// Installs a Prometheus recorder as the process's global one (as `axum_server
/// --metrics-listen` does) and folds histogram samples in every 5 s, as that endpoint
/// does; a second call (the in-process tests) keeps the first recorder.
fn install_recorder() -> Result<(), BoxError> {
    if RECORDER.get().is_some() {
        return Ok(());
    }
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    if metrics::set_global_recorder(recorder).is_ok() {
        let _ = RECORDER.set(handle.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                handle.run_upkeep();
            }
        });
    }
    Ok(())
}

/// Starts `openssl ocsp` over an `openssl ca`-style index holding the bench client
/// (status good), signing as the client's issuer (`intermediate.crt` / `.key`); returns
/// the child (killed on drop) and its URL.
async fn ocsp_responder(certs: &Path) -> Result<(tokio::process::Child, String), BoxError> {
    use tokio::io::AsyncBufReadExt;
    let chain = mtls::pem::load_certs(certs.join("client.crt"))?;
    let client = mtls::PeerIdentity::from_chain(&chain)?;
    let expiry = time::OffsetDateTime::from(client.not_after());
    let index = format!(
        "V\t{:02}{:02}{:02}{:02}{:02}{:02}Z\t\t{}\tunknown\t/CN=bench-client\n",
        expiry.year() % 100,
        u8::from(expiry.month()),
        expiry.day(),
        expiry.hour(),
        expiry.minute(),
        expiry.second(),
        client.serial(),
    );
    std::fs::write(certs.join("ocsp-index.txt"), index)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut child = tokio::process::Command::new("openssl")
        .args([
            "ocsp",
            "-index",
            "ocsp-index.txt",
            "-port",
            &port.to_string(),
        ])
        .args(["-CA", "intermediate.crt", "-rsigner", "intermediate.crt"])
        .args(["-rkey", "intermediate.key", "-nmin", "60"])
        .current_dir(certs)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start openssl ocsp: {e}"))?;
    let stderr = child.stderr.take().ok_or("openssl ocsp: no stderr")?;
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    // Ready when it says so (a probe connection would wedge it).
    let ready = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("waiting for OCSP client connections") {
                return true;
            }
        }
        false
    })
    .await;
    if ready != Ok(true) {
        return Err("openssl ocsp did not start".into());
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, format!("http://127.0.0.1:{port}")))
}

/// Whether an mtls server reports to a `MetricsObserver`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Observe {
    No,
    Metrics,
}

fn announce(addr: SocketAddr) -> Result<(), BoxError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "LISTENING {addr}")?;
    out.flush()?;
    Ok(())
}

async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"ok\n"))))
}

fn router() -> axum::Router {
    axum::Router::new().route("/", axum::routing::get(|| async { "ok\n" }))
}

// === raw tokio-rustls baseline ===

/// The baseline's rustls config: what a careful user writes by hand with the same
/// certificates, provider (and so key-exchange groups), ALPN and resumption settings as
/// `mtls::Server` (a stateful session cache of 256, rustls' default tickets).
fn raw_config(certs: &Path) -> Result<Arc<ServerConfig>, BoxError> {
    let provider = Arc::new(
        mtls::provider::feature_default().ok_or("mtls was built without a crypto provider")?,
    );
    let mut roots = RootCertStore::empty();
    for ca in mtls::pem::load_certs(certs.join("ca.crt"))? {
        roots.add(ca)?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            mtls::pem::load_certs(certs.join("server.crt"))?,
            mtls::pem::load_key(certs.join("server.key"))?,
        )?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(256);
    Ok(Arc::new(config))
}

async fn raw_loop<S, B>(tcp: TcpListener, config: Arc<ServerConfig>, service: S)
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let acceptor = TlsAcceptor::from(config);
    let http = Arc::new(auto::Builder::new(TokioExecutor::new()));
    loop {
        let Ok((io, _)) = tcp.accept().await else {
            // EMFILE and friends: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = io.set_nodelay(true);
        let (acceptor, http, service) = (acceptor.clone(), http.clone(), service.clone());
        tokio::spawn(async move {
            if let Ok(tls) = acceptor.accept(io).await {
                let _ = http
                    .serve_connection_with_upgrades(TokioIo::new(tls), service)
                    .await;
            }
        });
    }
}

// === ours ===

fn mtls_server(
    certs: &Path,
    reload_every: Option<Duration>,
    observe: Observe,
) -> Result<mtls::Server, BoxError> {
    let (cert, key) = match reload_every {
        None => (certs.join("server.crt"), certs.join("server.key")),
        Some(_) => {
            let live = (certs.join("live.crt"), certs.join("live.key"));
            install(certs, "server", &live)?;
            live
        }
    };
    let mut builder = mtls::Server::builder()
        .identity(&cert, &key)
        .client_ca(certs.join("ca.crt"))
        .policy(Policy::any_verified())
        .alpn(mtls::HTTP_ALPN)
        .session_cache(256);
    if observe == Observe::Metrics {
        builder = builder.observer(mtls::metrics::MetricsObserver::new());
    }
    let server = builder.build()?;
    if let Some(every) = reload_every {
        tokio::spawn(reload_loop(
            server.handle(),
            certs.to_owned(),
            (cert, key),
            every,
        ));
    }
    Ok(server)
}

/// Copies `<name>.crt` / `<name>.key` over the live files, each by write-then-rename so
/// a reader never sees a half-written file.
fn install(certs: &Path, name: &str, live: &(PathBuf, PathBuf)) -> Result<(), BoxError> {
    for (ext, dest) in [("crt", &live.0), ("key", &live.1)] {
        let tmp = dest.with_extension(format!("{ext}.tmp"));
        std::fs::copy(certs.join(format!("{name}.{ext}")), &tmp)?;
        std::fs::rename(&tmp, dest)?;
    }
    Ok(())
}

/// Every `every`, installs the other server certificate and reloads; prints
/// `RELOADS ok=N failed=M` twice a second.
async fn reload_loop(
    handle: mtls::ReloadHandle,
    certs: PathBuf,
    live: (PathBuf, PathBuf),
    every: Duration,
) {
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_print = tokio::time::Instant::now();
    for n in 0u64.. {
        tick.tick().await;
        let name = if n % 2 == 0 { "server2" } else { "server" };
        let (handle, certs, live) = (handle.clone(), certs.clone(), live.clone());
        let result = tokio::task::spawn_blocking(move || -> Result<u64, BoxError> {
            install(&certs, name, &live)?;
            Ok(handle.reload()?)
        })
        .await;
        match result {
            Ok(Ok(_)) => ok.fetch_add(1, Ordering::Relaxed),
            _ => failed.fetch_add(1, Ordering::Relaxed),
        };
        if last_print.elapsed() >= Duration::from_millis(500) {
            last_print = tokio::time::Instant::now();
            // The parent reads this; if it is gone, so is the point of printing.
            let _ = writeln!(
                std::io::stdout().lock(),
                "RELOADS ok={} failed={}",
                ok.load(Ordering::Relaxed),
                failed.load(Ordering::Relaxed)
            );
        }
    }
}

/// SoftHSM2's module (Debian's `softhsm2`).
pub(crate) const SOFTHSM2_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const PKCS11_TOKEN: &str = "loadbench";

/// Makes a SoftHSM2 token in `certs/softhsm` holding `certs/server.key` (label
/// `server`), once; returns the `SOFTHSM2_CONF` the server needs in its environment.
pub(crate) fn pkcs11_token(certs: &Path) -> Result<PathBuf, BoxError> {
    let dir = certs.join("softhsm");
    let conf = certs.join("softhsm2.conf");
    if dir.join("ready").exists() {
        return Ok(conf);
    }
    std::fs::create_dir_all(dir.join("tokens"))?;
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            dir.join("tokens").display()
        ),
    )?;
    std::fs::write(certs.join("hsm.pin"), "1234\n")?;
    let p8 = dir.join("server.p8.pem");
    let run = |cmd: &mut std::process::Command| -> Result<(), BoxError> {
        let out = cmd.env("SOFTHSM2_CONF", &conf).output()?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr)).into())
        }
    };
    run(std::process::Command::new("openssl")
        .args(["pkcs8", "-topk8", "-nocrypt", "-in"])
        .arg(certs.join("server.key"))
        .arg("-out")
        .arg(&p8))?;
    run(std::process::Command::new("softhsm2-util").args([
        "--init-token",
        "--free",
        "--label",
        PKCS11_TOKEN,
        "--pin",
        "1234",
        "--so-pin",
        "5678",
    ]))?;
    run(std::process::Command::new("softhsm2-util")
        .arg("--import")
        .arg(&p8)
        .args([
            "--token",
            PKCS11_TOKEN,
            "--label",
            "server",
            "--id",
            "01",
            "--pin",
            "1234",
        ]))?;
    std::fs::write(dir.join("ready"), "")?;
    Ok(conf)
}
