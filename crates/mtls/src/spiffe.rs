//! SPIFFE IDs: a validated `spiffe://trust-domain/path` type (re-exported from
//! [`identity`](crate::identity)).
//!
//! ```
//! use mtls::identity::SpiffeId;
//!
//! let id: SpiffeId = "spiffe://prod.example.org/ns/api/sa/api".parse()?;
//! assert_eq!(id.trust_domain(), "prod.example.org");
//! assert_eq!(id.path(), "/ns/api/sa/api");
//! assert_eq!(id.to_string(), "spiffe://prod.example.org/ns/api/sa/api");
//!
//! let err = "spiffe://prod.example.org/ns//api".parse::<SpiffeId>().unwrap_err();
//! assert_eq!(err.to_string(), "SPIFFE ID path has an empty segment (`//`)");
//! # Ok::<_, mtls::identity::SpiffeIdError>(())
//! ```

use std::fmt;
use std::str::FromStr;

/// The longest SPIFFE ID accepted, in bytes (the SPIFFE specification's limit for URI SANs).
pub(crate) const MAX_SPIFFE_ID_LEN: usize = 2048;

const SCHEME: &str = "spiffe://";

/// A validated SPIFFE ID, `spiffe://trust-domain/path`.
///
/// The rules are those of the [SPIFFE ID specification]:
///
/// * the scheme is `spiffe`, in lowercase, followed by `://`;
/// * the trust domain is non-empty and made of lowercase ASCII letters, digits, `.`, `-`
///   and `_` (so no userinfo `@`, no port `:`, no uppercase);
/// * the path is either empty or `/segment/segment…`, where every segment is non-empty, made
///   of ASCII letters, digits, `.`, `-` and `_`, and is neither `.` nor `..`; there is no
///   trailing slash;
/// * there is no query (`?`) and no fragment (`#`);
/// * the whole ID is at most 2048 bytes.
///
/// Parse one with [`str::parse`] / [`FromStr`]; [`Display`](fmt::Display) gives back exactly
/// the parsed string. Comparison, ordering and hashing use the string form, which is
/// canonical because the rules admit no alternative spellings (lowercase scheme and trust
/// domain, no percent-encoding, no trailing slash). With the `serde` feature it serializes
/// as that string (and deserializes with validation).
///
/// [SPIFFE ID specification]: https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md
///
/// ```
/// use mtls::identity::SpiffeId;
///
/// let id: SpiffeId = "spiffe://example.org".parse()?;
/// assert_eq!(id.trust_domain(), "example.org");
/// assert_eq!(id.path(), "");
/// assert!("spiffe://Example.org".parse::<SpiffeId>().is_err());
/// # Ok::<_, mtls::identity::SpiffeIdError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    id: String,
    /// Byte index in `id` where the trust domain ends and the path starts.
    td_end: usize,
}

impl SpiffeId {
    /// The trust domain, e.g. `prod.example.org`.
    pub fn trust_domain(&self) -> &str {
        self.id.get(SCHEME.len()..self.td_end).unwrap_or_default()
    }

    /// The path, e.g. `/ns/api/sa/api`; empty for an ID that names a whole trust domain.
    pub fn path(&self) -> &str {
        self.id.get(self.td_end..).unwrap_or_default()
    }

    /// The whole ID as a string, e.g. `spiffe://prod.example.org/ns/api/sa/api`.
    pub fn as_str(&self) -> &str {
        &self.id
    }

    /// Whether this ID lies at or below `prefix` on a path-segment boundary, in the same trust
    /// domain: `spiffe://td/ns/prod` is under `spiffe://td/ns/prod` and `spiffe://td/ns`, but
    /// not under `spiffe://td/ns/pro`.
    pub(crate) fn is_under(&self, prefix: &Self) -> bool {
        if self.trust_domain() != prefix.trust_domain() {
            return false;
        }
        match self.path().strip_prefix(prefix.path()) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }
}

/// Whether `uri` claims to be a SPIFFE ID: it starts with `spiffe://`, with the scheme
/// compared case-insensitively (so `SPIFFE://x` is a malformed SPIFFE ID, not some other URI).
pub(crate) fn looks_like_spiffe(uri: &str) -> bool {
    uri.get(..SCHEME.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(SCHEME))
}

/// Validates a bare trust domain name (`prod.example.org`).
pub(crate) fn validate_trust_domain(td: &str) -> Result<(), SpiffeIdError> {
    if td.is_empty() {
        return Err(SpiffeIdError::MissingTrustDomain);
    }
    if td.len() > MAX_SPIFFE_ID_LEN - SCHEME.len() {
        return Err(SpiffeIdError::TooLong {
            len: td.len() + SCHEME.len(),
        });
    }
    for ch in td.chars() {
        match ch {
            'a'..='z' | '0'..='9' | '.' | '-' | '_' => {}
            '@' => return Err(SpiffeIdError::Userinfo),
            ':' => return Err(SpiffeIdError::Port),
            '?' => return Err(SpiffeIdError::Query),
            '#' => return Err(SpiffeIdError::Fragment),
            ch => return Err(SpiffeIdError::BadTrustDomainChar { ch }),
        }
    }
    Ok(())
}

fn validate_path(path: &str) -> Result<(), SpiffeIdError> {
    let Some(rest) = path.strip_prefix('/') else {
        // Unreachable through `from_str` (the path starts at the first '/'), kept for safety.
        return Err(SpiffeIdError::EmptySegment);
    };
    let mut segments = rest.split('/').peekable();
    while let Some(seg) = segments.next() {
        if seg.is_empty() {
            return Err(if segments.peek().is_none() {
                SpiffeIdError::TrailingSlash
            } else {
                SpiffeIdError::EmptySegment
            });
        }
        if seg == "." || seg == ".." {
            return Err(SpiffeIdError::DotSegment);
        }
        for ch in seg.chars() {
            match ch {
                'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_' => {}
                '?' => return Err(SpiffeIdError::Query),
                '#' => return Err(SpiffeIdError::Fragment),
                ch => return Err(SpiffeIdError::BadPathChar { ch }),
            }
        }
    }
    Ok(())
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(SpiffeIdError::Empty);
        }
        if s.len() > MAX_SPIFFE_ID_LEN {
            return Err(SpiffeIdError::TooLong { len: s.len() });
        }
        let Some(rest) = s.strip_prefix(SCHEME) else {
            return Err(SpiffeIdError::WrongScheme);
        };
        let td_len = rest.find('/').unwrap_or(rest.len());
        let (td, path) = rest.split_at(td_len);
        validate_trust_domain(td)?;
        if !path.is_empty() {
            validate_path(path)?;
        }
        Ok(Self {
            id: s.to_owned(),
            td_end: SCHEME.len() + td_len,
        })
    }
}

impl TryFrom<&str> for SpiffeId {
    type Error = SpiffeIdError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

impl fmt::Debug for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpiffeId({:?})", self.id)
    }
}

impl AsRef<str> for SpiffeId {
    fn as_ref(&self) -> &str {
        &self.id
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for SpiffeId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.id)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for SpiffeId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a string is not a valid SPIFFE ID, or why a certificate has no usable SPIFFE ID.
///
/// The first group of variants names the rule of the SPIFFE ID specification that failed;
/// the last three come from [`PeerIdentity::require_spiffe_id`](crate::identity::PeerIdentity::require_spiffe_id).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpiffeIdError {
    /// The string is empty.
    #[error("SPIFFE ID is empty; expected spiffe://TRUST_DOMAIN/PATH")]
    Empty,
    /// Longer than 2048 bytes.
    #[error("SPIFFE ID is {len} bytes long; the limit is 2048")]
    TooLong {
        /// Length of the input, in bytes.
        len: usize,
    },
    /// Does not start with `spiffe://` (lowercase).
    #[error("SPIFFE ID must start with `spiffe://` (lowercase scheme)")]
    WrongScheme,
    /// Nothing between `spiffe://` and the path.
    #[error("SPIFFE ID has no trust domain; expected spiffe://TRUST_DOMAIN/PATH")]
    MissingTrustDomain,
    /// A character outside `[a-z0-9._-]` in the trust domain.
    #[error(
        "SPIFFE ID trust domain contains {ch:?}; only lowercase letters, digits, '.', '-' and '_' are allowed"
    )]
    BadTrustDomainChar {
        /// The offending character.
        ch: char,
    },
    /// `user@` before the trust domain.
    #[error("SPIFFE ID must not contain userinfo (`user@`)")]
    Userinfo,
    /// `:port` after the trust domain.
    #[error("SPIFFE ID must not contain a port")]
    Port,
    /// A `?query`.
    #[error("SPIFFE ID must not contain a query (`?`)")]
    Query,
    /// A `#fragment`.
    #[error("SPIFFE ID must not contain a fragment (`#`)")]
    Fragment,
    /// `//` in the path.
    #[error("SPIFFE ID path has an empty segment (`//`)")]
    EmptySegment,
    /// A `.` or `..` path segment.
    #[error("SPIFFE ID path must not contain `.` or `..` segments")]
    DotSegment,
    /// The path ends with `/`.
    #[error("SPIFFE ID path must not end with `/`")]
    TrailingSlash,
    /// A character outside `[A-Za-z0-9._-]` in a path segment (percent-encoding is not allowed).
    #[error(
        "SPIFFE ID path contains {ch:?}; only letters, digits, '.', '-' and '_' are allowed in segments"
    )]
    BadPathChar {
        /// The offending character.
        ch: char,
    },
    /// The certificate has no URI SAN starting with `spiffe://`.
    #[error("the certificate has no SPIFFE ID (no URI SAN starting with spiffe://)")]
    NotInCertificate,
    /// The certificate has more than one URI SAN starting with `spiffe://`; the SPIFFE X.509-SVID
    /// specification allows exactly one, so none of them is trusted.
    #[error(
        "the certificate has {} URI SANs starting with spiffe:// ({}); an X.509-SVID must have exactly one",
        uris.len(),
        uris.join(", ")
    )]
    MultipleInCertificate {
        /// The SPIFFE-looking URI SANs, in certificate order.
        uris: Vec<String>,
    },
    /// The certificate's only `spiffe://` URI SAN is not a valid SPIFFE ID.
    #[error("the certificate's URI SAN {uri:?} is not a valid SPIFFE ID: {reason}")]
    InvalidInCertificate {
        /// The URI SAN as found in the certificate.
        uri: String,
        /// Which rule it breaks.
        reason: Box<Self>,
    },
}

/// Applies the certificate extraction rule to a certificate's URI SANs: exactly one URI SAN
/// starting with `spiffe://` (scheme compared case-insensitively), and it must parse.
pub(crate) fn spiffe_from_uris(uris: &[String]) -> Result<SpiffeId, SpiffeIdError> {
    let mut candidates = uris.iter().filter(|u| looks_like_spiffe(u));
    let Some(first) = candidates.next() else {
        return Err(SpiffeIdError::NotInCertificate);
    };
    if candidates.next().is_some() {
        return Err(SpiffeIdError::MultipleInCertificate {
            uris: uris
                .iter()
                .filter(|u| looks_like_spiffe(u))
                .cloned()
                .collect(),
        });
    }
    first
        .parse()
        .map_err(|reason| SpiffeIdError::InvalidInCertificate {
            uri: first.clone(),
            reason: Box::new(reason),
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn ok(s: &str) -> SpiffeId {
        match s.parse::<SpiffeId>() {
            Ok(id) => id,
            Err(e) => panic!("{s:?} should parse: {e}"),
        }
    }

    fn err(s: &str) -> SpiffeIdError {
        match s.parse::<SpiffeId>() {
            Ok(id) => panic!("{s:?} should not parse, got {id:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn valid_ids_round_trip() {
        for s in [
            "spiffe://example.org",
            "spiffe://example.org/a",
            "spiffe://prod.example.org/ns/api/sa/api",
            "spiffe://td_1-x.y/A.b-c_D/..x/x..",
            "spiffe://1/2",
        ] {
            let id = ok(s);
            assert_eq!(id.to_string(), s);
            assert_eq!(ok(id.as_str()), id);
        }
        let id = ok("spiffe://prod.example.org/ns/api");
        assert_eq!(id.trust_domain(), "prod.example.org");
        assert_eq!(id.path(), "/ns/api");
        assert_eq!(ok("spiffe://td").path(), "");
    }

    #[test]
    fn each_rule_has_its_error() {
        use SpiffeIdError as E;
        let cases: &[(&str, E)] = &[
            ("", E::Empty),
            ("http://example.org/a", E::WrongScheme),
            ("SPIFFE://example.org/a", E::WrongScheme),
            ("spiffe:/example.org", E::WrongScheme),
            ("spiffe://", E::MissingTrustDomain),
            ("spiffe:///a", E::MissingTrustDomain),
            ("spiffe://Bad_Domain/x", E::BadTrustDomainChar { ch: 'B' }),
            ("spiffe://ex ample/x", E::BadTrustDomainChar { ch: ' ' }),
            ("spiffe://user@td/x", E::Userinfo),
            ("spiffe://td:8443/x", E::Port),
            ("spiffe://td?x", E::Query),
            ("spiffe://td/a?x", E::Query),
            ("spiffe://td#x", E::Fragment),
            ("spiffe://td/a#x", E::Fragment),
            ("spiffe://td/a//b", E::EmptySegment),
            ("spiffe://td//", E::EmptySegment),
            ("spiffe://td/", E::TrailingSlash),
            ("spiffe://td/a/", E::TrailingSlash),
            ("spiffe://td/../x", E::DotSegment),
            ("spiffe://td/./x", E::DotSegment),
            ("spiffe://td/x/..", E::DotSegment),
            ("spiffe://td/a%20b", E::BadPathChar { ch: '%' }),
            ("spiffe://td/é", E::BadPathChar { ch: 'é' }),
        ];
        for (input, want) in cases {
            assert_eq!(&err(input), want, "input {input:?}");
        }
        let long = format!("spiffe://td/{}", "a".repeat(2040));
        assert_eq!(err(&long), E::TooLong { len: long.len() });
        let max = format!("spiffe://td/{}", "a".repeat(2048 - 12));
        assert_eq!(ok(&max).as_str().len(), 2048);
    }

    #[test]
    fn error_messages_say_what_is_wrong() {
        assert_eq!(
            err("spiffe://Bad_Domain/x").to_string(),
            "SPIFFE ID trust domain contains 'B'; only lowercase letters, digits, '.', '-' and '_' are allowed"
        );
        assert_eq!(
            err("spiffe://td/a/").to_string(),
            "SPIFFE ID path must not end with `/`"
        );
    }

    #[test]
    fn prefix_matching_is_on_segment_boundaries() {
        let prefix = ok("spiffe://td/ns/prod");
        assert!(ok("spiffe://td/ns/prod").is_under(&prefix));
        assert!(ok("spiffe://td/ns/prod/sa/x").is_under(&prefix));
        assert!(!ok("spiffe://td/ns/production").is_under(&prefix));
        assert!(!ok("spiffe://td/ns").is_under(&prefix));
        assert!(!ok("spiffe://other/ns/prod").is_under(&prefix));
        assert!(ok("spiffe://td/anything").is_under(&ok("spiffe://td")));
        assert!(!ok("spiffe://td2/anything").is_under(&ok("spiffe://td")));
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_uses_the_string_form() {
        let id = ok("spiffe://td/a");
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"spiffe://td/a\"");
        assert_eq!(serde_json::from_str::<SpiffeId>(&json).unwrap(), id);
        let err = serde_json::from_str::<SpiffeId>("\"spiffe://td/\"").unwrap_err();
        assert!(err.to_string().contains("must not end with `/`"), "{err}");
    }

    #[test]
    fn extraction_rule() {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            spiffe_from_uris(&v(&["https://x", "spiffe://td/a"])),
            Ok(ok("spiffe://td/a"))
        );
        assert_eq!(
            spiffe_from_uris(&v(&["https://x"])),
            Err(SpiffeIdError::NotInCertificate)
        );
        assert!(matches!(
            spiffe_from_uris(&v(&["spiffe://td/a", "SPIFFE://td/b"])),
            Err(SpiffeIdError::MultipleInCertificate { uris }) if uris.len() == 2
        ));
        assert!(matches!(
            spiffe_from_uris(&v(&["Spiffe://td/a"])),
            Err(SpiffeIdError::InvalidInCertificate { .. })
        ));
    }
}
