//! The plain-HTTP client that fetches CRLs and OCSP responses (feature `fetch`).
//!
//! CRL distribution points and OCSP responders are `http://` by convention (RFC 5280
//! §4.2.1.13, RFC 6960 appendix A): the data is signed, so TLS adds nothing, and a TLS
//! fetch to check a TLS peer invites loops. So this client speaks plain HTTP/1.1 only
//! and refuses other schemes; bodies are capped and every request has a deadline.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Largest body accepted (a CRL of a big CA is a few MiB).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Why a fetch failed; printed in logs.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("{url}: only http:// URLs are fetched (the data is signed; use the http:// URL)")]
    Scheme { url: String },
    #[error("{url}: not a valid URL: {reason}")]
    Url { url: String, reason: String },
    #[error("{url}: no answer within {0:?}", .timeout)]
    Timeout { url: String, timeout: Duration },
    #[error("{url}: {reason}")]
    Failed { url: String, reason: String },
    #[error("{url}: the server answered HTTP {status}")]
    Status { url: String, status: u16 },
}

/// A shared HTTP client.
#[derive(Clone, Debug)]
pub(crate) struct Fetcher {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for Fetcher {
    fn default() -> Self {
        let mut connector = HttpConnector::new();
        connector.enforce_http(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }
}

impl Fetcher {
    /// GETs `url` within `timeout`.
    pub(crate) async fn get(&self, url: &str, timeout: Duration) -> Result<Bytes, FetchError> {
        self.send(url, None, timeout).await
    }

    /// POSTs `body` with `content_type` to `url` within `timeout`.
    pub(crate) async fn post(
        &self,
        url: &str,
        content_type: &'static str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Bytes, FetchError> {
        self.send(url, Some((content_type, body)), timeout).await
    }

    async fn send(
        &self,
        url: &str,
        body: Option<(&'static str, Vec<u8>)>,
        timeout: Duration,
    ) -> Result<Bytes, FetchError> {
        if !url.starts_with("http://") {
            return Err(FetchError::Scheme { url: url.into() });
        }
        let uri: http::Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| FetchError::Url {
                url: url.into(),
                reason: e.to_string(),
            })?;
        let builder = http::Request::builder().uri(uri);
        let request = match body {
            Some((content_type, body)) => builder
                .method(http::Method::POST)
                .header(http::header::CONTENT_TYPE, content_type)
                .body(Full::new(Bytes::from(body))),
            None => builder
                .method(http::Method::GET)
                .body(Full::new(Bytes::new())),
        }
        .map_err(|e| FetchError::Url {
            url: url.into(),
            reason: e.to_string(),
        })?;
        let failed = |e: &dyn std::fmt::Display| FetchError::Failed {
            url: url.into(),
            reason: e.to_string(),
        };
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| failed(&e))?;
            let status = response.status();
            if !status.is_success() {
                return Err(FetchError::Status {
                    url: url.into(),
                    status: status.as_u16(),
                });
            }
            let body = Limited::new(response.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| failed(&e))?;
            Ok(body.to_bytes())
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| FetchError::Timeout {
                url: url.into(),
                timeout,
            })?
    }
}
