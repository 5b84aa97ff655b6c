//! An mTLS HTTPS client on reqwest: presents a client certificate, trusts only the given
//! CA, prints the response's status and body.
//!
//! ```text
//! cargo run --example reqwest_client -- --cert client.crt --key client.key --ca ca.crt \
//!     [--server-policy SPEC] https://localhost:8443/
//! ```
//!
//! `--server-policy` authorizes the server by a policy string, e.g.
//! `spiffe:spiffe://example.org/ns/prod/sa/api` or `dns:api.example.org`.
//! On any failure (bad flags, unreadable or invalid files, a refused connection, an
//! untrusted or unauthorized server) it prints why on stderr and exits with status 2.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use mtls::Policy;
use mtls_reqwest::classify;

const USAGE: &str = "usage: reqwest_client --cert FILE --key FILE --ca FILE \
                     [--server-policy SPEC] [--require-staple] URL\n\
                     --require-staple: the server must staple a verified, good OCSP response";

#[derive(Debug)]
struct Args {
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
    policy: Option<Policy>,
    require_staple: bool,
    url: String,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut cert, mut key, mut ca, mut policy, mut url) = (None, None, None, None, None);
    let mut require_staple = false;
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
            "--require-staple" => require_staple = true,
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
        require_staple,
        url: url.ok_or_else(|| missing("the URL"))?,
    })
}

/// The error and its causes on one line, with the TLS failure explained when there is one.
fn explain(err: &reqwest::Error) -> String {
    let mut text = match err.url() {
        Some(url) => format!("request to {url} failed"),
        None => "request failed".to_owned(),
    };
    if let Some(failure) = classify(err) {
        return format!("{text}: {failure}");
    }
    let mut source = std::error::Error::source(err);
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
    if args.require_staple {
        builder = builder.require_ocsp_staple();
    }
    let mtls = builder.build().map_err(|e| e.to_string())?;
    let http = mtls_reqwest::builder(&mtls)
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let resp = http.get(&args.url).send().await.map_err(|e| explain(&e))?;
    println!("{:?} {}", resp.version(), resp.status());
    let body = resp.text().await.map_err(|e| explain(&e))?;
    println!("{body}");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
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
