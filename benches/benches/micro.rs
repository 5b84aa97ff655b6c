//! Criterion micro-benches: PEM loading, identity extraction, policy evaluation, reload,
//! and an in-memory mTLS handshake for scale.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use mtls::rustls;
use mtls::{Client, PeerIdentity, Policy, Server};
use mtls_bench::handshake_in_memory;
use mtls_testing::TestPki;

fn fixtures() -> (
    TestPki,
    mtls_testing::LeafFiles,
    mtls_testing::LeafFiles,
    PeerIdentity,
) {
    let pki = TestPki::new();
    let (_, server) = pki.server("localhost");
    let leaf = pki
        .intermediate
        .leaf("svc-a")
        .dns("svc-a.svc.local")
        .uri("spiffe://prod.example.org/ns/default/sa/svc-a")
        .organization("Example")
        .org_unit("backend")
        .client()
        .build();
    let client = leaf.write(pki.dir.path(), "svc-a");
    let chain = mtls::pem::load_certs(&client.cert).unwrap();
    let id = PeerIdentity::from_chain(&chain).unwrap();
    (pki, server, client, id)
}

fn pem_loading(c: &mut Criterion) {
    let (_pki, server, _, _) = fixtures();
    c.bench_function("pem/load_certs(chain of 2)", |b| {
        b.iter(|| mtls::pem::load_certs(black_box(&server.cert)).unwrap())
    });
    c.bench_function("pem/load_key(pkcs8 p256)", |b| {
        b.iter(|| mtls::pem::load_key(black_box(&server.key)).unwrap())
    });
}

fn identity(c: &mut Criterion) {
    let (_pki, _, client, _) = fixtures();
    let chain = mtls::pem::load_certs(&client.cert).unwrap();
    c.bench_function("identity/from_chain", |b| {
        b.iter(|| PeerIdentity::from_chain(black_box(&chain)).unwrap())
    });
}

fn policies(c: &mut Criterion) {
    let (_, _, _, id) = fixtures();
    let mut g = c.benchmark_group("policy");
    for spec in [
        "any",
        "cn:svc-a",
        "dns:*.svc.local",
        "uri:spiffe://prod.example.org/ns/default/sa/svc-a",
        "spiffe:prod.example.org",
        "spiffe-prefix:spiffe://prod.example.org/ns/default",
        "o:Example",
        "ou:backend",
        "issuer:CN=mtls-testing intermediate",
        "all(spiffe:prod.example.org, ou:backend, not(cn:blocked))",
    ] {
        let p: Policy = spec.parse().unwrap();
        g.bench_function(spec, |b| b.iter(|| black_box(&p).authorize(black_box(&id))));
    }
    let list = Policy::parse_any(
        (0..99)
            .map(|i| format!("cn:svc-{i:03}"))
            .chain(["cn:svc-a".into()]),
    )
    .unwrap();
    g.bench_function("cn allowlist of 100 (hit)", |b| {
        b.iter(|| black_box(&list).authorize(black_box(&id)))
    });
    let dns = Policy::parse_any((0..100).map(|i| format!("dns:host-{i}.svc.local"))).unwrap();
    g.bench_function("dns allowlist of 100 (miss)", |b| {
        b.iter(|| black_box(&dns).authorize(black_box(&id)))
    });
    g.finish();
}

fn reload_and_handshake(c: &mut Criterion) {
    let (pki, server, client, _) = fixtures();
    let srv = Server::builder()
        .identity(&server.cert, &server.key)
        .client_ca(pki.ca_file())
        .policy("spiffe:prod.example.org".parse().unwrap())
        .session_cache(0)
        .build()
        .unwrap();
    let cli = Client::builder()
        .identity(&client.cert, &client.key)
        .ca(pki.ca_file())
        .session_cache(0)
        .build()
        .unwrap();
    let handle = srv.handle();
    c.bench_function("reload/server (parse + validate + swap)", |b| {
        b.iter(|| handle.reload().unwrap())
    });

    // Baseline: bare rustls with the same material and WebPki verifiers, no policy.
    let provider = Arc::new(mtls::provider::feature_default().unwrap());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(mtls::pem::load_certs(pki.ca_file()).unwrap().remove(0))
        .unwrap();
    let roots = Arc::new(roots);
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        roots.clone(),
        provider.clone(),
    )
    .build()
    .unwrap();
    let mut bare_server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            mtls::pem::load_certs(&server.cert).unwrap(),
            mtls::pem::load_key(&server.key).unwrap(),
        )
        .unwrap();
    bare_server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    bare_server.send_tls13_tickets = 0;
    let bare_server = Arc::new(bare_server);
    let mut bare_client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            mtls::pem::load_certs(&client.cert).unwrap(),
            mtls::pem::load_key(&client.key).unwrap(),
        )
        .unwrap();
    bare_client.resumption = rustls::client::Resumption::disabled();
    let bare_client = Arc::new(bare_client);

    let mut g = c.benchmark_group("handshake (in memory, full, ECDSA P-256)");
    g.bench_function("bare rustls", |b| {
        b.iter(|| assert!(handshake_in_memory(&bare_server, &bare_client)))
    });
    let (ours_s, ours_c) = (srv.config(), cli.config());
    g.bench_function("mtls (verify + identity + policy)", |b| {
        b.iter(|| assert!(handshake_in_memory(&ours_s, &ours_c)))
    });
    g.finish();
}

/// The cost of a forwarded client certificate per request: decoding the header and
/// parsing the identity (a new certificate), against the cached path a keep-alive
/// connection through a proxy takes (the same header value again).
fn forwarded(c: &mut Criterion) {
    use mtls::forwarded::{
        Forwarding, HeaderFormat, HeaderSource, Resolution, TrustedProxy, decode, encode_rfc9440,
    };
    struct One<'a>(&'static str, &'a [u8]);
    impl HeaderSource for One<'_> {
        fn values(&self, name: &str) -> Vec<&[u8]> {
            if name == self.0 {
                vec![self.1]
            } else {
                Vec::new()
            }
        }
    }
    let (pki, _, client, _) = fixtures();
    let chain = mtls::pem::load_certs(&client.cert).unwrap();
    let (value, _) = encode_rfc9440(&chain[..1]);
    let (proxy_leaf, _) = pki.client("edge-proxy");
    let proxy = PeerIdentity::from_chain(&[proxy_leaf.cert_der().into()]).unwrap();
    let mut g = c.benchmark_group("forwarded (RFC 9440 Client-Cert, P-256 leaf)");
    g.bench_function("decode header", |b| {
        b.iter(|| decode(HeaderFormat::Rfc9440, black_box(value.as_bytes()), None).unwrap())
    });
    g.bench_function("decode + identity (uncached)", |b| {
        b.iter(|| {
            decode(HeaderFormat::Rfc9440, black_box(value.as_bytes()), None)
                .unwrap()
                .peer_identity()
                .unwrap()
        })
    });
    let forwarding = Forwarding::new(
        HeaderFormat::Rfc9440,
        TrustedProxy::Policy(Policy::common_name(["edge-proxy"])),
    );
    let headers = One("client-cert", value.as_bytes());
    g.bench_function("resolve (trusted proxy, cached identity)", |b| {
        b.iter(|| {
            let r = forwarding.resolve(Some(&proxy), None, black_box(&headers));
            assert!(matches!(r, Resolution::Forwarded(_)));
        })
    });
    g.bench_function("resolve (direct client: header ignored)", |b| {
        let direct = PeerIdentity::from_chain(&chain).unwrap();
        b.iter(|| {
            let r = forwarding.resolve(Some(&direct), None, black_box(&headers));
            assert!(matches!(r, Resolution::Direct));
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    pem_loading,
    identity,
    policies,
    reload_and_handshake,
    forwarded
);
criterion_main!(benches);
