//! `mtls doctor`: explain a failing mTLS setup.
//!
//! - Without a URL: the preflight of a server configuration (`--cert --key --client-ca
//!   --crl --policy`, the examples' flags) through the library's builders; each problem is
//!   printed as the library's typed error, whose message says how to fix it.
//! - With `https://HOST:PORT`: connects as a client (`--cert --key --ca`) with rustls, a
//!   verifier that records the server's chain and a certificate resolver that records the
//!   server's CertificateRequest (its list of acceptable CA names), and explains what
//!   happened in the words of the README's troubleshooting table.
//!
//! Exit 0 when everything works, 1 when a problem was found.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use x509_parser::prelude::*;

use crate::{CliError, Result};

/// Time allowed for the TCP connection and for the handshake, each.
const TIMEOUT: Duration = Duration::from_secs(10);

/// `mtls doctor [https://HOST:PORT]`.
#[derive(Debug, clap::Args)]
pub(crate) struct DoctorArgs {
    /// A server to connect to (`https://HOST:PORT`); without it, check a server
    /// configuration instead.
    #[arg(value_name = "URL")]
    pub(crate) url: Option<String>,
    /// Our certificate chain (PEM: the leaf first, then its intermediates).
    #[arg(long, value_name = "FILE")]
    pub(crate) cert: Option<PathBuf>,
    /// Our private key.
    #[arg(long, value_name = "FILE")]
    pub(crate) key: Option<PathBuf>,
    /// Our identity as one PKCS#12 file instead of --cert/--key.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["cert", "key"])]
    pub(crate) p12: Option<PathBuf>,
    /// The password of an encrypted key or the PKCS#12 file: the file's first line.
    #[arg(long, value_name = "FILE")]
    pub(crate) password_file: Option<PathBuf>,
    /// With a URL: the CA certificates that verify the server.
    #[arg(long, value_name = "FILE")]
    pub(crate) ca: Option<PathBuf>,
    /// Without a URL: the CA certificates that verify clients.
    #[arg(long, value_name = "FILE")]
    pub(crate) client_ca: Option<PathBuf>,
    /// Without a URL: a CRL file for client certificates (repeatable).
    #[arg(long, value_name = "FILE")]
    pub(crate) crl: Vec<PathBuf>,
    /// Without a URL: a policy string such as `cn:alice` (repeatable: any of them admits).
    #[arg(long, alias = "allow", value_name = "POLICY")]
    pub(crate) policy: Vec<String>,
    /// With a URL: the name to verify the server's certificate for (default: HOST).
    #[arg(long, value_name = "NAME")]
    pub(crate) server_name: Option<String>,
}

pub(crate) fn run(args: &DoctorArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::msg(format!("cannot start the runtime: {e}")))?;
    match &args.url {
        None => runtime.block_on(async { preflight(args) }),
        Some(url) => runtime.block_on(remote(args, url)),
    }
}

/// A finding, printed as `ok:`, `problem:` or `note:`.
fn report(kind: &str, text: &str) {
    println!("{kind}: {text}");
}

fn password(args: &DoctorArgs) -> mtls::Password {
    match &args.password_file {
        Some(path) => mtls::Password::from_file(path.clone()),
        None => mtls::Password::none(),
    }
}

fn has_identity(args: &DoctorArgs) -> bool {
    args.p12.is_some() || (args.cert.is_some() && args.key.is_some())
}

/// Sets our identity on a server or client builder (`None` without one).
macro_rules! with_identity {
    ($builder:expr, $args:expr) => {{
        let builder = $builder;
        match (&$args.p12, &$args.cert, &$args.key) {
            (Some(p12), _, _) => Some(builder.identity_pkcs12(p12.clone(), password($args))),
            (None, Some(cert), Some(key)) => Some(
                builder
                    .identity(cert.clone(), key.clone())
                    .key_password(password($args)),
            ),
            _ => None,
        }
    }};
}

/// Every problem found in a server configuration: the files loaded one by one, then the
/// builder's preflight, which reports every problem of one build (`Error::problems`);
/// duplicates are printed once.
fn server_problems(args: &DoctorArgs) -> Vec<String> {
    let mut problems: Vec<String> = Vec::new();
    let mut add = |p: String| {
        if !problems.contains(&p) {
            problems.push(p);
        }
    };
    let policy = if args.policy.is_empty() {
        add(
            "no --policy: the server would admit any client certificate its CAs verify; \
             give the policy of the clients it serves (e.g. --policy cn:alice), or \
             --policy any to mean that"
                .to_owned(),
        );
        None
    } else {
        match mtls::Policy::parse_any(args.policy.iter().map(String::as_str)) {
            Ok(p) => Some(p),
            Err(e) => {
                add(e.to_string());
                None
            }
        }
    };
    // File by file, so that a problem in one file does not hide one in another.
    let mut ca_ok = false;
    if let Some(ca) = &args.client_ca {
        match mtls::pem::load_certs(ca) {
            Ok(_) => ca_ok = true,
            Err(e) => add(e.to_string()),
        }
    } else {
        add("no --client-ca: a server that verifies clients needs the CA certificates that issue them".to_owned());
    }
    let mut good_crls = Vec::new();
    for crl in &args.crl {
        match mtls::pem::load_crls(crl) {
            Ok(_) => good_crls.push(crl.clone()),
            Err(e) => add(e.to_string()),
        }
    }
    if !has_identity(args) {
        add("no server identity: give --cert FILE --key FILE (or --p12 FILE)".to_owned());
    }
    // Then the builder's checks over the files that loaded (the identity against the
    // CAs, the CRLs' signatures and dates).
    if ca_ok {
        for e in build_problems(args, policy, &good_crls) {
            add(e);
        }
    }
    problems
}

/// The builder's preflight (key matches certificate, EKU, chain, dates, CRL signatures).
fn build_problems(
    args: &DoctorArgs,
    policy: Option<mtls::Policy>,
    crls: &[PathBuf],
) -> Vec<String> {
    let Some(ca) = &args.client_ca else {
        return Vec::new();
    };
    let Some(builder) = with_identity!(mtls::Server::builder(), args) else {
        return Vec::new();
    };
    let mut builder = builder
        .client_ca(ca.clone())
        .policy(policy.unwrap_or_else(mtls::Policy::any_verified));
    for crl in crls {
        builder = builder.crl(crl.clone());
    }
    match builder.build() {
        Ok(_) => Vec::new(),
        // Every problem of the build (`Error::Several`), each with its own message.
        Err(e) => e.problems().iter().map(ToString::to_string).collect(),
    }
}

fn preflight(args: &DoctorArgs) -> Result<()> {
    let problems = server_problems(args);
    if problems.is_empty() {
        report(
            "ok",
            "the configuration builds: the server identity, client CAs, CRLs and policy pass every check of the mtls builders",
        );
        return Ok(());
    }
    for p in &problems {
        report("problem", p);
    }
    Err(CliError::Reported)
}

/// What the handshake showed, recorded by the verifier and the resolver.
#[derive(Debug, Default)]
struct Seen {
    /// The server's chain, leaf first.
    server_chain: Vec<CertificateDer<'static>>,
    /// The error our verification of the server gave.
    server_error: Option<rustls::Error>,
    /// `Some` once the server sent a CertificateRequest: its CA names (DER Names).
    ca_names: Option<Vec<Vec<u8>>>,
}

#[derive(Debug)]
struct Recorder {
    seen: Mutex<Seen>,
    inner: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    key: Option<Arc<CertifiedKey>>,
}

impl Recorder {
    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[derive(Debug)]
struct Verifier(Arc<Recorder>);

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let mut chain = vec![end_entity.clone().into_owned()];
        chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        self.0.seen().server_chain = chain;
        let Some(inner) = &self.0.inner else {
            // No --ca: reported as not verified; the connection goes on to show what the
            // server does with our certificate.
            return Ok(ServerCertVerified::assertion());
        };
        let result =
            inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now);
        if let Err(e) = &result {
            self.0.seen().server_error = Some(e.clone());
        }
        result
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0
            .provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[derive(Debug)]
struct Resolver(Arc<Recorder>);

impl ResolvesClientCert for Resolver {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.0.seen().ca_names = Some(root_hint_subjects.iter().map(|s| s.to_vec()).collect());
        self.0.key.clone()
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A DER Name (with or without its SEQUENCE header) as RFC 4514 text.
fn name_text(der: &[u8]) -> String {
    let parsed = X509Name::from_der(der).ok().map(|(_, n)| n.to_string());
    parsed.unwrap_or_else(|| {
        // rustls hands the DistinguishedName's content (without the outer SEQUENCE).
        let mut wrapped = vec![0x30];
        push_len(&mut wrapped, der.len());
        wrapped.extend_from_slice(der);
        X509Name::from_der(&wrapped)
            .map(|(_, n)| n.to_string())
            .unwrap_or_else(|_| "an unreadable name".to_owned())
    })
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
}

/// The raw DER of a Name, normalized to include the SEQUENCE header.
fn name_der(raw: &[u8]) -> Vec<u8> {
    if X509Name::from_der(raw).is_ok_and(|(rest, _)| rest.is_empty()) {
        raw.to_vec()
    } else {
        let mut wrapped = vec![0x30];
        push_len(&mut wrapped, raw.len());
        wrapped.extend_from_slice(raw);
        wrapped
    }
}

struct Parsed {
    subject: Vec<u8>,
    issuer: Vec<u8>,
    subject_text: String,
    issuer_text: String,
    not_after: String,
    expired: bool,
}

fn parse(der: &[u8]) -> Option<Parsed> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    Some(Parsed {
        subject: cert.subject().as_raw().to_vec(),
        issuer: cert.issuer().as_raw().to_vec(),
        subject_text: cert.subject().to_string(),
        issuer_text: cert.issuer().to_string(),
        not_after: cert.validity().not_after.to_string(),
        expired: cert.validity().not_after < ASN1Time::now(),
    })
}

async fn remote(args: &DoctorArgs, url: &str) -> Result<()> {
    let (host, port) = parse_url(url)?;
    let mut problems = 0usize;
    let mut problem = |text: &str| {
        problems += 1;
        report("problem", text);
    };

    // Our side first, through the library's client builder (its preflight: key matches
    // certificate, dates, EKU).
    if !has_identity(args) {
        report(
            "note",
            "no --cert/--key: connecting without a client certificate",
        );
    }
    if let (Some(builder), Some(ca)) = (with_identity!(mtls::Client::builder(), args), &args.ca)
        && let Err(e) = builder.ca(ca.clone()).build()
    {
        problem(&e.to_string());
    }

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let inner = match &args.ca {
        None => {
            report("note", "no --ca: the server's certificate is not verified");
            None
        }
        Some(ca) => {
            let certs = mtls::pem::load_certs(ca).map_err(|e| CliError::msg(e.to_string()))?;
            let mut roots = RootCertStore::empty();
            for c in &certs {
                let _ = roots.add(c.clone());
            }
            Some(
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| CliError::msg(format!("cannot use {}: {e}", ca.display())))?,
            )
        }
    };
    let (chain, key) = load_identity(args, &provider)?;
    let recorder = Arc::new(Recorder {
        seen: Mutex::new(Seen::default()),
        inner,
        provider: provider.clone(),
        key,
    });
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| CliError::msg(format!("rustls: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Verifier(recorder.clone())))
        .with_client_cert_resolver(Arc::new(Resolver(recorder.clone())));
    let name_text_for_sni = args.server_name.clone().unwrap_or_else(|| host.clone());
    let server_name = ServerName::try_from(name_text_for_sni.clone()).map_err(|_| {
        CliError::usage(format!("{name_text_for_sni:?} is not a valid server name"))
    })?;

    let tcp = connect_tcp(&host, port).await?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let handshake = tokio::time::timeout(TIMEOUT, connector.connect(server_name, tcp)).await;
    let ours: Vec<Parsed> = chain.iter().filter_map(|c| parse(c.as_ref())).collect();
    if let Some(leaf) = ours.first().filter(|leaf| leaf.expired) {
        problem(&format!(
            "our certificate ({}) is expired since {}: issue a new one",
            leaf.subject_text, leaf.not_after
        ));
    }
    let mut stream = match handshake {
        Err(_) => {
            problem(&format!(
                "the TLS handshake did not finish within {} s",
                TIMEOUT.as_secs()
            ));
            return Err(CliError::Reported);
        }
        Ok(Err(e)) => {
            let seen = recorder.seen();
            if let Some(server_error) = &seen.server_error {
                problem(&explain_server_error(
                    server_error,
                    &seen,
                    &name_text_for_sni,
                    args,
                ));
            } else {
                let tls = tls_error(&e);
                problem(&explain_refusal(tls.as_ref(), &e, &seen, &ours, args));
            }
            return Err(CliError::Reported);
        }
        Ok(Ok(stream)) => stream,
    };
    report(
        "ok",
        &format!(
            "TLS handshake with {host}:{port} ({:?}, {:?})",
            stream
                .get_ref()
                .1
                .protocol_version()
                .unwrap_or(rustls::ProtocolVersion::Unknown(0)),
            stream
                .get_ref()
                .1
                .negotiated_cipher_suite()
                .map(|s| s.suite())
                .unwrap_or(rustls::CipherSuite::Unknown(0))
        ),
    );
    if args.ca.is_some() {
        report(
            "ok",
            "the server's certificate is valid for the name and chains to --ca",
        );
    }

    // In TLS 1.3 the server judges our certificate after the client's handshake ends: its
    // verdict comes with the first read (an alert), or, from nginx, as an HTTP 400.
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nUser-Agent: mtls-doctor\r\n\r\n"
    );
    let mut answer = Vec::new();
    let read = tokio::time::timeout(TIMEOUT, async {
        stream.write_all(request.as_bytes()).await?;
        let mut buf = [0u8; 4096];
        while answer.len() < 16 * 1024 {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.len() > 512 {
                break;
            }
        }
        Ok::<(), std::io::Error>(())
    })
    .await;
    let seen = recorder.seen();
    let asked = seen.ca_names.is_some();
    if !asked {
        problem(
            "the server sent no CertificateRequest: it does not ask for a client certificate, so \
             mutual TLS is off on its side (nginx: add `ssl_verify_client on;` and \
             `ssl_client_certificate CA_FILE;`)",
        );
    } else if recorder.key.is_none() {
        problem(
            "the server asked for a client certificate and we have none: pass --cert and --key",
        );
    }
    let refusal = match read {
        Err(_) => Some("the server did not answer within the time limit".to_owned()),
        Ok(Err(e)) => match tls_error(&e) {
            Some(tls) => Some(explain_refusal(Some(&tls), &e, &seen, &ours, args)),
            None if answer.is_empty() => Some(format!(
                "the server closed the connection without an answer ({e}); its log says why"
            )),
            None => None,
        },
        Ok(Ok(())) => None,
    };
    if let Some(text) = refusal {
        problem(&text);
        return Err(CliError::Reported);
    }
    let text = String::from_utf8_lossy(&answer);
    let status_line = text.lines().next().unwrap_or_default().to_owned();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let nginx_cert_error = text.contains("The SSL certificate error")
        || text.contains("No required SSL certificate was sent");
    if nginx_cert_error {
        let what = if text.contains("No required SSL certificate was sent") {
            "No required SSL certificate was sent"
        } else {
            "The SSL certificate error"
        };
        problem(&format!(
            "the server refused our certificate after the handshake (HTTP {status}: \"{what}\"). {}",
            ca_diagnosis(&seen, &ours, args)
        ));
    } else if asked && recorder.key.is_some() && problems == 0 {
        report(
            "ok",
            &format!(
                "the server accepted our client certificate and answered {status_line:?}: mutual TLS works"
            ),
        );
    } else if status != 0 {
        report("note", &format!("the server answered {status_line:?}"));
    }
    if problems == 0 {
        Ok(())
    } else {
        Err(CliError::Reported)
    }
}

fn tls_error(e: &std::io::Error) -> Option<rustls::Error> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .cloned()
}

fn explain_server_error(
    error: &rustls::Error,
    seen: &Seen,
    name: &str,
    args: &DoctorArgs,
) -> String {
    let leaf = seen.server_chain.first().and_then(|c| parse(c.as_ref()));
    let subject = leaf
        .as_ref()
        .map_or_else(|| "its certificate".to_owned(), |l| l.subject_text.clone());
    let ca = args
        .ca
        .as_ref()
        .map_or_else(String::new, |p| p.display().to_string());
    match error {
        rustls::Error::InvalidCertificate(cert_error) => match cert_error {
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                let sans = seen
                    .server_chain
                    .first()
                    .and_then(|c| mtls::PeerIdentity::from_chain(std::slice::from_ref(c)).ok())
                    .map(|id| {
                        let mut names: Vec<String> = id.dns_names().to_vec();
                        names.extend(id.ip_addresses().iter().map(ToString::to_string));
                        names.join(", ")
                    })
                    .unwrap_or_default();
                format!(
                    "the server's certificate does not match the host name {name}: it is for [{sans}] ({subject}); connect by one of those names, or issue the server a certificate with {name} in its subjectAltName"
                )
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => format!(
                "the server's certificate is expired (not after {}): the server must renew {subject}",
                leaf.as_ref().map_or("?", |l| l.not_after.as_str())
            ),
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                format!("the server's certificate is not valid yet ({subject}): check the clocks")
            }
            CertificateError::UnknownIssuer => format!(
                "the server's certificate is from an unknown CA: it is issued by {}, which {ca} does not hold (or the server does not send its intermediate); pass the CA that issued the server's certificate as --ca",
                leaf.as_ref().map_or("?", |l| l.issuer_text.as_str())
            ),
            CertificateError::Revoked => format!("the server's certificate is revoked ({subject})"),
            other => format!("the server's certificate was refused: {other:?} ({subject})"),
        },
        other => format!("the server's certificate was refused: {other}"),
    }
}

fn explain_refusal(
    tls: Option<&rustls::Error>,
    io: &std::io::Error,
    seen: &Seen,
    ours: &[Parsed],
    args: &DoctorArgs,
) -> String {
    match tls {
        Some(rustls::Error::AlertReceived(alert)) => {
            let what = format!("{alert:?}");
            let hint = match alert {
                rustls::AlertDescription::CertificateRequired => {
                    "it wants a client certificate and we sent none. ".to_owned()
                }
                rustls::AlertDescription::CertificateExpired => {
                    "our certificate is expired (or its chain is). ".to_owned()
                }
                rustls::AlertDescription::CertificateRevoked => {
                    "our certificate is revoked. ".to_owned()
                }
                rustls::AlertDescription::AccessDenied => {
                    "our certificate verified but the server's policy does not admit it. "
                        .to_owned()
                }
                _ => String::new(),
            };
            format!(
                "the server refused us with alert {what}: {hint}{}",
                ca_diagnosis(seen, ours, args)
            )
        }
        Some(other) => format!("the TLS handshake failed: {other}"),
        None => format!("the connection failed: {io}"),
    }
}

/// Compares the server's CA names with our chain: which CA it accepts, which issued
/// ours, and whether our chain misses the intermediate between them.
fn ca_diagnosis(seen: &Seen, ours: &[Parsed], args: &DoctorArgs) -> String {
    let Some(names) = &seen.ca_names else {
        return String::new();
    };
    let Some(top) = ours.last() else {
        return String::new();
    };
    let accepted: Vec<Vec<u8>> = names.iter().map(|n| name_der(n)).collect();
    if accepted.is_empty() {
        return "The server sent no CA names, so the CA it trusts is unknown here; its log says why it refused.".to_owned();
    }
    let list = names
        .iter()
        .map(|n| name_text(n))
        .collect::<Vec<_>>()
        .join("; ");
    if accepted.contains(&top.issuer) || ours.iter().any(|c| accepted.contains(&c.subject)) {
        return format!(
            "The server accepts these CAs: {list}, and our chain leads to one of them; its log says why it refused (expired, revoked, wrong EKU, or not admitted)."
        );
    }
    // Is our top certificate's issuer an intermediate that leads to an accepted CA? Look
    // for it in --ca and in the server's own chain.
    let mut known: Vec<Parsed> = seen
        .server_chain
        .iter()
        .filter_map(|c| parse(c.as_ref()))
        .collect();
    if let Some(ca) = &args.ca
        && let Ok(certs) = mtls::pem::load_certs(ca)
    {
        known.extend(certs.iter().filter_map(|c| parse(c.as_ref())));
    }
    if let Some(intermediate) = known
        .iter()
        .find(|k| k.subject == top.issuer && k.subject != k.issuer && accepted.contains(&k.issuer))
    {
        return format!(
            "The server accepts these CAs: {list}. Our certificate is issued by {}, an intermediate under {}: our chain misses the intermediate; append {} after the leaf in --cert (cat leaf.crt intermediate.crt > chain.crt)",
            top.issuer_text, intermediate.issuer_text, intermediate.subject_text
        );
    }
    format!(
        "The server accepts these CAs: {list}, and our certificate is from another CA ({}): get a certificate from one of those, or make the server trust ours (nginx: ssl_client_certificate); if {} is an intermediate under one of them, our chain misses the intermediate",
        top.issuer_text, top.issuer_text
    )
}

type LoadedIdentity = (Vec<CertificateDer<'static>>, Option<Arc<CertifiedKey>>);

fn load_identity(
    args: &DoctorArgs,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<LoadedIdentity> {
    let password = password(args);
    let (chain, key) = match (&args.p12, &args.cert, &args.key) {
        (Some(p12), _, _) => {
            let bundle =
                mtls::pkcs12::load(p12, &password).map_err(|e| CliError::msg(e.to_string()))?;
            let Some(key) = bundle.key else {
                return Err(CliError::msg(format!(
                    "{} holds no private key",
                    p12.display()
                )));
            };
            (bundle.certs, key)
        }
        (None, Some(cert), Some(key)) => (
            mtls::pem::load_certs(cert).map_err(|e| CliError::msg(e.to_string()))?,
            mtls::pem::load_key_with_password(key, &password)
                .map_err(|e| CliError::msg(e.to_string()))?,
        ),
        (None, Some(_), None) | (None, None, Some(_)) => {
            return Err(CliError::usage("--cert and --key go together".to_owned()));
        }
        (None, None, None) => return Ok((Vec::new(), None)),
    };
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| CliError::msg(format!("rustls cannot use our key: {e}")))?;
    let certified = CertifiedKey::new(chain.clone(), signing);
    Ok((chain, Some(Arc::new(certified))))
}

fn parse_url(url: &str) -> Result<(String, u16)> {
    let bad = || {
        CliError::usage(format!(
            "{url:?} is not an https://HOST:PORT URL (a client check connects to a server; without a URL, doctor checks a server configuration)"
        ))
    };
    let rest = url.strip_prefix("https://").ok_or_else(bad)?;
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, p) = v6.split_once(']').ok_or_else(bad)?;
        (h.to_owned(), p.strip_prefix(':').unwrap_or("443"))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p),
            None => (authority.to_owned(), "443"),
        }
    };
    if host.is_empty() {
        return Err(bad());
    }
    let port: u16 = port.parse().map_err(|_| bad())?;
    Ok((host, port))
}

async fn connect_tcp(host: &str, port: u16) -> Result<tokio::net::TcpStream> {
    let addrs: Vec<SocketAddr> =
        tokio::time::timeout(TIMEOUT, tokio::net::lookup_host((host, port)))
            .await
            .map_err(|_| CliError::msg(format!("cannot resolve {host}: timed out")))?
            .map_err(|e| CliError::msg(format!("cannot resolve {host}: {e}")))?
            .collect();
    let mut last = None;
    for addr in addrs {
        match tokio::time::timeout(TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => last = Some(format!("{addr}: {e}")),
            Err(_) => last = Some(format!("{addr}: timed out")),
        }
    }
    Err(CliError::msg(format!(
        "cannot connect to {host}:{port}: {}",
        last.unwrap_or_else(|| "no address".to_owned())
    )))
}
