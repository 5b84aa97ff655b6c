//! Which requests may carry a forwarded client certificate, and the identity a request
//! gets: [`Forwarding`] decides from the *connection*, never from the header.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use super::{ForwardedError, HeaderFormat, HeaderKind, decode};
use crate::identity::PeerIdentity;
use crate::policy::Policy;
use crate::verify::Rejection;

/// Who may forward a client certificate.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TrustedProxy {
    /// The proxy authenticates to our listener with its own certificate, which this policy
    /// must admit (the secure default: e.g. `Policy::common_name(["edge-proxy"])`).
    Policy(Policy),
    /// The proxy is recognised by its address: any TCP peer in these networks. Only for a
    /// proxy that cannot present a client certificate, on a network no one else reaches.
    Networks(Vec<super::IpNet>),
}

/// The proxy a request came through, as the connection shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct ProxyInfo {
    /// The header format it used (`"nginx"`, `"xfcc"`, …).
    pub format: &'static str,
    /// The subject of the proxy's own certificate, when it authenticated with one.
    pub subject: Option<String>,
    /// The proxy's address (the TCP peer).
    pub addr: Option<SocketAddr>,
    /// What the proxy says it is (XFCC `By`), when it says so.
    pub by: Option<String>,
}

/// The identity of a request that came through a trusted proxy: the client's (`None`
/// when the proxy's client presented no certificate: anonymous), and the proxy.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ForwardedIdentity {
    /// The client's identity, as our listener would have produced it.
    pub identity: Option<Arc<PeerIdentity>>,
    /// Which proxy forwarded it.
    pub by: ProxyInfo,
}

/// The request headers, as the adapters see them (the core does not depend on `http`).
pub trait HeaderSource {
    /// Every value of the header `name` (lowercase), in order.
    fn values(&self, name: &str) -> Vec<&[u8]>;
}

/// What to do with one request.
#[derive(Debug)]
#[non_exhaustive]
pub enum Resolution {
    /// Not from a trusted proxy: the request is what its connection authenticates. The
    /// forwarded headers must be removed before the application sees it.
    Direct,
    /// From a trusted proxy: the request is the forwarded client's (or anonymous).
    Forwarded(ForwardedIdentity),
    /// From a trusted proxy, but what it forwarded cannot be used: answer 400 (a malformed
    /// header) or 403 (a refused certificate), as [`ForwardingError::is_client_error`] says.
    Refused(ForwardingError),
}

/// Why a request from a trusted proxy was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForwardingError {
    /// The header could not be decoded.
    #[error("the forwarded client certificate header `{header}` is unusable: {error}")]
    Header {
        /// The header's name.
        header: String,
        /// Why.
        error: ForwardedError,
    },
    /// The header appeared more than once, where the format allows one value: a copy
    /// sent by the client that the proxy did not replace.
    #[error(
        "the header `{header}` appears {count} times; the proxy must replace it, not append \
         to it (nginx: proxy_set_header; HAProxy: http-request set-header; Apache: \
         RequestHeader set)"
    )]
    Repeated {
        /// The header's name.
        header: String,
        /// How many times.
        count: usize,
    },
    /// The proxy's verification result header does not say success.
    #[error(
        "the proxy did not verify the client certificate: `{header}` is {value:?}, not one of \
         {accepted:?}"
    )]
    NotVerified {
        /// The header's name.
        header: String,
        /// What it said (at most 64 bytes).
        value: String,
        /// What counts as success.
        accepted: Vec<String>,
    },
    /// Our own verification (CAs, CRLs and policy in force) refused the forwarded chain.
    #[error("the forwarded client certificate is refused: {0}")]
    Refused(Rejection),
}

impl ForwardingError {
    /// Whether the request is malformed (400), rather than refused (403).
    pub fn is_client_error(&self) -> bool {
        matches!(self, Self::Header { .. } | Self::Repeated { .. })
    }
}

/// Forwarded-identity settings: the proxy in front, its header format, and how far its
/// word is taken. Shared (`Arc`) by the adapters' layers; see the adapters' docs.
pub struct Forwarding {
    format: HeaderFormat,
    header: String,
    chain_header: Option<String>,
    trusted: TrustedProxy,
    verify_header: Option<(String, Vec<String>)>,
    reverify: Option<crate::Server>,
    /// Identities parsed from header values, so a keep-alive connection through a proxy
    /// does not parse the same certificate on every request.
    cache: Mutex<Cache>,
}

/// Identities (and the proxy's `By`) by header value.
type Cache = HashMap<Vec<u8>, (Arc<PeerIdentity>, Option<String>)>;

/// Cached identities; the cache is emptied when it is full.
const CACHE_SIZE: usize = 1024;

impl fmt::Debug for Forwarding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Forwarding")
            .field("format", &self.format)
            .field("header", &self.header)
            .field("chain_header", &self.chain_header)
            .field("trusted", &self.trusted)
            .field("verify_header", &self.verify_header)
            .field("reverify", &self.reverify.is_some())
            .finish_non_exhaustive()
    }
}

impl Forwarding {
    /// Honours `format`'s header (under its default name) from `trusted` proxies only.
    ///
    /// For the formats whose proxies forward a certificate they did not necessarily
    /// verify (nginx, HAProxy and Apache forward whatever `ssl_verify_client optional`
    /// let through), their verification result header is required to say success:
    /// `x-ssl-client-verify: SUCCESS` (nginx `$ssl_client_verify`, Apache
    /// `%{SSL_CLIENT_VERIFY}s`) or `0` (HAProxy `ssl_c_verify`). Change it with
    /// [`verify_header`](Self::verify_header), or verify the chain again ourselves with
    /// [`reverify`](Self::reverify).
    ///
    /// The proxy must set (or remove) every header this reads, [`headers`](Self::headers):
    /// one it leaves alone passes a client's own copy through. The certificate header
    /// decides the identity; a chain header (`client-cert-chain`, HAProxy's
    /// `x-ssl-client-chain`) only adds intermediates, used by `reverify`; set it in the
    /// proxy, or turn it off with [`chain_header(None)`](Self::chain_header).
    pub fn new(format: HeaderFormat, trusted: TrustedProxy) -> Self {
        let verify_header = match format {
            HeaderFormat::Nginx | HeaderFormat::Apache => {
                Some(("x-ssl-client-verify".to_owned(), vec!["SUCCESS".to_owned()]))
            }
            HeaderFormat::Haproxy => Some(("x-ssl-client-verify".to_owned(), vec!["0".to_owned()])),
            _ => None,
        };
        Self {
            format,
            header: format.default_header().to_owned(),
            chain_header: format.default_chain_header().map(str::to_owned),
            trusted,
            verify_header,
            reverify: None,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Reads the certificate from `name` instead of the format's default header.
    #[must_use]
    pub fn header(mut self, name: &str) -> Self {
        self.header = name.to_ascii_lowercase();
        self
    }

    /// Reads the chain (intermediates) from `name`, or from no separate header.
    #[must_use]
    pub fn chain_header(mut self, name: Option<&str>) -> Self {
        self.chain_header = name.map(str::to_ascii_lowercase);
        self
    }

    /// Requires the header `name` to hold one of `accepted` (the proxy's verification
    /// result); `None` trusts the proxy to forward only certificates it verified.
    #[must_use]
    pub fn verify_header(mut self, header: Option<(&str, &[&str])>) -> Self {
        self.verify_header = header.map(|(name, accepted)| {
            (
                name.to_ascii_lowercase(),
                accepted.iter().map(|s| (*s).to_owned()).collect(),
            )
        });
        self
    }

    /// Verifies every forwarded chain again with `server`'s CAs, CRLs and policy in force
    /// (following its reloads), for proxies that forward without verifying (Cloudflare's
    /// RFC 9440 field). The proxy's verification header is then not needed.
    #[must_use]
    pub fn reverify(mut self, server: &crate::Server) -> Self {
        self.reverify = Some(server.clone());
        self.verify_header = None;
        self
    }

    /// The header format.
    pub fn format(&self) -> HeaderFormat {
        self.format
    }

    /// Every header this configuration reads: the adapters remove them from every
    /// request before the application sees it.
    pub fn headers(&self) -> Vec<&str> {
        let mut v = vec![self.header.as_str()];
        v.extend(self.chain_header.as_deref());
        v.extend(self.verify_header.as_ref().map(|(h, _)| h.as_str()));
        v
    }

    /// Whether the connection is a trusted proxy.
    fn proxy(&self, identity: Option<&PeerIdentity>, remote: Option<SocketAddr>) -> bool {
        match &self.trusted {
            TrustedProxy::Policy(policy) => identity.is_some_and(|id| policy.authorize(id).is_ok()),
            TrustedProxy::Networks(nets) => remote.is_some_and(|addr| {
                let ip = match addr.ip() {
                    IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
                    v4 => v4,
                };
                nets.iter().any(|n| n.contains(&ip))
            }),
        }
    }

    /// Decides what one request is, from its connection (`identity` of the TCP peer,
    /// `remote` address) and its headers.
    pub fn resolve(
        &self,
        identity: Option<&PeerIdentity>,
        remote: Option<SocketAddr>,
        headers: &dyn HeaderSource,
    ) -> Resolution {
        if !self.proxy(identity, remote) {
            return Resolution::Direct;
        }
        match self.forwarded(headers) {
            Ok((client, by)) => Resolution::Forwarded(ForwardedIdentity {
                identity: client,
                by: ProxyInfo {
                    format: self.format.name(),
                    subject: identity.map(|id| id.subject().to_owned()),
                    addr: remote,
                    by,
                },
            }),
            Err(e) => {
                tracing::warn!(
                    target: "mtls::forwarded",
                    proxy = ?remote,
                    error = %e,
                    "forwarded client certificate refused"
                );
                Resolution::Refused(e)
            }
        }
    }

    fn one<'h>(
        &self,
        headers: &'h dyn HeaderSource,
        name: &str,
    ) -> Result<Option<&'h [u8]>, ForwardingError> {
        let values = headers.values(name);
        match values.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one)),
            many => Err(ForwardingError::Repeated {
                header: name.to_owned(),
                count: many.len(),
            }),
        }
    }

    /// The forwarded client (None: anonymous) and the proxy's `By`.
    #[allow(clippy::type_complexity)]
    fn forwarded(
        &self,
        headers: &dyn HeaderSource,
    ) -> Result<(Option<Arc<PeerIdentity>>, Option<String>), ForwardingError> {
        // XFCC proxies append: several lines are one list, whose last element is the
        // nearest (trusted) proxy's. Every other format must come as one value.
        let joined;
        let value = if self.format == HeaderFormat::Xfcc {
            let values = headers.values(&self.header);
            if values.is_empty() {
                None
            } else {
                joined = values.join(&b","[..]);
                Some(joined.as_slice())
            }
        } else {
            self.one(headers, &self.header)?
        };
        let chain = match &self.chain_header {
            Some(name) => self.one(headers, name)?,
            None => None,
        };
        // Name the header the error is about: a bad chain value is the chain header's.
        let header_error = |error: ForwardedError| {
            let header = match (error.header(), &self.chain_header) {
                (Some(HeaderKind::Chain), Some(chain)) => chain.clone(),
                _ => self.header.clone(),
            };
            ForwardingError::Header { header, error }
        };
        let Some(value) = value else {
            return Ok((None, None));
        };
        // A header value seen before is not decoded or parsed again (keep-alive
        // connections through a proxy send the same one on every request).
        let key = [value, chain.unwrap_or_default()].join(&b"\n"[..]);
        if self.reverify.is_none()
            && let Some((hit, by)) = self.lock().get(&key).cloned()
        {
            self.check_verified(headers)?;
            return Ok((Some(hit), by));
        }
        let cert = match decode(self.format, value, chain) {
            Ok(cert) => cert,
            Err(ForwardedError::Absent { .. }) => return Ok((None, None)),
            Err(e) => return Err(header_error(e)),
        };
        self.check_verified(headers)?;
        let by = cert.by.clone();
        if let Some(server) = &self.reverify {
            let identity = server
                .verify_client_chain(&cert.chain)
                .map_err(ForwardingError::Refused)?;
            return Ok((Some(identity), by));
        }
        let identity = cert.peer_identity().map_err(|e| {
            header_error(ForwardedError::NotCertificate {
                format: self.format,
                header: HeaderKind::Cert,
                index: 1,
                detail: e.to_string(),
            })
        })?;
        let identity = Arc::new(identity);
        let mut cached = self.lock();
        if cached.len() >= CACHE_SIZE {
            cached.clear();
        }
        cached.insert(key, (identity.clone(), by.clone()));
        Ok((Some(identity), by))
    }

    /// The proxy's verification header, where one is required, says success.
    fn check_verified(&self, headers: &dyn HeaderSource) -> Result<(), ForwardingError> {
        let Some((name, accepted)) = &self.verify_header else {
            return Ok(());
        };
        let said = self.one(headers, name)?.unwrap_or_default();
        let said = String::from_utf8_lossy(&said[..said.len().min(64)]).into_owned();
        if accepted.iter().any(|a| a.as_str() == said.trim()) {
            Ok(())
        } else {
            Err(ForwardingError::NotVerified {
                header: name.clone(),
                value: said,
                accepted: accepted.clone(),
            })
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The headers that forward `identity` to an upstream service, when our own client is
/// the proxy: RFC 9440 (`Client-Cert`, and `Client-Cert-Chain` when the chain has
/// intermediates) or Envoy's XFCC (`x-forwarded-client-cert`, with `By` when given).
/// Other formats are what proxies send, not what upstreams usually read; `None` for them.
///
/// Set them on the outgoing request *replacing* any copy (`HeaderMap::insert`, not
/// `append`), so a client of ours cannot smuggle its own value upstream.
pub fn upstream_headers(
    format: HeaderFormat,
    identity: &PeerIdentity,
    by: Option<&str>,
) -> Option<Vec<(&'static str, String)>> {
    let chain = identity.chain();
    match format {
        HeaderFormat::Rfc9440 => {
            let (cert, intermediates) = super::encode_rfc9440(chain);
            let mut headers = vec![("client-cert", cert)];
            headers.extend(intermediates.map(|c| ("client-cert-chain", c)));
            Some(headers)
        }
        HeaderFormat::Xfcc => Some(vec![(
            "x-forwarded-client-cert",
            super::encode_xfcc(chain, by),
        )]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::forwarded::encode_rfc9440;

    struct Map(Vec<(&'static str, Vec<u8>)>);

    impl HeaderSource for Map {
        fn values(&self, name: &str) -> Vec<&[u8]> {
            self.0
                .iter()
                .filter(|(n, _)| *n == name)
                .map(|(_, v)| v.as_slice())
                .collect()
        }
    }

    fn identity(pki: &mtls_testing::TestPki, cn: &str) -> PeerIdentity {
        let (leaf, _) = pki.client(cn);
        PeerIdentity::from_chain(&[leaf.cert_der().into()]).unwrap()
    }

    fn rfc9440(pki: &mtls_testing::TestPki, cn: &str) -> Vec<u8> {
        let (leaf, _) = pki.client(cn);
        encode_rfc9440(&[leaf.cert_der().into()]).0.into_bytes()
    }

    fn proxy_policy() -> TrustedProxy {
        TrustedProxy::Policy(Policy::common_name(["edge-proxy"]))
    }

    #[test]
    fn only_the_trusted_proxy_connection_is_believed() {
        let pki = mtls_testing::TestPki::new();
        let forwarding = Forwarding::new(HeaderFormat::Rfc9440, proxy_policy());
        let headers = Map(vec![("client-cert", rfc9440(&pki, "admin"))]);
        let proxy = identity(&pki, "edge-proxy");
        let mallory = identity(&pki, "mallory");
        // Anyone else, with or without a certificate: the header is not believed.
        assert!(matches!(
            forwarding.resolve(Some(&mallory), None, &headers),
            Resolution::Direct
        ));
        assert!(matches!(
            forwarding.resolve(None, None, &headers),
            Resolution::Direct
        ));
        // The proxy: the forwarded client, with the proxy named.
        match forwarding.resolve(Some(&proxy), None, &headers) {
            Resolution::Forwarded(f) => {
                assert_eq!(f.identity.unwrap().common_name(), Some("admin"));
                assert_eq!(f.by.subject.as_deref(), Some(proxy.subject()));
                assert_eq!(f.by.format, "rfc9440");
            }
            other => panic!("{other:?}"),
        }
        // The proxy without a forwarded certificate: anonymous, not the proxy itself.
        match forwarding.resolve(Some(&proxy), None, &Map(vec![])) {
            Resolution::Forwarded(f) => assert!(f.identity.is_none()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_repeated_header_is_refused_not_picked() {
        let pki = mtls_testing::TestPki::new();
        let forwarding = Forwarding::new(HeaderFormat::Rfc9440, proxy_policy());
        let proxy = identity(&pki, "edge-proxy");
        let headers = Map(vec![
            ("client-cert", rfc9440(&pki, "admin")),
            ("client-cert", rfc9440(&pki, "alice")),
        ]);
        match forwarding.resolve(Some(&proxy), None, &headers) {
            Resolution::Refused(e @ ForwardingError::Repeated { count: 2, .. }) => {
                assert!(e.is_client_error());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_bad_chain_value_is_reported_under_the_chain_header() {
        let pki = mtls_testing::TestPki::new();
        let forwarding = Forwarding::new(HeaderFormat::Rfc9440, proxy_policy());
        let proxy = identity(&pki, "edge-proxy");
        let headers = Map(vec![
            ("client-cert", rfc9440(&pki, "alice")),
            ("client-cert-chain", b"not-a-chain".to_vec()),
        ]);
        match forwarding.resolve(Some(&proxy), None, &headers) {
            Resolution::Refused(e) => {
                assert!(e.to_string().contains("`client-cert-chain`"), "{e}");
                assert!(
                    matches!(&e, ForwardingError::Header { header, error }
                        if header == "client-cert-chain" && error.header() == Some(HeaderKind::Chain)),
                    "{e:?}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nginx_needs_its_verification_header_to_say_success() {
        let pki = mtls_testing::TestPki::new();
        let proxy = identity(&pki, "edge-proxy");
        let (leaf, _) = pki.client("alice");
        let pem = mtls_testing::Leaf::cert_pem(&leaf);
        let escaped: String = pem
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' => (b as char).to_string(),
                b => format!("%{b:02X}"),
            })
            .collect();
        let forwarding = Forwarding::new(HeaderFormat::Nginx, proxy_policy());
        for (verify, ok) in [
            (Some("SUCCESS"), true),
            (Some("FAILED:unable to verify"), false),
            (None, false),
        ] {
            let mut headers = vec![("x-ssl-client-cert", escaped.clone().into_bytes())];
            if let Some(v) = verify {
                headers.push(("x-ssl-client-verify", v.as_bytes().to_vec()));
            }
            let resolution = forwarding.resolve(Some(&proxy), None, &Map(headers));
            match (ok, resolution) {
                (true, Resolution::Forwarded(f)) => {
                    assert_eq!(f.identity.unwrap().common_name(), Some("alice"));
                }
                (false, Resolution::Refused(e @ ForwardingError::NotVerified { .. })) => {
                    assert!(!e.is_client_error());
                }
                (_, other) => panic!("{verify:?}: {other:?}"),
            }
        }
        assert_eq!(
            forwarding.headers(),
            ["x-ssl-client-cert", "x-ssl-client-verify"]
        );
    }

    #[test]
    fn networks_match_ipv4_mapped_addresses_and_nothing_else() {
        let pki = mtls_testing::TestPki::new();
        let forwarding = Forwarding::new(
            HeaderFormat::Rfc9440,
            TrustedProxy::Networks(vec!["10.0.0.0/8".parse().unwrap()]),
        );
        let headers = Map(vec![("client-cert", rfc9440(&pki, "admin"))]);
        let inside: SocketAddr = "10.1.2.3:4000".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:10.1.2.3]:4000".parse().unwrap();
        let outside: SocketAddr = "192.0.2.1:4000".parse().unwrap();
        for addr in [inside, mapped] {
            assert!(matches!(
                forwarding.resolve(None, Some(addr), &headers),
                Resolution::Forwarded(_)
            ));
        }
        assert!(matches!(
            forwarding.resolve(None, Some(outside), &headers),
            Resolution::Direct
        ));
        assert!(matches!(
            forwarding.resolve(None, None, &headers),
            Resolution::Direct
        ));
    }

    #[test]
    fn the_same_header_value_is_parsed_once() {
        let pki = mtls_testing::TestPki::new();
        let forwarding = Forwarding::new(HeaderFormat::Rfc9440, proxy_policy());
        let proxy = identity(&pki, "edge-proxy");
        let headers = Map(vec![("client-cert", rfc9440(&pki, "admin"))]);
        let first = match forwarding.resolve(Some(&proxy), None, &headers) {
            Resolution::Forwarded(f) => f.identity.unwrap(),
            other => panic!("{other:?}"),
        };
        let second = match forwarding.resolve(Some(&proxy), None, &headers) {
            Resolution::Forwarded(f) => f.identity.unwrap(),
            other => panic!("{other:?}"),
        };
        assert!(Arc::ptr_eq(&first, &second));
    }

    #[test]
    fn upstream_headers_decode_back_to_the_same_identity() {
        let pki = mtls_testing::TestPki::new();
        let (leaf, _) = pki.client("alice");
        let chain: Vec<_> = leaf.chain_der().into_iter().map(Into::into).collect();
        let alice = PeerIdentity::from_chain(&chain).unwrap();
        let xfcc = upstream_headers(
            HeaderFormat::Xfcc,
            &alice,
            Some("spiffe://example.org/proxy"),
        )
        .unwrap();
        let [(name, value)] = xfcc.as_slice() else {
            panic!("{xfcc:?}")
        };
        assert_eq!(*name, "x-forwarded-client-cert");
        let decoded = decode(HeaderFormat::Xfcc, value.as_bytes(), None).unwrap();
        assert_eq!(decoded.chain[0], chain[0]);
        assert_eq!(decoded.by.as_deref(), Some("spiffe://example.org/proxy"));

        let rfc = upstream_headers(HeaderFormat::Rfc9440, &alice, None).unwrap();
        let cert = &rfc.iter().find(|(n, _)| *n == "client-cert").unwrap().1;
        let chain_value = rfc
            .iter()
            .find(|(n, _)| *n == "client-cert-chain")
            .map(|(_, v)| v.as_bytes());
        let decoded = decode(HeaderFormat::Rfc9440, cert.as_bytes(), chain_value).unwrap();
        assert_eq!(decoded.chain, chain);
        assert!(upstream_headers(HeaderFormat::Nginx, &alice, None).is_none());
    }
}
