//! An mTLS HTTPS client on reqwest: presents a client certificate, trusts only the given
//! CA, prints the response's status and body.
//!
//! ```text
//! cargo run --example reqwest_client -- --cert client.crt --key client.key --ca ca.crt \
//!     [--server-policy SPEC] https://localhost:8443/
//! cargo run --example reqwest_client -- --p12 client1.p12 --password-file p12.pass \
//!     --ca ca.crt https://localhost:8443/
//! ```
//!
//! `--p12 FILE` takes the client's key and certificate from one PKCS#12 file in place of
//! `--cert`/`--key`; `--password-file FILE` gives the password of an encrypted `--key` or
//! of the `.p12` (the file's first line; without it a `.p12` is read with an empty
//! password).
//! `--server-policy` authorizes the server by a policy string, e.g.
//! `spiffe:spiffe://example.org/ns/prod/sa/api` or `dns:api.example.org`.
//! On any failure (bad flags, unreadable or invalid files, a refused connection, an
//! untrusted or unauthorized server) it prints why on stderr and exits with status 2.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use mtls::Policy;
use mtls_reqwest::classify;

const USAGE: &str = "usage: reqwest_client (--cert FILE --key FILE | --p12 FILE) \
                     [--password-file FILE] --ca FILE [--server-policy SPEC] [--require-staple] \
                     URL\n\
                     --require-staple: the server must staple a verified, good OCSP response";

#[derive(Debug)]
enum Identity {
    Pem { cert: PathBuf, key: PathBuf },
    Pkcs12(PathBuf),
}

#[derive(Debug)]
struct Args {
    identity: Identity,
    password_file: Option<PathBuf>,
    ca: PathBuf,
    policy: Option<Policy>,
    require_staple: bool,
    url: String,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut cert, mut key, mut ca, mut policy, mut url) = (None, None, None, None, None);
    let (mut p12, mut password_file) = (None, None);
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
            "--p12" => p12 = Some(PathBuf::from(value("--p12")?)),
            "--password-file" => password_file = Some(PathBuf::from(value("--password-file")?)),
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
    let identity = match (cert, key, p12) {
        (None, None, Some(p12)) => Identity::Pkcs12(p12),
        (_, _, Some(_)) => {
            return Err(format!(
                "--p12 FILE replaces --cert and --key: give one or the other\n{USAGE}"
            ));
        }
        (cert, key, None) => Identity::Pem {
            cert: cert.ok_or_else(|| missing("--cert (or --p12)"))?,
            key: key.ok_or_else(|| missing("--key"))?,
        },
    };
    Ok(Args {
        identity,
        password_file,
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
    let password = args
        .password_file
        .as_ref()
        .map_or_else(mtls::Password::none, mtls::Password::from_file);
    let builder = match &args.identity {
        Identity::Pem { cert, key } => mtls::Client::builder()
            .identity(cert, key)
            .key_password(password),
        Identity::Pkcs12(p12) => mtls::Client::builder().identity_pkcs12(p12, password),
    };
    let mut builder = builder.ca(&args.ca);
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
