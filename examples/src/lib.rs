//! The runnable examples of the `mtls` crates live beside this file (`cargo run --example
//! quickstart`). This library only compiles the code blocks of the workspace README, so the
//! README's examples cannot drift from the API.

#![doc = include_str!("../../README.md")]

pub mod server_args {
    //! The command line the server examples share (`axum_server`, `grpc_server`): the same
    //! flags, the same checks and messages.

    use std::path::PathBuf;

    use mtls::Policy;

    /// The parsed command line of a server example.
    #[derive(Debug)]
    pub struct ServerArgs {
        pub listen: String,
        /// `--cert FILE --key FILE`, or `--p12 FILE`.
        pub identity: IdentityArgs,
        /// `--password-file FILE`: the password of an encrypted key or of the `.p12`.
        pub password_file: Option<PathBuf>,
        pub client_cas: Vec<PathBuf>,
        pub crls: Vec<PathBuf>,
        pub policy: Policy,
        pub optional_client_auth: bool,
        pub admin_cn: String,
        pub watch: bool,
        /// `--metrics-listen ADDR`: serve Prometheus metrics and `/healthz` there.
        pub metrics_listen: Option<String>,
        /// `--forwarded FORMAT[:HEADER]` with `--trusted-proxy` / `--trusted-proxy-net`:
        /// take the client's identity from a trusted TLS-terminating proxy.
        pub forwarded: Option<mtls::forwarded::Forwarding>,
        /// `--ocsp`, `--ocsp-fail`, `--ocsp-responder`, `--crl-url`, `--crl-from-dp`,
        /// `--crl-cache-dir`, `--staple`: fresh revocation data.
        pub revocation: RevocationArgs,
    }

    /// The revocation flags (see [`mtls::revocation`]).
    #[derive(Debug, Default)]
    pub struct RevocationArgs {
        /// `--ocsp leaf|chain`.
        pub ocsp: Option<mtls::revocation::OcspMode>,
        /// `--ocsp-fail soft|hard` (default soft).
        pub ocsp_fail: mtls::revocation::OcspFailure,
        /// `--ocsp-responder URL`: instead of each certificate's AIA.
        pub ocsp_responder: Option<String>,
        /// `--crl-url URL`, repeatable.
        pub crl_urls: Vec<String>,
        /// `--crl-from-dp`.
        pub crl_from_dp: bool,
        /// `--crl-cache-dir DIR` (default `.mtls-crl-cache`).
        pub crl_cache_dir: Option<PathBuf>,
        /// `--staple`.
        pub staple: bool,
    }

    impl RevocationArgs {
        /// Applies the flags to a server builder.
        pub fn apply(&self, mut builder: mtls::ServerBuilder) -> mtls::ServerBuilder {
            if let Some(mode) = self.ocsp {
                builder = builder.ocsp(mode).ocsp_failure(self.ocsp_fail);
                if let Some(url) = &self.ocsp_responder {
                    builder = builder.ocsp_responder(url);
                }
            }
            for url in &self.crl_urls {
                builder = builder.crl_url(url);
            }
            if self.crl_from_dp {
                builder = builder.crl_from_distribution_points();
            }
            if !self.crl_urls.is_empty() || self.crl_from_dp {
                let dir = self
                    .crl_cache_dir
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(".mtls-crl-cache"));
                builder = builder.crl_cache_dir(dir);
            }
            if self.staple {
                builder = builder.staple_ocsp(None);
            }
            builder
        }
    }

    /// Where the server's identity comes from.
    #[derive(Debug, Clone)]
    pub enum IdentityArgs {
        /// `--cert FILE --key FILE` (the key may be encrypted: `--password-file`).
        Pem { cert: PathBuf, key: PathBuf },
        /// `--p12 FILE`: key and chain in one PKCS#12 file.
        Pkcs12(PathBuf),
    }

    impl ServerArgs {
        /// Gives the builder the identity of `--cert/--key` or `--p12`, with the password
        /// of `--password-file`.
        pub fn apply_identity(&self, builder: mtls::ServerBuilder) -> mtls::ServerBuilder {
            let password = self
                .password_file
                .as_ref()
                .map_or_else(mtls::Password::none, mtls::Password::from_file);
            match &self.identity {
                IdentityArgs::Pem { cert, key } => {
                    builder.identity(cert, key).key_password(password)
                }
                IdentityArgs::Pkcs12(p12) => builder.identity_pkcs12(p12, password),
            }
        }
    }

    #[derive(Debug)]
    pub enum Parsed {
        /// Run with these arguments.
        Run(Box<ServerArgs>),
        /// `-h` / `--help`.
        Help,
    }

    /// Parses a server example's flags; `listen_example` is the address shown when
    /// `--listen` lacks a value.
    pub fn parse_server_args(
        args: impl IntoIterator<Item = String>,
        listen_example: &str,
    ) -> Result<Parsed, String> {
        let mut listen = None;
        let mut cert = None;
        let mut key = None;
        let mut p12 = None;
        let mut password_file = None;
        let mut client_cas = Vec::new();
        let mut crls = Vec::new();
        let mut allow = Vec::new();
        let mut allow_any = false;
        let mut optional_client_auth = false;
        let mut admin_cn = None;
        let mut watch = false;
        let mut metrics_listen = None;
        let mut forwarded = None;
        let mut trusted_proxy = None;
        let mut trusted_nets = Vec::new();
        let mut revocation = RevocationArgs::default();
        let mut ocsp_fail = None;

        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            // Accept both `--flag value` and `--flag=value`.
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
                _ => (arg.clone(), None),
            };
            let mut value = |what: &str| -> Result<String, String> {
                match inline.clone().or_else(|| args.next()) {
                    Some(v) if !v.is_empty() => Ok(v),
                    _ => Err(format!("{flag} needs a value ({what})")),
                }
            };
            match flag.as_str() {
                "-h" | "--help" => return Ok(Parsed::Help),
                "--listen" => {
                    listen = Some(value(&format!("an address such as {listen_example}"))?)
                }
                "--cert" => cert = Some(PathBuf::from(value("a PEM file")?)),
                "--key" => key = Some(PathBuf::from(value("a PEM file")?)),
                "--p12" => p12 = Some(PathBuf::from(value("a PKCS#12 file")?)),
                "--password-file" => {
                    password_file = Some(PathBuf::from(value("a file holding the password")?))
                }
                "--client-ca" => client_cas.push(PathBuf::from(value("a PEM file")?)),
                "--crl" => crls.push(PathBuf::from(value("a PEM or DER file")?)),
                "--allow" => allow.push(value("a policy such as cn:alice")?),
                "--admin-cn" => admin_cn = Some(value("a common name")?),
                "--metrics-listen" => {
                    metrics_listen = Some(value("an address such as 127.0.0.1:9464")?)
                }
                "--forwarded" => forwarded = Some(value("a format such as nginx or xfcc")?),
                "--trusted-proxy" => trusted_proxy = Some(value("a policy such as cn:edge-proxy")?),
                "--trusted-proxy-net" => trusted_nets.push(value("a network such as 10.0.0.0/8")?),
                "--ocsp" => {
                    revocation.ocsp = Some(match value("leaf or chain")?.as_str() {
                        "leaf" => mtls::revocation::OcspMode::Leaf,
                        "chain" => mtls::revocation::OcspMode::Chain,
                        other => return Err(format!("--ocsp {other}: expected leaf or chain")),
                    })
                }
                "--ocsp-fail" => {
                    ocsp_fail = Some(match value("soft or hard")?.as_str() {
                        "soft" => mtls::revocation::OcspFailure::Soft,
                        "hard" => mtls::revocation::OcspFailure::Hard,
                        other => return Err(format!("--ocsp-fail {other}: expected soft or hard")),
                    })
                }
                "--ocsp-responder" => revocation.ocsp_responder = Some(value("an http:// URL")?),
                "--crl-url" => revocation.crl_urls.push(value("an http:// URL")?),
                "--crl-cache-dir" => {
                    revocation.crl_cache_dir = Some(PathBuf::from(value("a directory")?))
                }
                "--crl-from-dp" | "--staple" if inline.is_some() => {
                    return Err(format!("{flag} takes no value"));
                }
                "--crl-from-dp" => revocation.crl_from_dp = true,
                "--staple" => revocation.staple = true,
                "--allow-any" | "--optional-client-auth" | "--watch" if inline.is_some() => {
                    return Err(format!("{flag} takes no value"));
                }
                "--allow-any" => allow_any = true,
                "--optional-client-auth" => optional_client_auth = true,
                "--watch" => watch = true,
                other if other.starts_with('-') => return Err(format!("unknown flag `{other}`")),
                other => return Err(format!("unexpected argument `{other}`")),
            }
        }

        let listen = listen.ok_or("--listen ADDR is required")?;
        let identity = match (cert, key, p12) {
            (None, None, Some(p12)) => IdentityArgs::Pkcs12(p12),
            (_, _, Some(_)) => {
                return Err("--p12 FILE replaces --cert and --key: give one or the other".into());
            }
            (cert, key, None) => IdentityArgs::Pem {
                cert: cert
                    .ok_or("--cert FILE is required (the server's certificate), or --p12 FILE")?,
                key: key.ok_or("--key FILE is required (the server's private key)")?,
            },
        };
        if client_cas.is_empty() {
            return Err(
                "--client-ca FILE is required (the CA that issues client certificates)".into(),
            );
        }
        let policy = match (allow.is_empty(), allow_any) {
            (true, false) => {
                return Err(
                    "say which clients may connect: --allow SPEC (e.g. --allow cn:alice, \
                            repeatable) or --allow-any for every client with a certificate from \
                            a --client-ca; there is no default, so that admitting everyone is a \
                            deliberate choice"
                        .into(),
                );
            }
            (false, true) => {
                return Err(
                    "--allow and --allow-any exclude each other: --allow-any already \
                            admits every client certificate from a --client-ca"
                        .into(),
                );
            }
            (true, true) => Policy::any_verified(),
            (false, false) => {
                Policy::parse_any(&allow).map_err(|e| format!("bad --allow value: {e}"))?
            }
        };
        let admin_cn = admin_cn.unwrap_or_else(|| "admin".to_owned());
        let forwarded = forwarding(forwarded, trusted_proxy, trusted_nets)?;
        if revocation.ocsp.is_none() && (ocsp_fail.is_some() || revocation.ocsp_responder.is_some())
        {
            return Err("--ocsp-fail and --ocsp-responder go with --ocsp leaf|chain".into());
        }
        revocation.ocsp_fail = ocsp_fail.unwrap_or_default();
        if revocation.crl_cache_dir.is_some()
            && revocation.crl_urls.is_empty()
            && !revocation.crl_from_dp
        {
            return Err("--crl-cache-dir goes with --crl-url or --crl-from-dp".into());
        }
        Ok(Parsed::Run(Box::new(ServerArgs {
            listen,
            identity,
            password_file,
            client_cas,
            crls,
            policy,
            optional_client_auth,
            admin_cn,
            watch,
            metrics_listen,
            forwarded,
            revocation,
        })))
    }

    /// `--forwarded FORMAT[:HEADER]` with its trust flags.
    fn forwarding(
        format: Option<String>,
        proxy: Option<String>,
        nets: Vec<String>,
    ) -> Result<Option<mtls::forwarded::Forwarding>, String> {
        use mtls::forwarded::{Forwarding, HeaderFormat, TrustedProxy};
        let Some(format) = format else {
            if proxy.is_some() || !nets.is_empty() {
                return Err("--trusted-proxy and --trusted-proxy-net go with --forwarded".into());
            }
            return Ok(None);
        };
        let (name, header) = match format.split_once(':') {
            Some((name, header)) => (name, Some(header)),
            None => (format.as_str(), None),
        };
        let Some(format) = HeaderFormat::from_name(name) else {
            let known: Vec<&str> = HeaderFormat::ALL.iter().map(|f| f.name()).collect();
            return Err(format!(
                "unknown --forwarded format `{name}`; one of: {}",
                known.join(", ")
            ));
        };
        let trusted = match (proxy, nets.is_empty()) {
            (Some(_), false) => {
                return Err("give --trusted-proxy or --trusted-proxy-net, not both".into());
            }
            (Some(policy), true) => TrustedProxy::Policy(
                Policy::parse_any([policy.as_str()])
                    .map_err(|e| format!("bad --trusted-proxy value: {e}"))?,
            ),
            (None, false) => TrustedProxy::Networks(
                nets.iter()
                    .map(|n| {
                        n.parse()
                            .map_err(|e| format!("bad --trusted-proxy-net value `{n}`: {e}"))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            (None, true) => {
                return Err(
                    "--forwarded needs the proxy it trusts: --trusted-proxy POLICY (the proxy's \
                     own certificate, e.g. cn:edge-proxy) or --trusted-proxy-net CIDR"
                        .into(),
                );
            }
        };
        let mut forwarding = Forwarding::new(format, trusted);
        if let Some(header) = header {
            forwarding = forwarding.header(header);
        }
        Ok(Some(forwarding))
    }
}

pub mod ops {
    //! What the server examples serve for operators: Prometheus metrics
    //! (`--metrics-listen`) and the health of the certificates in force (`/healthz`).

    use std::net::SocketAddr;
    use std::time::Duration;

    use axum::Router;
    use axum::http::{StatusCode, header};
    use axum::response::{IntoResponse, Response};
    use axum::routing::get;
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

    /// Handshake-duration buckets, in seconds: loopback handshakes take about a
    /// millisecond, slow clients seconds.
    const BUCKETS: [f64; 12] = [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    ];

    /// A bound plain-HTTP endpoint for `/metrics` and `/healthz`, with the process's
    /// Prometheus recorder installed.
    #[derive(Debug)]
    pub struct MetricsEndpoint {
        tcp: tokio::net::TcpListener,
        handle: PrometheusHandle,
    }

    impl MetricsEndpoint {
        /// Installs the Prometheus recorder as the global one and binds `addr`. Call it
        /// before building the server, so the server's first report is recorded.
        ///
        /// # Errors
        /// A message for the command line.
        pub async fn bind(addr: &str) -> Result<Self, String> {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("mtls_handshake_duration_seconds".into()),
                    &BUCKETS,
                )
                .map_err(|e| format!("cannot set up the metrics: {e}"))?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder)
                .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
            let tcp = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr} for metrics: {e}"))?;
            Ok(Self { tcp, handle })
        }

        /// The bound address.
        pub fn local_addr(&self) -> Option<SocketAddr> {
            self.tcp.local_addr().ok()
        }

        /// Serves `GET /metrics` (Prometheus text format) and `GET /healthz` (see
        /// [`healthz`]) until the future is dropped.
        pub async fn serve(self, material: mtls::ReloadHandle) -> std::io::Result<()> {
            let handle = self.handle.clone();
            // The recorder keeps histogram samples until upkeep folds them in.
            let upkeep = self.handle.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    upkeep.run_upkeep();
                }
            });
            let app = Router::new()
                .route(
                    "/metrics",
                    get(move || {
                        let text = handle.render();
                        async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text) }
                    }),
                )
                .route("/healthz", get(move || async move { healthz(&material) }));
            axum::serve(self.tcp, app).await
        }
    }

    /// Prints `listening on ADDR`, then `metrics on ADDR` when there is an endpoint, on
    /// stdout (what scripts and tests wait for).
    ///
    /// # Errors
    /// When stdout is closed.
    pub fn announce(addr: SocketAddr, metrics: Option<&MetricsEndpoint>) -> std::io::Result<()> {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {addr}")?;
        if let Some(metrics_addr) = metrics.and_then(MetricsEndpoint::local_addr) {
            writeln!(stdout, "metrics on {metrics_addr}")?;
        }
        stdout.flush()
    }

    /// Serves `endpoint` in a task, if there is one, logging why it stopped.
    pub fn spawn_metrics(endpoint: Option<MetricsEndpoint>, material: mtls::ReloadHandle) {
        if let Some(endpoint) = endpoint {
            tokio::spawn(async move {
                if let Err(e) = endpoint.serve(material).await {
                    tracing::error!(error = %e, "the metrics endpoint stopped");
                }
            });
        }
    }

    /// `GET /healthz`: [`mtls::Health`] as JSON; 200 when it is ok, 503 when an operator
    /// is needed (the last reload failed, something in force expired, a CRL is stale).
    pub fn healthz(material: &mtls::ReloadHandle) -> Response {
        let health = material.health();
        let status = if health.ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        (status, axum::Json(health)).into_response()
    }
}
