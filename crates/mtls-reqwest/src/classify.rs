//! Telling TLS failures apart in a [`reqwest::Error`].

use std::error::Error as StdError;
use std::fmt;
use std::io;

use mtls::rustls::{self, AlertDescription, CertificateError};

/// Why a TLS connection failed, as far as the client can tell.
///
/// Obtained with [`classify`] from a [`reqwest::Error`] (or [`classify_error`] from any
/// error). The server-certificate cases are exact: this client refused the server
/// during the handshake, for the reason given. When the *server* refuses this client
/// (no certificate, a certificate from a CA it does not trust, revoked, denied by its
/// policy), all the client learns is the TLS alert the server sent, if it arrives:
///
/// - Under TLS 1.2 the server refuses during the handshake and the alert always arrives:
///   [`RefusedByServer`](Self::RefusedByServer).
/// - Under TLS 1.3 the client's side of the handshake is finished before the server has
///   looked at the client certificate, so the refusal surfaces while sending the request
///   or reading the response: as [`RefusedByServer`](Self::RefusedByServer) when the alert
///   is read (also over HTTP/2, whose I/O errors keep only the message: the alert is then
///   recognised by rustls' message text), or as a closed or reset connection (then
///   [`classify`] returns `None`) when the server's close overtakes the alert. The
///   server's log has the reason either way.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The server ended the handshake with a fatal alert: usually it did not accept our
    /// client certificate (`CertificateRequired`: none was sent; `UnknownCA`,
    /// `BadCertificate`, `CertificateRevoked`, `CertificateExpired`: the certificate was
    /// refused; `AccessDenied`: the server's policy refused our identity).
    RefusedByServer(AlertDescription),
    /// The server's certificate does not chain to any CA this client trusts (or an
    /// intermediate is missing from the server's chain).
    UnknownServerCa,
    /// The server's certificate is valid, but the server failed this client's
    /// [`server_policy`](mtls::ClientBuilder::server_policy).
    ServerNotAuthorized,
    /// The server's certificate was refused for another reason: expired, not valid for
    /// the host name in the URL, revoked, wrong extended key usage, …
    InvalidServerCertificate(CertificateError),
    /// Another TLS error (e.g. no protocol version or ALPN protocol in common).
    Other(rustls::Error),
}

impl TlsFailure {
    /// Maps a rustls error seen by a client.
    pub fn from_rustls(error: &rustls::Error) -> Self {
        match error {
            rustls::Error::AlertReceived(alert) => Self::RefusedByServer(*alert),
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
                Self::UnknownServerCa
            }
            rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure) => {
                Self::ServerNotAuthorized
            }
            rustls::Error::InvalidCertificate(other) => {
                Self::InvalidServerCertificate(other.clone())
            }
            other => Self::Other(other.clone()),
        }
    }

    /// Whether the server refused this client (it sent a fatal alert).
    pub fn is_refused_by_server(&self) -> bool {
        matches!(self, Self::RefusedByServer(_))
    }

    /// Whether this client refused the server's certificate.
    pub fn is_server_rejected(&self) -> bool {
        matches!(
            self,
            Self::UnknownServerCa | Self::ServerNotAuthorized | Self::InvalidServerCertificate(_)
        )
    }
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RefusedByServer(alert) => write!(
                f,
                "the server refused the TLS handshake (alert {alert:?}); \
                 check that this client's certificate is issued by a CA the server trusts, \
                 is valid, and is allowed by the server's policy (the server's log says which)"
            ),
            Self::UnknownServerCa => f.write_str(
                "the server's certificate is not issued by a trusted CA: \
                 pass the CA that issued it (or the missing intermediate) to .ca(..)",
            ),
            Self::ServerNotAuthorized => f.write_str(
                "the server's certificate is valid but the server is not allowed by the \
                 client's server policy",
            ),
            Self::InvalidServerCertificate(e) => {
                write!(f, "the server's certificate was refused: {e}")
            }
            Self::Other(e) => write!(f, "TLS failed: {e}"),
        }
    }
}

impl StdError for TlsFailure {}

/// Finds the TLS failure behind a reqwest error, if there is one.
///
/// Walks the error's [`source`](StdError::source) chain (including errors wrapped inside
/// `std::io::Error`s, which the chain skips) to the [`rustls::Error`]. Returns `None` for
/// failures that are not TLS failures (DNS, connection refused, timeouts, HTTP errors) and
/// for a connection the server closed without an alert.
///
/// ```
/// use mtls_reqwest::{classify, TlsFailure};
///
/// fn explain(err: &reqwest::Error) -> String {
///     match classify(err) {
///         Some(TlsFailure::ServerNotAuthorized) => "not the server we expected".into(),
///         Some(f @ TlsFailure::RefusedByServer(_)) => format!("we were refused: {f}"),
///         Some(other) => other.to_string(),
///         None => err.to_string(),
///     }
/// }
/// # let _ = explain;
/// ```
pub fn classify(error: &reqwest::Error) -> Option<TlsFailure> {
    classify_error(error)
}

/// [`classify`] for any error (e.g. the `io::Error` of a raw [`mtls::Client::connect`]).
pub fn classify_error(error: &(dyn StdError + 'static)) -> Option<TlsFailure> {
    classify_at(error, 0)
}

const MAX_DEPTH: usize = 32;

fn classify_at(error: &(dyn StdError + 'static), depth: usize) -> Option<TlsFailure> {
    let mut current = Some(error);
    let mut depth = depth;
    while let Some(e) = current {
        if depth >= MAX_DEPTH {
            return None;
        }
        depth += 1;
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(TlsFailure::from_rustls(tls));
        }
        if let Some(failure) = e.downcast_ref::<TlsFailure>() {
            return Some(failure.clone());
        }
        if let Some(io) = e.downcast_ref::<io::Error>() {
            if let Some(found) = io.get_ref().and_then(|inner| classify_at(inner, depth)) {
                return Some(found);
            }
            if let Some(alert) = alert_in_message(io) {
                return Some(TlsFailure::RefusedByServer(alert));
            }
        }
        current = e.source();
    }
    None
}

/// The h2 crate keeps I/O errors as kind and message only, so an alert that arrives on
/// an HTTP/2 connection after the handshake (a TLS 1.3 refusal) reaches reqwest's error as
/// `io::Error(InvalidData, "received fatal alert: NAME")`, rustls' `Display` of
/// [`rustls::Error::AlertReceived`]. Recognised only when NAME is one of rustls' alert
/// names, so other messages are never mistaken for an alert.
fn alert_in_message(error: &io::Error) -> Option<AlertDescription> {
    if error.kind() != io::ErrorKind::InvalidData {
        return None;
    }
    let message = error.to_string();
    let name = message.strip_prefix("received fatal alert: ")?;
    (0..=u8::MAX).map(AlertDescription::from).find(|alert| {
        !matches!(alert, AlertDescription::Unknown(_)) && format!("{alert:?}") == name
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrap(Box<dyn StdError + Send + Sync>);

    impl fmt::Display for Wrap {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("wrapped")
        }
    }

    impl StdError for Wrap {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&*self.0)
        }
    }

    fn in_io(e: rustls::Error) -> Wrap {
        Wrap(Box::new(Wrap(Box::new(io::Error::new(
            io::ErrorKind::InvalidData,
            e,
        )))))
    }

    #[test]
    fn maps_rustls_errors_through_io_and_wrappers() {
        let cases = [
            (
                rustls::Error::AlertReceived(AlertDescription::CertificateRequired),
                TlsFailure::RefusedByServer(AlertDescription::CertificateRequired),
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
                TlsFailure::UnknownServerCa,
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure),
                TlsFailure::ServerNotAuthorized,
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::Expired),
                TlsFailure::InvalidServerCertificate(CertificateError::Expired),
            ),
            (
                rustls::Error::NoApplicationProtocol,
                TlsFailure::Other(rustls::Error::NoApplicationProtocol),
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(
                classify_error(&in_io(error.clone())),
                Some(expected.clone())
            );
            assert_eq!(classify_error(&error), Some(expected));
        }
    }

    #[test]
    fn alert_in_an_h2_style_message() {
        let shown = rustls::Error::AlertReceived(AlertDescription::CertificateRequired).to_string();
        let e = Wrap(Box::new(io::Error::new(io::ErrorKind::InvalidData, shown)));
        assert_eq!(
            classify_error(&e),
            Some(TlsFailure::RefusedByServer(
                AlertDescription::CertificateRequired
            ))
        );
        for (kind, msg) in [
            (
                io::ErrorKind::InvalidData,
                "received fatal alert: NoSuchAlert",
            ),
            (
                io::ErrorKind::InvalidData,
                "received fatal alert: Unknown(200)",
            ),
            (io::ErrorKind::Other, "received fatal alert: AccessDenied"),
            (io::ErrorKind::InvalidData, "something else"),
        ] {
            assert_eq!(classify_error(&io::Error::new(kind, msg)), None, "{msg}");
        }
    }

    #[test]
    fn non_tls_errors_are_none() {
        let e = Wrap(Box::new(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            "refused",
        )));
        assert_eq!(classify_error(&e), None);
        assert_eq!(
            classify_error(&io::Error::from(io::ErrorKind::TimedOut)),
            None
        );
    }

    #[test]
    fn predicates_and_messages() {
        let refused = TlsFailure::RefusedByServer(AlertDescription::UnknownCA);
        assert!(refused.is_refused_by_server() && !refused.is_server_rejected());
        assert!(TlsFailure::UnknownServerCa.is_server_rejected());
        assert!(TlsFailure::UnknownServerCa.to_string().contains(".ca("));
        assert!(refused.to_string().contains("UnknownCA"));
    }
}
