//! [`HeaderFormat`]: the proxy formats, their names and default header names.

use std::fmt;

/// Which proxy format a header carries.
///
/// See the [module docs](super#formats) for what each proxy sends and how to set it up.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderFormat {
    /// RFC 9440 `Client-Cert` / `Client-Cert-Chain` (RFC 8941 byte sequences of the DER).
    Rfc9440,
    /// Envoy's `x-forwarded-client-cert`.
    Xfcc,
    /// nginx `$ssl_client_escaped_cert` (or the deprecated `$ssl_client_cert`).
    Nginx,
    /// HAProxy `ssl_c_der` / `ssl_c_chain_der` through the `base64` or `hex` converter.
    Haproxy,
    /// Apache httpd `%{SSL_CLIENT_CERT}s` in a `RequestHeader`.
    Apache,
    /// Traefik's `passTLSClientCert` middleware (`X-Forwarded-Tls-Client-Cert`).
    Traefik,
    /// AWS Application Load Balancer mutual TLS (`X-Amzn-Mtls-Clientcert`).
    Alb,
}

impl HeaderFormat {
    /// Every format, in declaration order.
    pub const ALL: [Self; 7] = [
        Self::Rfc9440,
        Self::Xfcc,
        Self::Nginx,
        Self::Haproxy,
        Self::Apache,
        Self::Traefik,
        Self::Alb,
    ];

    /// The format named `name`: `rfc9440`, `xfcc`, `nginx`, `haproxy`, `apache`,
    /// `traefik` or `alb` (ASCII case ignored), as [`name`](Self::name) writes them.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name))
    }

    /// The format's name, e.g. `xfcc`; [`from_name`](Self::from_name) reads it back.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rfc9440 => "rfc9440",
            Self::Xfcc => "xfcc",
            Self::Nginx => "nginx",
            Self::Haproxy => "haproxy",
            Self::Apache => "apache",
            Self::Traefik => "traefik",
            Self::Alb => "alb",
        }
    }

    /// The (lowercase) name of the header that carries the client certificate: the one
    /// the proxy uses, or for nginx, HAProxy and Apache, whose header is set in their
    /// configuration, the usual `x-ssl-client-cert`.
    pub fn default_header(self) -> &'static str {
        match self {
            Self::Rfc9440 => "client-cert",
            Self::Xfcc => "x-forwarded-client-cert",
            Self::Nginx | Self::Haproxy | Self::Apache => "x-ssl-client-cert",
            Self::Traefik => "x-forwarded-tls-client-cert",
            Self::Alb => "x-amzn-mtls-clientcert",
        }
    }

    /// The (lowercase) name of the separate chain header, for the formats that have one:
    /// `client-cert-chain` for RFC 9440, and `x-ssl-client-chain` for HAProxy's
    /// `ssl_c_chain_der` (this crate's choice; HAProxy has no standard name).
    pub fn default_chain_header(self) -> Option<&'static str> {
        match self {
            Self::Rfc9440 => Some("client-cert-chain"),
            Self::Haproxy => Some("x-ssl-client-chain"),
            Self::Xfcc | Self::Nginx | Self::Apache | Self::Traefik | Self::Alb => None,
        }
    }
}

impl fmt::Display for HeaderFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
