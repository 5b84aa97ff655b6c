//! An axum server over mutual TLS, configured from the command line.
//!
//! ```text
//! cargo run --example axum_server -- --listen 127.0.0.1:8443 \
//!     --cert server.crt --key server.key --client-ca ca.crt --allow cn:alice
//! ```
//!
//! Routes: `GET /whoami` answers with the client's identity as JSON (401 for a client
//! without a certificate); `GET /admin` only for the common name `admin` (or
//! `--admin-cn`), 403 otherwise; `GET /healthz` the health of the certificates in force.
//! With `--metrics-listen ADDR`, Prometheus metrics on `http://ADDR/metrics` (and
//! `/healthz` there too, for probes without a certificate). Every request is logged with
//! the client's subject and serial. Run with `--help` for the flags. Once ready it prints
//! `listening on ADDR` on stdout. Bad flags or files: a message on stderr and exit code 2.

use mtls_examples::server_args::{Parsed, ServerArgs as Args, parse_server_args};
use std::net::SocketAddr;
use std::process::ExitCode;

use axum::Router;
use axum::routing::get;
use mtls::{ClientAuth, Policy, Server};
use mtls_axum::{
    ClientIdentity, ForwardedBy, ForwardedIdentityLayer, MtlsListener, MtlsRouterExt,
    RequirePolicyLayer, TraceIdentityLayer,
};
use mtls_examples::ops::{MetricsEndpoint, healthz};

const USAGE: &str = "\
usage: axum_server --listen ADDR (--cert FILE --key FILE | --p12 FILE) [--password-file FILE]
                   --client-ca FILE [--client-ca FILE]...
                   (--allow SPEC [--allow SPEC]... | --allow-any)
                   [--crl FILE]... [--optional-client-auth] [--admin-cn NAME] [--watch]
                   [--metrics-listen ADDR]
                   [--ocsp leaf|chain [--ocsp-fail soft|hard] [--ocsp-responder URL]]
                   [--crl-url URL]... [--crl-from-dp] [--crl-cache-dir DIR] [--staple]
                   [--forwarded FORMAT[:HEADER] (--trusted-proxy POLICY | --trusted-proxy-net CIDR...)]

An axum HTTPS server that requires client certificates (mutual TLS).

  --listen ADDR            address to listen on, e.g. 127.0.0.1:8443 (port 0: any free port)
  --cert FILE              the server's certificate chain (PEM, leaf first)
  --key FILE               the server's private key (PEM or DER; may be encrypted, then
                           give --password-file)
  --p12 FILE               the server's key and certificate chain in one PKCS#12 file
                           (.p12/.pfx, as `openssl pkcs12 -export` writes it), in place
                           of --cert and --key
  --password-file FILE     the password of an encrypted --key or of the --p12 file (the
                           file's first line); without it a .p12 is read with an empty
                           password
  --client-ca FILE         CA certificates that issue client certificates; repeat to trust
                           several (e.g. the old and the new CA during a rotation)
  --crl FILE               a CRL from one of the client CAs (PEM or DER); repeatable
  --allow SPEC             which clients may connect: a policy such as cn:NAME, dns:NAME,
                           uri:URI, spiffe:TRUST-DOMAIN, o:ORG, ou:UNIT, sha256:FINGERPRINT;
                           several --allow flags admit a client matching any of them
  --allow-any              admit every client whose certificate chains to a client CA
  --optional-client-auth   clients may also connect without a certificate (anonymous:
                           GET /whoami then answers 401)
  --admin-cn NAME          the common name allowed on GET /admin (default: admin)
  --watch                  reload certificate, key, CAs and CRLs when their files change
  --metrics-listen ADDR    serve Prometheus metrics on http://ADDR/metrics (plain HTTP;
                           also GET /healthz there), e.g. 127.0.0.1:9464
  --forwarded FORMAT[:HEADER]
                           take the client's certificate from a TLS-terminating proxy in
                           front: rfc9440, xfcc, nginx, haproxy, apache, traefik or alb
                           (HEADER: another header name than the format's usual one)
  --trusted-proxy POLICY   only from a proxy whose own client certificate matches POLICY
                           (e.g. cn:edge-proxy); --allow must admit it too
  --trusted-proxy-net CIDR only from proxies in this network (repeatable), for proxies
                           without a client certificate
  --ocsp leaf|chain        check client certificates with OCSP: the client's own (leaf)
                           or it and the intermediates it sends (chain); the responder
                           from each certificate's AIA; answers cached until nextUpdate
  --ocsp-fail soft|hard    without an OCSP answer: admit and warn (soft, the default) or
                           refuse (hard)
  --ocsp-responder URL     ask this http:// responder instead of the certificates' AIA
  --crl-url URL            fetch a CRL from this http:// URL and keep it fresh (repeatable)
  --crl-from-dp            also fetch the CRL distribution points of the client CAs and of
                           the client certificates seen
  --crl-cache-dir DIR      where fetched CRLs are kept as last good (default
                           .mtls-crl-cache), loaded at start when the URL is down
  --staple                 staple an OCSP response for the server's own certificate (from
                           the responder its AIA names), refreshed before nextUpdate
  -h, --help               show this help

Routes:
  GET /whoami   the client's identity as JSON (401 without a client certificate), with
                forwarded_by: the proxy it came through, or null
  GET /admin    only for the --admin-cn client (403 for others)
  GET /healthz  the health of the certificates in force as JSON (503 when the last
                reload failed, something in force expired or a CRL is stale)

Once ready, prints `listening on ADDR` (the bound address) on stdout, then
`metrics on ADDR` with --metrics-listen.
Exit codes: 0 after Ctrl-C or SIGTERM, 1 on a runtime error, 2 on bad flags or files.
";

/// `GET /whoami`: the identity as JSON, with the proxy it came through; 401 (by the
/// extractor) without a certificate.
async fn whoami(
    peer: ClientIdentity,
    forwarded_by: Option<ForwardedBy>,
) -> axum::Json<serde_json::Value> {
    let mut json = serde_json::to_value(&*peer).unwrap_or_default();
    if let Some(object) = json.as_object_mut() {
        let by = forwarded_by.map(|ForwardedBy(by)| serde_json::to_value(by).unwrap_or_default());
        object.insert("forwarded_by".to_owned(), by.unwrap_or_default());
    }
    axum::Json(json)
}

/// `GET /admin`, behind the policy layer.
async fn admin(peer: ClientIdentity) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({
        "admin": true,
        "common_name": peer.common_name(),
    }))
}

/// One line per request, inside the span of `TraceIdentityLayer`, so it names the client.
async fn access_log(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let response = next.run(request).await;
    tracing::info!(%method, %path, status = response.status().as_u16(), "request");
    response
}

fn app(
    admin_cn: &str,
    material: mtls::ReloadHandle,
    forwarded: Option<mtls::forwarded::Forwarding>,
) -> Router {
    let router = Router::new()
        .route("/whoami", get(whoami))
        .route(
            "/admin",
            get(admin).layer(RequirePolicyLayer::new(Policy::common_name([admin_cn]))),
        )
        .route("/healthz", get(move || async move { healthz(&material) }))
        .layer(axum::middleware::from_fn(access_log))
        .layer(TraceIdentityLayer::new());
    // Outermost: every layer and handler inside sees the forwarded client.
    match forwarded {
        Some(forwarding) => router.layer(ForwardedIdentityLayer::new(forwarding)),
        None => router,
    }
}

fn main() -> ExitCode {
    let args = match parse_server_args(std::env::args().skip(1), "127.0.0.1:8443") {
        Ok(Parsed::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Run(args)) => args,
        Err(e) => {
            eprintln!("axum_server: {e}\nRun with --help for usage.");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("axum_server: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(*args))
}

async fn run(args: Args) -> ExitCode {
    // The recorder first, so that the server's first report is recorded.
    let metrics = match &args.metrics_listen {
        Some(addr) => match MetricsEndpoint::bind(addr).await {
            Ok(endpoint) => Some(endpoint),
            Err(e) => {
                eprintln!("axum_server: {e}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let mut builder = args
        .apply_identity(Server::builder())
        .policy(args.policy.clone())
        .alpn(mtls::HTTP_ALPN)
        .client_auth(if args.optional_client_auth {
            ClientAuth::Optional
        } else {
            ClientAuth::Required
        });
    for ca in &args.client_cas {
        builder = builder.client_ca(ca);
    }
    for crl in &args.crls {
        builder = builder.crl(crl);
    }
    builder = args.revocation.apply(builder);
    if metrics.is_some() {
        builder = builder.observer(mtls::metrics::MetricsObserver::new());
    }
    let server = match builder.build() {
        Ok(server) => server,
        Err(e) => {
            eprintln!("axum_server: {e}");
            return ExitCode::from(2);
        }
    };

    let _watch = if args.watch {
        match server.handle().watch() {
            Ok(guard) => {
                let mut events = server.handle().subscribe();
                tokio::spawn(async move {
                    while let Ok(event) = events.recv().await {
                        tracing::info!(?event, "reload event");
                    }
                });
                Some(guard)
            }
            Err(e) => {
                eprintln!("axum_server: cannot watch the certificate files: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        None
    };

    let listener = match MtlsListener::bind(args.listen.as_str(), &server).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("axum_server: cannot listen on {}: {e}", args.listen);
            return ExitCode::from(2);
        }
    };
    let addr: SocketAddr = listener.local_addr();
    tracing::info!(
        %addr,
        policy = %args.policy,
        optional_client_auth = args.optional_client_auth,
        admin_cn = %args.admin_cn,
        watch = args.watch,
        "serving"
    );
    if mtls_examples::ops::announce(addr, metrics.as_ref()).is_err() {
        return ExitCode::FAILURE;
    }
    mtls_examples::ops::spawn_metrics(metrics, server.handle());

    let served = axum::serve(
        listener,
        app(&args.admin_cn, server.handle(), args.forwarded).into_mtls_service(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("axum_server: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutting down; finishing requests in flight");
}
