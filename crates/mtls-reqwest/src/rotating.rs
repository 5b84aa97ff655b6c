//! A reqwest client that moves to a fresh connection pool after each reload.

use std::fmt;
use std::sync::{Arc, Mutex};

use reqwest::{IntoUrl, Method, RequestBuilder};

use crate::current_builder;

type Configure = dyn Fn(reqwest::ClientBuilder) -> reqwest::ClientBuilder + Send + Sync;

/// A `reqwest::Client` that never reuses a connection opened under an older certificate.
///
/// reqwest keeps connections in a pool that its public API cannot evict one by one, so
/// this type keeps one `reqwest::Client` per reload generation: the first request after a
/// reload (of any file; see [`ReloadHandle::generation`](mtls::ReloadHandle::generation))
/// builds a new `reqwest::Client` over the `mtls::Client`'s config of the new generation
/// ([`mtls::Client::current_config`]), and later requests use it. Within a generation
/// its connections resume TLS sessions; across generations they never do, so a session
/// made under an older certificate or older trust is never offered again.
///
/// - Requests already running on the old pool are not interrupted.
/// - Idle connections of the old pool close when the last clone of the old
///   `reqwest::Client` is dropped (clones obtained from [`client`](Self::client) keep it
///   alive).
/// - Settings applied by the `configure` closure are applied to each new client; state
///   that lives inside a `reqwest::Client` (e.g. a cookie store) starts empty after a
///   reload.
///
/// Cheap to clone; clones share the current client.
///
/// ALPN as for [`builder`](crate::builder): the `mtls::Client`'s, else
/// [`mtls::HTTP_ALPN`].
///
/// ```no_run
/// use mtls_reqwest::RotatingClient;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let mtls = mtls::Client::builder()
///     .identity("client.crt", "client.key")
///     .ca("ca.crt")
///     .build()?;
/// let _watch = mtls.handle().watch()?;
/// let http = RotatingClient::new(&mtls, |b| b.timeout(std::time::Duration::from_secs(10)))?;
/// let status = http.get("https://api.example.org/").send().await?.status();
/// # let _ = status; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RotatingClient {
    inner: Arc<Inner>,
}

struct Inner {
    mtls: mtls::Client,
    configure: Box<Configure>,
    current: Mutex<Current>,
}

struct Current {
    generation: u64,
    client: reqwest::Client,
}

impl fmt::Debug for RotatingClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RotatingClient")
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

impl RotatingClient {
    /// A rotating client over `mtls`. `configure` adds your settings to each
    /// `reqwest::ClientBuilder` it builds (one now, one after each reload).
    ///
    /// # Errors
    /// When reqwest refuses the builder (e.g. an invalid setting made by `configure`).
    pub fn new<F>(mtls: &mtls::Client, configure: F) -> Result<Self, reqwest::Error>
    where
        F: Fn(reqwest::ClientBuilder) -> reqwest::ClientBuilder + Send + Sync + 'static,
    {
        // Read the generation before building: if a reload lands in between, the next
        // request builds again rather than keeping a pool tagged too new.
        let generation = mtls.handle().generation();
        let client = configure(current_builder(mtls)).build()?;
        Ok(Self {
            inner: Arc::new(Inner {
                mtls: mtls.clone(),
                configure: Box::new(configure),
                current: Mutex::new(Current { generation, client }),
            }),
        })
    }

    /// The `reqwest::Client` for the generation in force, building it if a reload
    /// happened since the last call.
    ///
    /// If reqwest refuses to build the new client (it accepted the same settings before,
    /// so this is not expected), the previous client is kept, the error is logged through
    /// `tracing` (target `mtls_reqwest`), and the next call tries again.
    pub fn client(&self) -> reqwest::Client {
        let generation = self.inner.mtls.handle().generation();
        let mut current = self.inner.current.lock().unwrap_or_else(|p| p.into_inner());
        if current.generation != generation {
            match (self.inner.configure)(current_builder(&self.inner.mtls)).build() {
                Ok(client) => {
                    tracing::info!(
                        target: "mtls_reqwest",
                        from = current.generation,
                        to = generation,
                        "client material reloaded: new requests use a fresh connection pool"
                    );
                    *current = Current { generation, client };
                }
                Err(error) => tracing::error!(
                    target: "mtls_reqwest",
                    %error,
                    "cannot build a reqwest client for the reloaded material; \
                     keeping the previous connection pool"
                ),
            }
        }
        current.client.clone()
    }

    /// The reload generation of the current pool.
    pub fn generation(&self) -> u64 {
        self.inner
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .generation
    }

    /// The `mtls::Client` it was made from (e.g. for its
    /// [reload handle](mtls::Client::handle)).
    pub fn mtls(&self) -> &mtls::Client {
        &self.inner.mtls
    }

    /// Starts a request on the [current client](Self::client).
    pub fn request<U: IntoUrl>(&self, method: Method, url: U) -> RequestBuilder {
        self.client().request(method, url)
    }

    /// Starts a `GET` request on the [current client](Self::client).
    pub fn get<U: IntoUrl>(&self, url: U) -> RequestBuilder {
        self.client().get(url)
    }

    /// Starts a `POST` request on the [current client](Self::client).
    pub fn post<U: IntoUrl>(&self, url: U) -> RequestBuilder {
        self.client().post(url)
    }
}
