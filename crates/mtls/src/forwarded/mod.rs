//! The client certificate that a TLS-terminating proxy forwards in a request header.
//!
//! When a proxy (Envoy, nginx, HAProxy, Apache httpd, Traefik, an AWS ALB, …) terminates
//! the client's mutual TLS, the application sees the proxy's connection, not the client's;
//! the proxy passes the client's certificate on in a header, in a format of its own.
//! [`decode`] reads each of those formats into a [`ForwardedCert`] (the chain, leaf first),
//! and [`encode_rfc9440`] / [`encode_xfcc`] write the two standard-ish ones, for a client
//! that is itself the proxy.
//!
//! ```
//! use mtls::forwarded::{self, ForwardedError, HeaderFormat};
//! # use mtls::rustls::pki_types::CertificateDer;
//! # let pki = mtls_testing::TestPki::new();
//! # let (leaf, _) = pki.client("worker");
//! # let chain: Vec<CertificateDer<'static>> =
//! #     leaf.chain_der().into_iter().map(CertificateDer::from).collect();
//!
//! // What a proxy sends for a client whose chain is `chain` (leaf, intermediate):
//! let (client_cert, client_cert_chain) = forwarded::encode_rfc9440(&chain);
//!
//! // What the application does with the two header values:
//! let fwd = forwarded::decode(
//!     HeaderFormat::Rfc9440,
//!     client_cert.as_bytes(),
//!     client_cert_chain.as_deref().map(str::as_bytes),
//! )?;
//! assert_eq!(fwd.chain, chain);
//! let peer = fwd.peer_identity()?;
//! assert_eq!(peer.common_name(), Some("worker"));
//!
//! // nginx sends an empty value (Apache `(null)`) when the client sent no certificate:
//! let anon = forwarded::decode(HeaderFormat::Nginx, b"", None);
//! assert!(matches!(anon, Err(ForwardedError::Absent { .. })));
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! ```
//!
//! # Trust
//!
//! A header is only as trustworthy as whoever sent it. **Decode a header only on a
//! request that came from the proxy** (by its address, or by its own client certificate),
//! and have the proxy remove or overwrite the header on every request it forwards, or any
//! client can claim any certificate. This module decodes; it does not decide who may send
//! the header. The proxy has verified the client's chain; [`decode`] checks only that each
//! certificate parses as X.509, not the chain, the dates or a signature.
//!
//! # Formats
//!
//! | [`HeaderFormat`] | proxy setting | [`default_header`](HeaderFormat::default_header) | [`default_chain_header`](HeaderFormat::default_chain_header) | value |
//! |---|---|---|---|---|
//! | `Rfc9440` | RFC 9440 | `client-cert` | `client-cert-chain` | `:BASE64-DER:`; chain: `:B64:, :B64:` (intermediates) |
//! | `Xfcc` | Envoy `forward_client_cert_details: SANITIZE_SET`, `set_current_client_cert_details: { cert: true, chain: true }` | `x-forwarded-client-cert` | — | `By=…;Hash=…;Cert="URL-PEM";Chain="URL-PEM"` |
//! | `Nginx` | `proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;` | `x-ssl-client-cert` | — | URL-encoded PEM (or the deprecated `$ssl_client_cert`) |
//! | `Haproxy` | `http-request set-header X-SSL-Client-Cert %[ssl_c_der,base64]` | `x-ssl-client-cert` | `x-ssl-client-chain` (`%[ssl_c_chain_der,base64]`) | DER in base64 or hex, maybe `%{+Q}`-quoted; chain: the DERs concatenated |
//! | `Apache` | `RequestHeader set X-SSL-Client-Cert "%{SSL_CLIENT_CERT}s"` | `x-ssl-client-cert` | — | PEM with spaces for newlines, or URL-encoded |
//! | `Traefik` | `passTLSClientCert: { pem: true }` | `x-forwarded-tls-client-cert` | — | base64 DER of each certificate, leaf first, `,`-separated (URL-escaped by Traefik 2) |
//! | `Alb` | listener mutual TLS, passthrough | `x-amzn-mtls-clientcert` | — | URL-encoded PEM of the chain, leaf first |
//!
//! The `x-ssl-client-chain` name for HAProxy's chain is this crate's choice: HAProxy has no
//! standard name (its own example uses `x-ssl-chain-der`); set the same name on both
//! sides. For an ALB in *verify* mode, read `x-amzn-mtls-clientcert-leaf` (the leaf only,
//! same encoding) with [`HeaderFormat::Alb`]. Apache can forward the chain with one
//! `RequestHeader` per `SSL_CLIENT_CERT_CHAIN_n`; join those values with `", "` and pass
//! them as the chain value. Every format but `Xfcc` accepts a chain value, in the same
//! encoding as its certificate header (for RFC 9440, an sf-list).
//!
//! # Several header lines
//!
//! [`decode`] takes one value per header. When a request has several lines of a header
//! (`Client-Cert-Chain` may be split, XFCC grows one element per proxy), the caller joins
//! them with `", "`, in order, as HTTP says a list-valued field is combined. A header
//! that must be single (`Client-Cert`, and all the certificate headers but RFC 9440's
//! chain and XFCC) should be refused if it occurs twice, rather than joined.
//!
//! # Limits
//!
//! A value over [`MAX_VALUE_LEN`] bytes, or more than [`MAX_CHAIN_LEN`] certificates in
//! all, is refused with [`ForwardedError::TooLarge`] /
//! [`ForwardedError::TooManyCertificates`] before more work is done. No input panics.

use rustls::pki_types::CertificateDer;

use crate::identity::{IdentityError, PeerIdentity};

mod error;
mod format;
mod proxies;
mod rfc9440;
#[cfg(test)]
mod tests;
mod text;
mod xfcc;

pub use error::{ForwardedError, HeaderKind};
pub use format::HeaderFormat;

use text::{Bad, Certs, Ctx, trim, unquote};

/// The longest header value [`decode`] reads: 64 KiB.
pub const MAX_VALUE_LEN: usize = 64 * 1024;

/// The most certificates [`decode`] returns, leaf and intermediates together.
pub const MAX_CHAIN_LEN: usize = 10;

/// How many bytes of a bad value an error message quotes.
pub const PREFIX_LEN: usize = 24;

/// What a proxy forwarded about its client.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct ForwardedCert {
    /// The client's certificates, leaf first, then the intermediates the proxy forwarded
    /// (possibly none; an ALB also forwards the root). Never empty when returned by
    /// [`decode`].
    pub chain: Vec<CertificateDer<'static>>,
    /// XFCC `By`: the URI SAN of the proxy that added the element (the first, if Envoy
    /// wrote one per SAN). `None` for the other formats.
    pub by: Option<String>,
    /// XFCC `Hash`: the SHA-256 of the leaf's DER. [`decode`] checks it against the leaf
    /// and fails with [`ForwardedError::HashMismatch`] if they differ. `None` for the
    /// other formats.
    pub hash: Option<[u8; 32]>,
}

impl ForwardedCert {
    /// The client's identity, parsed from the leaf as [`PeerIdentity::from_chain`] does.
    ///
    /// The chain was verified by the proxy, not here; see the [module docs](self#trust).
    ///
    /// # Errors
    ///
    /// As [`PeerIdentity::from_chain`] (for instance an unreadable subjectAltName, which
    /// [`decode`]'s X.509 check does not look at).
    pub fn peer_identity(&self) -> Result<PeerIdentity, IdentityError> {
        PeerIdentity::from_chain(&self.chain)
    }
}

/// Decodes the certificate header `value`, and `chain_value` if the format has a separate
/// chain header and the request has it, into the client's chain.
///
/// `value` and `chain_value` are the raw header values; surrounding whitespace is ignored.
/// For several lines of one header, join them with `", "` first (see the
/// [module docs](self#several-header-lines)). If the chain value's first certificate is
/// the leaf, it is not repeated in [`ForwardedCert::chain`].
///
/// # Errors
///
/// - [`ForwardedError::Absent`] when the proxy says its client sent no certificate (an
///   empty value, `(null)`, `-`, `""` or `::`); a chain value in one of those forms is
///   simply no intermediates.
/// - [`ForwardedError::TooLarge`], [`ForwardedError::TooManyCertificates`] past the
///   [limits](self#limits).
/// - [`ForwardedError::Malformed`] when the value does not have the format's syntax or
///   encoding, [`ForwardedError::NotCertificate`] when a decoded certificate is not X.509.
/// - For XFCC: [`ForwardedError::XfccNoCert`], [`ForwardedError::HashMismatch`],
///   [`ForwardedError::ChainMismatch`], and [`ForwardedError::UnexpectedChain`] if a
///   chain value is given.
pub fn decode(
    format: HeaderFormat,
    value: &[u8],
    chain_value: Option<&[u8]>,
) -> Result<ForwardedCert, ForwardedError> {
    check_len(format, HeaderKind::Cert, value)?;
    if let Some(chain) = chain_value {
        check_len(format, HeaderKind::Chain, chain)?;
    }
    let raw = value;
    let value = trim(value);
    if is_absent(value) {
        return Err(ForwardedError::Absent { format });
    }
    let cert_ctx = Ctx {
        format,
        header: HeaderKind::Cert,
        value: raw,
    };

    let mut certs = Certs::default();
    let decoded = match format {
        HeaderFormat::Xfcc => {
            if chain_value.is_some() {
                return Err(ForwardedError::UnexpectedChain { format });
            }
            return xfcc::decode(value).map_err(|e| match e {
                xfcc::XfccError::Own(e) => e,
                xfcc::XfccError::Bad(bad) => cert_ctx.error(bad),
            });
        }
        HeaderFormat::Rfc9440 => rfc9440::cert(value, &mut certs),
        HeaderFormat::Nginx | HeaderFormat::Apache | HeaderFormat::Alb => {
            proxies::pem(value, &mut certs)
        }
        HeaderFormat::Haproxy => proxies::haproxy(value, &mut certs),
        HeaderFormat::Traefik => proxies::traefik(value, &mut certs),
    };
    decoded.map_err(|bad| cert_ctx.error(bad))?;

    if let Some(raw_chain) = chain_value {
        let chain = trim(raw_chain);
        if !is_absent(chain) {
            let ctx = Ctx {
                format,
                header: HeaderKind::Chain,
                value: raw_chain,
            };
            let mut rest = Certs::default();
            let decoded = match format {
                HeaderFormat::Rfc9440 => rfc9440::chain(chain, &mut rest),
                HeaderFormat::Haproxy => proxies::haproxy(chain, &mut rest),
                HeaderFormat::Traefik => proxies::traefik(chain, &mut rest),
                _ => proxies::pem(chain, &mut rest),
            };
            decoded.map_err(|bad| ctx.error(bad))?;
            let mut rest = rest.0;
            if !rest.is_empty() && rest.first() == certs.0.first() {
                rest.remove(0);
            }
            let total = certs.0.len() + rest.len();
            if total > MAX_CHAIN_LEN {
                return Err(ctx.error(Bad::TooMany(total)));
            }
            certs.0.extend(rest);
        }
    }

    Ok(ForwardedCert {
        chain: certs.0.into_iter().map(CertificateDer::from).collect(),
        by: None,
        hash: None,
    })
}

/// The values that mean "no client certificate": empty (nginx, HAProxy), `(null)` (Apache
/// httpd), `-`, an empty quoted value (HAProxy `%{+Q}`) or an empty byte sequence (an
/// RFC 9440 header written by a proxy template around an empty variable).
fn is_absent(v: &[u8]) -> bool {
    let inner = trim(unquote(v));
    matches!(inner, b"" | b"(null)" | b"-" | b"::")
}

fn check_len(format: HeaderFormat, header: HeaderKind, v: &[u8]) -> Result<(), ForwardedError> {
    if v.len() > MAX_VALUE_LEN {
        return Err(ForwardedError::TooLarge {
            format,
            header,
            len: v.len(),
            max: MAX_VALUE_LEN,
        });
    }
    Ok(())
}

/// The RFC 9440 header values for `chain` (leaf first): `Client-Cert` with the leaf, and
/// `Client-Cert-Chain` with the rest if there is any.
///
/// For an outgoing request where this client is the TLS-terminating proxy. An empty
/// `chain` gives an empty `Client-Cert`, which [`decode`] reads as
/// [`ForwardedError::Absent`].
pub fn encode_rfc9440(chain: &[CertificateDer<'_>]) -> (String, Option<String>) {
    let Some((leaf, rest)) = chain.split_first() else {
        return (String::new(), None);
    };
    let cert = rfc9440::encode_item(leaf);
    let rest = (!rest.is_empty()).then(|| {
        rest.iter()
            .map(|c| rfc9440::encode_item(c))
            .collect::<Vec<_>>()
            .join(", ")
    });
    (cert, rest)
}

/// One `x-forwarded-client-cert` element for `chain` (leaf first), as Envoy writes it
/// with `set_current_client_cert_details: { cert: true, chain: true }`: `By` (if given,
/// quoted if it must be), `Hash` (SHA-256 of the leaf), `Cert` (the leaf's URL-encoded
/// PEM) and, with more than one certificate, `Chain` (the whole chain's).
///
/// To append to a request's existing XFCC (Envoy's `APPEND_FORWARD`), join with `","`.
/// An empty `chain` gives only the `By` pair (or an empty string).
pub fn encode_xfcc(chain: &[CertificateDer<'_>], by: Option<&str>) -> String {
    xfcc::encode(chain, by)
}
