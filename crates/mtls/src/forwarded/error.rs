//! [`ForwardedError`]: what is wrong with a forwarded-certificate header, and how to set up
//! the proxy that sent it.

use std::fmt;

use super::HeaderFormat;

/// Which of a format's two headers a [`ForwardedError`] is about.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderKind {
    /// The header that carries the client certificate ([`HeaderFormat::default_header`]).
    Cert,
    /// The separate chain header ([`HeaderFormat::default_chain_header`]).
    Chain,
}

impl fmt::Display for HeaderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Cert => "certificate",
            Self::Chain => "chain",
        })
    }
}

/// A forwarded-certificate header that cannot be used.
///
/// Every message says what is wrong and, where the header's form is the problem, how to
/// configure the proxy. A message never quotes more than the first
/// [`PREFIX_LEN`](super::PREFIX_LEN) bytes of the value (escaped), so a log line does not
/// carry a whole certificate or whatever an attacker put in the header.
///
/// [`Absent`](Self::Absent) is not a fault: the proxy said that its client sent no
/// certificate, and the caller can treat the request as anonymous. Every other variant
/// means the header cannot be trusted as a client identity; answer `400` or `401`, not as
/// if the client were anonymous.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ForwardedError {
    /// The proxy forwarded no client certificate: the value is empty, `(null)` (Apache
    /// httpd), `-`, `""` (an empty quoted value) or `::` (an empty RFC 9440 byte sequence).
    #[error(
        "the {format} header says the client sent no certificate; treat the request as \
         anonymous, or refuse it if a client certificate is required"
    )]
    Absent {
        /// The format that was decoded.
        format: HeaderFormat,
    },

    /// A value is longer than [`MAX_VALUE_LEN`](super::MAX_VALUE_LEN).
    #[error(
        "the {format} {header} header is {len} bytes, over the limit of {max}; a client \
         certificate chain is a few KiB. Check that the proxy forwards only the client's \
         chain, and that the header is not repeated"
    )]
    TooLarge {
        /// The format that was decoded.
        format: HeaderFormat,
        /// Which header.
        header: HeaderKind,
        /// The value's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// The headers carry more than [`MAX_CHAIN_LEN`](super::MAX_CHAIN_LEN) certificates.
    #[error(
        "the {format} headers carry at least {count} certificates, over the limit of {max}; \
         limit the chain depth at the proxy (e.g. nginx `ssl_verify_depth`, Envoy \
         `max_verify_depth`)"
    )]
    TooManyCertificates {
        /// The format that was decoded.
        format: HeaderFormat,
        /// How many were seen before decoding stopped (more than `max`).
        count: usize,
        /// The limit.
        max: usize,
    },

    /// The value does not have the format's syntax or encoding.
    #[error(
        "the {format} {header} header is malformed: {reason} (value starts with \
         \"{prefix}\"). {hint}",
        hint = format.setup_hint()
    )]
    Malformed {
        /// The format that was decoded.
        format: HeaderFormat,
        /// Which header.
        header: HeaderKind,
        /// What is wrong.
        reason: String,
        /// The first bytes of the value, escaped.
        prefix: String,
    },

    /// A decoded certificate does not parse as X.509.
    #[error(
        "certificate #{index} in the {format} {header} header is not an X.509 certificate \
         ({detail}). {hint}",
        hint = format.setup_hint()
    )]
    NotCertificate {
        /// The format that was decoded.
        format: HeaderFormat,
        /// Which header.
        header: HeaderKind,
        /// The certificate's position in that header, from 1.
        index: usize,
        /// What x509-parser reported.
        detail: String,
    },

    /// The nearest element of an `x-forwarded-client-cert` header has neither `Cert` nor
    /// `Chain`: Envoy is not set up to forward the certificate itself.
    #[error(
        "the x-forwarded-client-cert element added by the nearest proxy (element {element} \
         of {elements}) has no Cert or Chain key, only the certificate's hash or names; \
         configure Envoy with `forward_client_cert_details: SANITIZE_SET` and \
         `set_current_client_cert_details: {{ cert: true, chain: true }}`"
    )]
    XfccNoCert {
        /// The element that was decoded (the last one), from 1.
        element: usize,
        /// How many elements the header has.
        elements: usize,
    },

    /// The XFCC `Hash` is not the SHA-256 of the forwarded leaf certificate.
    #[error(
        "the x-forwarded-client-cert Hash {expected} is not the SHA-256 of its Cert \
         ({actual}); the element was altered or put together from two connections"
    )]
    HashMismatch {
        /// The `Hash` value, lowercase hex.
        expected: String,
        /// The SHA-256 of the leaf, lowercase hex.
        actual: String,
    },

    /// The XFCC `Chain` does not start with the element's `Cert`.
    #[error(
        "the x-forwarded-client-cert Chain does not start with its Cert; Envoy writes the \
         leaf first in Chain, so the element was altered"
    )]
    ChainMismatch,

    /// A chain value was given for a format that carries its whole chain in one header.
    #[error(
        "the {format} format carries the chain in its certificate header; it has no \
         separate chain header (pass `None` as the chain value)"
    )]
    UnexpectedChain {
        /// The format that was decoded.
        format: HeaderFormat,
    },
}

impl ForwardedError {
    /// Which header the error is about, for the errors about one header's value.
    pub(crate) fn header(&self) -> Option<HeaderKind> {
        match self {
            Self::TooLarge { header, .. }
            | Self::Malformed { header, .. }
            | Self::NotCertificate { header, .. } => Some(*header),
            _ => None,
        }
    }
}

impl HeaderFormat {
    /// How to configure the proxy so that it sends this format, for error messages.
    pub(super) fn setup_hint(self) -> &'static str {
        match self {
            Self::Rfc9440 => {
                "The proxy must send `Client-Cert: :BASE64-DER:` and optionally \
                 `Client-Cert-Chain: :BASE64-DER:, :BASE64-DER:` (RFC 9440); with HAProxy: \
                 `http-request set-header Client-Cert :%[ssl_c_der,base64]:`"
            }
            Self::Xfcc => {
                "Configure Envoy with `forward_client_cert_details: SANITIZE_SET` and \
                 `set_current_client_cert_details: { cert: true, chain: true }`"
            }
            Self::Nginx => {
                "Configure nginx with `proxy_set_header X-SSL-Client-Cert \
                 $ssl_client_escaped_cert;`"
            }
            Self::Haproxy => {
                "Configure HAProxy with `http-request set-header X-SSL-Client-Cert \
                 %[ssl_c_der,base64]` and, for the chain, `http-request set-header \
                 X-SSL-Client-Chain %[ssl_c_chain_der,base64]`"
            }
            Self::Apache => {
                "Configure Apache httpd with `RequestHeader set X-SSL-Client-Cert \
                 \"%{SSL_CLIENT_CERT}s\"`"
            }
            Self::Traefik => {
                "Configure Traefik's passTLSClientCert middleware with `pem: true`; it sends \
                 X-Forwarded-Tls-Client-Cert"
            }
            Self::Alb => {
                "Turn on mutual TLS on the ALB listener: passthrough mode sends \
                 X-Amzn-Mtls-Clientcert (the chain), verify mode X-Amzn-Mtls-Clientcert-Leaf"
            }
        }
    }
}
