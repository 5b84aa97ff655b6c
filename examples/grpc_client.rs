//! A gRPC client over mutual TLS (`mtls-tonic`'s `ChannelConnector`): presents a client
//! certificate, trusts only the given CA, calls `mtls.examples.v1.Identity` and prints the
//! reply as one JSON object.
//!
//! ```text
//! cargo run --example grpc_client -- --cert client.crt --key client.key --ca ca.crt \
//!     [--server-policy SPEC] [--method WhoAmI|Admin] https://localhost:50051
//! ```
//!
//! The JSON has the fields of `WhoAmIReply` in `proto/whoami.proto`: `subject`,
//! `common_name`, `spiffe_id`, `serial`, `fingerprint_sha256`. On any failure (bad flags,
//! unreadable or invalid files, a refused connection, an error status such as
//! `PERMISSION_DENIED`) it prints why on stderr and exits with status 2.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use mtls::Policy;
use mtls_tonic::ChannelConnector;

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

use pb::WhoAmIRequest;
use pb::identity_client::IdentityClient;

const USAGE: &str = "usage: grpc_client --cert FILE --key FILE --ca FILE \
                     [--server-policy SPEC] [--method WhoAmI|Admin] URL";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    WhoAmI,
    Admin,
}

#[derive(Debug)]
struct Args {
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
    policy: Option<Policy>,
    method: Method,
    url: String,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut cert, mut key, mut ca, mut policy, mut url) = (None, None, None, None, None);
    let mut method = Method::WhoAmI;
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| {
            args.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--cert" => cert = Some(PathBuf::from(value("--cert")?)),
            "--key" => key = Some(PathBuf::from(value("--key")?)),
            "--ca" => ca = Some(PathBuf::from(value("--ca")?)),
            "--server-policy" => {
                let spec = value("--server-policy")?;
                policy = Some(
                    spec.parse::<Policy>()
                        .map_err(|e| format!("--server-policy {spec:?}: {e}"))?,
                );
            }
            "--method" => {
                method = match value("--method")?.as_str() {
                    "WhoAmI" => Method::WhoAmI,
                    "Admin" => Method::Admin,
                    other => return Err(format!("unknown method {other:?}\n{USAGE}")),
                };
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            flag if flag.starts_with('-') => {
                return Err(format!("unknown flag {flag}\n{USAGE}"));
            }
            _ if url.is_some() => return Err(format!("more than one URL given\n{USAGE}")),
            _ => url = Some(arg),
        }
    }
    let missing = |what: &str| format!("missing {what}\n{USAGE}");
    Ok(Args {
        cert: cert.ok_or_else(|| missing("--cert"))?,
        key: key.ok_or_else(|| missing("--key"))?,
        ca: ca.ok_or_else(|| missing("--ca"))?,
        policy,
        method,
        url: url.ok_or_else(|| missing("the URL"))?,
    })
}

/// The error and its causes on one line.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

async fn run(args: Args) -> Result<(), String> {
    let mut builder = mtls::Client::builder()
        .identity(&args.cert, &args.key)
        .ca(&args.ca);
    if let Some(policy) = args.policy {
        builder = builder.server_policy(policy);
    }
    let mtls = builder.build().map_err(|e| e.to_string())?;
    let endpoint = mtls_tonic::endpoint(&args.url)
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30));
    let channel = endpoint
        .connect_with_connector(ChannelConnector::new(&mtls))
        .await
        .map_err(|e| format!("cannot connect to {}: {}", args.url, chain(&e)))?;
    let mut client = IdentityClient::new(channel);
    let reply = match args.method {
        Method::WhoAmI => client.who_am_i(WhoAmIRequest {}).await,
        Method::Admin => client.admin(WhoAmIRequest {}).await,
    }
    .map_err(|status| {
        format!(
            "{:?} failed: {:?}: {}",
            args.method,
            status.code(),
            status.message()
        )
    })?
    .into_inner();
    let json = serde_json::json!({
        "subject": reply.subject,
        "common_name": reply.common_name,
        "spiffe_id": reply.spiffe_id,
        "serial": reply.serial,
        "fingerprint_sha256": reply.fingerprint_sha256,
    });
    println!("{json}");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    if std::env::args().skip(1).any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    // Refused handshakes are logged (target `mtls::verify`, field `reason`): show them.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
