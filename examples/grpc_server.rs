//! A tonic gRPC server over mutual TLS (`mtls-tonic`), configured from the command line.
//!
//! ```text
//! cargo run --example grpc_server -- --listen 127.0.0.1:50051 \
//!     --cert server.crt --key server.key --client-ca ca.crt --allow-any
//! ```
//!
//! Serves `mtls.examples.v1.Identity` from `proto/whoami.proto`: `WhoAmI` answers the
//! client's identity; `Admin` only for the common name `admin` (or `--admin-cn`),
//! `PERMISSION_DENIED` otherwise (by `mtls_tonic::MethodPolicyLayer`). The flags are
//! `axum_server`'s. Once ready it prints `listening on ADDR` on stdout. Bad flags or
//! files: a message on stderr and exit code 2.
//!
//! The generated stubs are the ones committed in `crates/mtls-tonic/tests/generated/`
//! (written by `cargo run --manifest-path proto/gen/Cargo.toml`), included here so that
//! there is one copy of them and no protoc at build time.

use mtls_examples::ops::MetricsEndpoint;
use mtls_examples::server_args::{Parsed, ServerArgs as Args, parse_server_args};
use std::net::SocketAddr;
use std::process::ExitCode;

use mtls::{ClientAuth, Policy, Server, TlsListener};
use mtls_tonic::{MethodPolicyLayer, RequestExt, TlsIncoming};
use tonic::{Request, Response, Status};

#[allow(
    clippy::all,
    clippy::pedantic,
    unreachable_pub,
    unused_qualifications,
    elided_lifetimes_in_paths,
    missing_debug_implementations,
    missing_docs
)]
mod pb {
    include!("../crates/mtls-tonic/tests/generated/mtls.examples.v1.rs");
}

use pb::identity_server::{Identity, IdentityServer};
use pb::{WhoAmIReply, WhoAmIRequest};

const ADMIN_METHOD: &str = "/mtls.examples.v1.Identity/Admin";

const USAGE: &str = "\
usage: grpc_server --listen ADDR (--cert FILE --key FILE | --p12 FILE) [--password-file FILE]
                   --client-ca FILE [--client-ca FILE]...
                   (--allow SPEC [--allow SPEC]... | --allow-any)
                   [--crl FILE]... [--optional-client-auth] [--admin-cn NAME] [--watch]
                   [--metrics-listen ADDR]

A gRPC server (service mtls.examples.v1.Identity) that requires client certificates.

  --listen ADDR            address to listen on, e.g. 127.0.0.1:50051 (port 0: any free port)
  --cert FILE              the server's certificate chain (PEM, leaf first)
  --key FILE               the server's private key (PEM or DER; may be encrypted, then
                           give --password-file)
  --p12 FILE               the server's key and certificate chain in one PKCS#12 file
                           (.p12/.pfx, as `openssl pkcs12 -export` writes it), in place
                           of --cert and --key
  --password-file FILE     the password of an encrypted --key or of the --p12 file (the
                           file's first line); without it a .p12 is read with an empty
                           password
  --client-ca FILE         CA certificates that issue client certificates; repeatable
  --crl FILE               a CRL from one of the client CAs (PEM or DER); repeatable
  --allow SPEC             which clients may connect: a policy such as cn:NAME, dns:NAME,
                           uri:URI, spiffe:TRUST-DOMAIN, o:ORG, ou:UNIT, sha256:FINGERPRINT;
                           several --allow flags admit a client matching any of them
  --allow-any              admit every client whose certificate chains to a client CA
  --optional-client-auth   clients may also connect without a certificate (their calls
                           then answer UNAUTHENTICATED)
  --admin-cn NAME          the common name allowed to call Admin (default: admin)
  --watch                  reload certificate, key, CAs and CRLs when their files change
  --metrics-listen ADDR    serve Prometheus metrics on http://ADDR/metrics (plain HTTP;
                           also GET /healthz there), e.g. 127.0.0.1:9464
  -h, --help               show this help

Methods:
  WhoAmI   the client's identity (UNAUTHENTICATED without a client certificate)
  Admin    only for the --admin-cn client (PERMISSION_DENIED for others)

Once ready, prints `listening on ADDR` (the bound address) on stdout, then
`metrics on ADDR` with --metrics-listen.
Exit codes: 0 after Ctrl-C or SIGTERM, 1 on a runtime error, 2 on bad flags or files.
";

/// Both methods answer the caller's identity; `Admin` is guarded by the policy layer.
struct WhoAmI;

fn reply(request: &Request<WhoAmIRequest>) -> Result<Response<WhoAmIReply>, Status> {
    let id = request
        .peer_identity()
        .ok_or_else(|| Status::unauthenticated("no client certificate"))?;
    Ok(Response::new(WhoAmIReply {
        subject: id.subject().to_owned(),
        common_name: id.common_name().unwrap_or_default().to_owned(),
        spiffe_id: id.spiffe_id().map(ToString::to_string).unwrap_or_default(),
        serial: id.serial().to_owned(),
        fingerprint_sha256: id.fingerprint_sha256().to_owned(),
    }))
}

#[tonic::async_trait]
impl Identity for WhoAmI {
    async fn who_am_i(
        &self,
        request: Request<WhoAmIRequest>,
    ) -> Result<Response<WhoAmIReply>, Status> {
        reply(&request)
    }

    async fn admin(
        &self,
        request: Request<WhoAmIRequest>,
    ) -> Result<Response<WhoAmIReply>, Status> {
        reply(&request)
    }
}

fn main() -> ExitCode {
    let args = match parse_server_args(std::env::args().skip(1), "127.0.0.1:50051") {
        Ok(Parsed::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Run(args)) => args,
        Err(e) => {
            eprintln!("grpc_server: {e}\nRun with --help for usage.");
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
            eprintln!("grpc_server: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(*args))
}

async fn run(args: Args) -> ExitCode {
    if args.forwarded.is_some() {
        eprintln!("grpc_server: --forwarded is not supported by grpc_server (axum_server has it)");
        return ExitCode::from(2);
    }
    // The recorder first, so that the server's first report is recorded.
    let metrics = match &args.metrics_listen {
        Some(addr) => match MetricsEndpoint::bind(addr).await {
            Ok(endpoint) => Some(endpoint),
            Err(e) => {
                eprintln!("grpc_server: {e}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let mut builder = args
        .apply_identity(Server::builder())
        .policy(args.policy.clone())
        .alpn(["h2"])
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
    // The shared revocation flags (see axum_server --help).
    builder = args.revocation.apply(builder);
    if metrics.is_some() {
        builder = builder.observer(mtls::metrics::MetricsObserver::new());
    }
    let server = match builder.build() {
        Ok(server) => server,
        Err(e) => {
            eprintln!("grpc_server: {e}");
            return ExitCode::from(2);
        }
    };
    let methods = match MethodPolicyLayer::new()
        .rule(ADMIN_METHOD, Policy::common_name([args.admin_cn.as_str()]))
    {
        Ok(layer) => layer,
        Err(e) => {
            eprintln!("grpc_server: {e}");
            return ExitCode::FAILURE;
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
                eprintln!("grpc_server: cannot watch the certificate files: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        None
    };

    let incoming = match tokio::net::TcpListener::bind(args.listen.as_str()).await {
        Ok(tcp) => match TlsListener::new(tcp, server.acceptor()) {
            Ok(listener) => TlsIncoming::new(listener),
            Err(e) => {
                eprintln!("grpc_server: cannot listen on {}: {e}", args.listen);
                return ExitCode::from(2);
            }
        },
        Err(e) => {
            eprintln!("grpc_server: cannot listen on {}: {e}", args.listen);
            return ExitCode::from(2);
        }
    };
    let addr: SocketAddr = incoming.local_addr();
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

    let served = tonic::transport::Server::builder()
        .layer(methods)
        .add_service(IdentityServer::new(WhoAmI))
        .serve_with_incoming_shutdown(incoming, shutdown_signal())
        .await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("grpc_server: {e}");
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
    tracing::info!("shutting down; finishing calls in flight");
}
