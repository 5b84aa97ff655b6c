//! `TraceIdentity` over real TLS: an event logged by the handler carries the client's
//! subject, or says it is anonymous. Its own test binary (one thread-local subscriber).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::convert::Infallible;
use std::io::Write;
use std::sync::{Arc, Mutex};

use http::{Request, Response};
use hyper::body::Incoming;
use mtls_hyper::{Connector, HttpServer, TraceIdentity};
use support::{Fixture, get, http_client, listener, url};

#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn handler(_req: Request<Incoming>) -> Result<Response<String>, Infallible> {
    tracing::info!("handling the request");
    Ok(Response::new("ok".to_owned()))
}

#[test]
fn the_handler_logs_inside_a_span_naming_the_client() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let fx = Fixture::new();
        let listener = listener(&fx.optional_server()).await;
        let addr = listener.local_addr();
        let service = TraceIdentity::new(hyper::service::service_fn(handler));
        tokio::spawn(HttpServer::new(listener).serve(service));
        for client in [fx.client("alice"), fx.client_builder().build().unwrap()] {
            let (parts, body) = get(&http_client(Connector::new(&client)), url(addr, "/"))
                .await
                .unwrap();
            assert_eq!((parts.status.as_u16(), body.as_str()), (200, "ok"));
        }
    });
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("handling the request"))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains("mtls.peer{peer.subject=CN=alice"),
        "{text}"
    );
    assert!(lines[0].contains("peer.serial="), "{text}");
    assert!(
        lines[1].contains("mtls.peer{peer.anonymous=true}"),
        "{text}"
    );
}
