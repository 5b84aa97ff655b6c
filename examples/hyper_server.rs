//! An mTLS HTTPS server on plain hyper that answers every request with the caller's
//! certificate identity as JSON.
//!
//! ```text
//! cargo run -p mtls-examples --example hyper_server -- \
//!     --listen 127.0.0.1:8443 --cert server.crt --key server.key --client-ca ca.crt \
//!     --allow cn:alice [--allow spiffe:prod.example.org]... | --allow-any \
//!     [--client-ca FILE]... [--crl FILE]... [--optional-client-auth] [--watch]
//! ```
//!
//! Prints `listening on ADDR` on stdout once ready. A client without a certificate
//! (possible only with `--optional-client-auth`) gets a 401 JSON answer. Bad flags or
//! files: a message on stderr and exit code 2. Ctrl-C / SIGTERM shut down gracefully.
//! Set `RUST_LOG=mtls=debug` for more detail on refused handshakes.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use mtls::{ClientAuth, ConnectionInfo, Policy, TlsListener};

const USAGE: &str = "usage: hyper_server --listen ADDR --cert FILE --key FILE --client-ca FILE \
[--client-ca FILE]... [--crl FILE]... (--allow SPEC [--allow SPEC]... | --allow-any) \
[--optional-client-auth] [--watch]

  --listen ADDR            address to listen on, e.g. 127.0.0.1:8443 (port 0 picks one)
  --cert FILE              server certificate chain (PEM)
  --key FILE               server private key (PEM)
  --client-ca FILE         CA bundle that issues client certificates (repeatable)
  --crl FILE               CRL checked against client certificates (repeatable)
  --allow SPEC             allow clients matching a policy, e.g. cn:alice,
                           spiffe:prod.example.org (repeatable; any one may match)
  --allow-any              allow any client whose certificate chains to a client CA
  --optional-client-auth   also accept clients without a certificate (they get 401)
  --watch                  reload certificates, keys, CAs and CRLs when the files change";

#[derive(Debug, Default)]
struct Args {
    listen: Option<SocketAddr>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_cas: Vec<PathBuf>,
    crls: Vec<PathBuf>,
    allow: Vec<String>,
    allow_any: bool,
    optional_client_auth: bool,
    watch: bool,
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args::default();
    while let Some(flag) = argv.next() {
        let mut value = || argv.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => {
                let v = value()?;
                let addr = v.parse().map_err(|_| {
                    format!("--listen: `{v}` is not an address like 127.0.0.1:8443")
                })?;
                args.listen = Some(addr);
            }
            "--cert" => args.cert = Some(value()?.into()),
            "--key" => args.key = Some(value()?.into()),
            "--client-ca" => args.client_cas.push(value()?.into()),
            "--crl" => args.crls.push(value()?.into()),
            "--allow" => args.allow.push(value()?),
            "--allow-any" => args.allow_any = true,
            "--optional-client-auth" => args.optional_client_auth = true,
            "--watch" => args.watch = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if args.listen.is_none() {
        return Err("--listen is required".into());
    }
    if args.cert.is_none() || args.key.is_none() {
        return Err("--cert and --key are required".into());
    }
    if args.client_cas.is_empty() {
        return Err("at least one --client-ca is required".into());
    }
    match (args.allow.is_empty(), args.allow_any) {
        (true, false) => {
            return Err(
                "say which clients to allow: --allow SPEC (e.g. --allow cn:alice) or --allow-any"
                    .into(),
            );
        }
        (false, true) => return Err("--allow and --allow-any cannot be combined".into()),
        _ => {}
    }
    Ok(args)
}

fn json(status: StatusCode, body: String) -> Response<String> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

async fn whoami(req: Request<Incoming>) -> Result<Response<String>, Infallible> {
    let identity = req
        .extensions()
        .get::<ConnectionInfo>()
        .and_then(ConnectionInfo::identity);
    let Some(identity) = identity else {
        let body = serde_json::json!({
            "error": "unauthenticated",
            "message": "this endpoint needs a client certificate",
        });
        return Ok(json(StatusCode::UNAUTHORIZED, body.to_string()));
    };
    Ok(match serde_json::to_string(identity.as_ref()) {
        Ok(body) => json(StatusCode::OK, body),
        Err(e) => {
            tracing::error!(error = %e, "cannot serialize the identity");
            json(
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({ "error": "internal" }).to_string(),
            )
        }
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("hyper_server: {message}");
    ExitCode::from(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("hyper_server: {e}\n\n{USAGE}");
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

    let policy = if args.allow_any {
        Policy::any_verified()
    } else {
        match Policy::parse_any(&args.allow) {
            Ok(p) => p,
            Err(e) => return fail(format_args!("--allow: {e}")),
        }
    };
    let (Some(listen), Some(cert), Some(key)) = (args.listen, args.cert, args.key) else {
        return fail("--listen, --cert and --key are required");
    };
    let mut builder = mtls::Server::builder()
        .identity(cert, key)
        .policy(policy)
        .alpn(mtls::HTTP_ALPN);
    for ca in args.client_cas {
        builder = builder.client_ca(ca);
    }
    for crl in args.crls {
        builder = builder.crl(crl);
    }
    if args.optional_client_auth {
        builder = builder.client_auth(ClientAuth::Optional);
    }
    let server = match builder.build() {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let _watch = if args.watch {
        match server.handle().watch() {
            Ok(guard) => Some(guard),
            Err(e) => return fail(format_args!("--watch: {e}")),
        }
    } else {
        None
    };

    let tcp = match tokio::net::TcpListener::bind(listen).await {
        Ok(tcp) => tcp,
        Err(e) => return fail(format_args!("cannot listen on {listen}: {e}")),
    };
    let listener = match TlsListener::new(tcp, server.acceptor()) {
        Ok(l) => l,
        Err(e) => return fail(format_args!("cannot listen on {listen}: {e}")),
    };
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "listening on {}", listener.local_addr());
    let _ = stdout.flush();

    mtls_hyper::HttpServer::new(listener)
        .grace_period(Duration::from_secs(10))
        .serve_with_shutdown(hyper::service::service_fn(whoami), shutdown_signal())
        .await;
    ExitCode::SUCCESS
}
