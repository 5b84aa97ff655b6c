//! Quickstart: an axum server that requires client certificates, and clients calling it.
//!
//! Run it from the workspace root with `cargo run --example quickstart`. It needs no
//! arguments and no files: it makes a throw-away PKI in a temporary directory, starts an
//! mTLS server on 127.0.0.1 (an ephemeral port), calls it three times and exits:
//!
//! 1. with alice's certificate: allowed, and the server answers with what it saw;
//! 2. without a certificate: refused during the TLS handshake;
//! 3. with mallory's certificate, issued by the same CA but not allowed by the server's
//!    policy: refused during the TLS handshake too.

use std::error::Error;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use mtls::{Client, Policy, Server};
use mtls_axum::{ClientIdentity, MtlsListener, MtlsRouterExt};
use mtls_testing::TestPki;

type BoxError = Box<dyn Error + Send + Sync>;

/// The handler: answers with the client's identity as JSON.
async fn whoami(peer: ClientIdentity) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::to_value(&*peer).unwrap_or_default())
}

#[tokio::main]
async fn main() -> ExitCode {
    // The refused handshake below is logged by the server (target `mtls::verify`, field
    // `reason`) and nowhere else: a subscriber shows it on stderr.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("mtls::verify=info")),
        )
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quickstart failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), BoxError> {
    println!("mtls quickstart: an axum server that requires client certificates\n");

    // 1. A throw-away PKI: a CA, a server certificate for `localhost`, two client
    //    certificates. In production these are your PEM files.
    let pki = TestPki::new();
    let (_, server_files) = pki.server("localhost");
    let (_, alice_files) = pki.client("alice");
    let (_, mallory_files) = pki.client("mallory");
    let ca = pki.ca_file();
    println!("made a throw-away PKI in {}:", pki.dir.path().display());
    for file in [
        &ca,
        &server_files.cert,
        &alice_files.cert,
        &mallory_files.cert,
    ] {
        println!(
            "  {}",
            file.file_name().unwrap_or_default().to_string_lossy()
        );
    }

    // 2. The server: its certificate and key, the CA its clients' certificates come from,
    //    and who is allowed in (checked during the TLS handshake).
    let policy: Policy = "cn:alice".parse()?;
    let server = Server::builder()
        .identity(&server_files.cert, &server_files.key)
        .client_ca(&ca)
        .policy(policy.clone())
        .alpn(mtls::HTTP_ALPN)
        .build()?;
    let app = Router::new().route("/whoami", get(whoami));
    let listener = MtlsListener::bind("127.0.0.1:0", &server).await?;
    let addr = listener.local_addr();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(async move {
        axum::serve(listener, app.into_mtls_service())
            .with_graceful_shutdown(async move {
                let _ = stop_rx.await;
            })
            .await
    });
    println!(
        "\nserver listening on https://localhost:{} (client certificate required; policy: {policy})",
        addr.port()
    );

    // 3. Clients.
    println!("\n1. alice calls GET /whoami with her certificate");
    let alice = client(&ca, Some((&alice_files.cert, &alice_files.key)))?;
    let (status, body) = call(&alice, addr, "/whoami").await?;
    if status != http::StatusCode::OK {
        return Err(format!("expected 200 OK for alice, got {status}: {body}").into());
    }
    let seen: serde_json::Value = serde_json::from_str(&body)?;
    println!("   -> {status}; the server saw this identity:");
    for key in [
        "subject",
        "common_name",
        "issuer",
        "serial",
        "fingerprint_sha256",
        "not_before",
        "not_after",
    ] {
        println!("        {key:<19} {}", seen[key]);
    }

    println!("\n2. a client without a certificate calls GET /whoami");
    let anonymous = client(&ca, None)?;
    expect_refused(call(&anonymous, addr, "/whoami").await)?;

    println!(
        "\n3. mallory calls GET /whoami with a certificate from the same CA, which the policy \
         does not allow"
    );
    let mallory = client(&ca, Some((&mallory_files.cert, &mallory_files.key)))?;
    expect_refused(call(&mallory, addr, "/whoami").await)?;

    // 4. Graceful shutdown.
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(10), serving).await???;
    println!("\nserver stopped; the temporary PKI is deleted. Done.");
    Ok(())
}

fn client(ca: &Path, identity: Option<(&Path, &Path)>) -> Result<Client, mtls::Error> {
    let mut builder = Client::builder().ca(ca);
    if let Some((cert, key)) = identity {
        builder = builder.identity(cert, key);
    }
    builder.build()
}

fn expect_refused(result: Result<(http::StatusCode, String), BoxError>) -> Result<(), BoxError> {
    match result {
        Err(e) => {
            println!("   -> refused: {e}");
            Ok(())
        }
        Ok((status, body)) => Err(format!("expected a refusal, got {status}: {body}").into()),
    }
}

/// One HTTP/1.1 GET over a new mTLS connection, with hyper's low-level client.
async fn call(
    client: &Client,
    addr: SocketAddr,
    path: &str,
) -> Result<(http::StatusCode, String), BoxError> {
    let call = async {
        let tls = client
            .connect(&format!("localhost:{}", addr.port()))
            .await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        let connection = tokio::spawn(connection);
        let request = http::Request::get(path)
            .header(http::header::HOST, "localhost")
            .body(Empty::<Bytes>::new())?;
        // Under TLS 1.3 the server's verdict on the client certificate arrives after the
        // client's handshake is done, so a refusal shows up here, on the first exchange;
        // the connection task holds the TLS alert that says why.
        let response = match sender.send_request(request).await {
            Ok(response) => response,
            Err(e) => {
                let reason = match tokio::time::timeout(Duration::from_secs(2), connection).await {
                    Ok(Ok(Err(conn_error))) => describe(&conn_error),
                    _ => describe(&e),
                };
                return Err(reason.into());
            }
        };
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok::<_, BoxError>((status, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .map_err(|_| "timed out")?
}

/// hyper wraps the TLS alert; show the innermost cause, which names it.
fn describe(e: &hyper::Error) -> String {
    let mut cause: &dyn Error = e;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}
