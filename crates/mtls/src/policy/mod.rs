//! Authorization policies: which verified peers may connect.
//!
//! A policy runs **after** the peer's certificate chain has been verified (trusted CA,
//! validity period, extended key usage, revocation). It only decides whether that verified
//! peer is *allowed*; it never makes an unverified certificate acceptable. The same policies
//! authorize clients on a server and servers on a client.
//!
//! [`Authorize`] is the trait (closures implement it); [`Policy`] is a cheap-to-clone handle
//! with ready-made rules, combinators and a string form for configuration files and command
//! lines. A refusal is a [`Denied`] naming the rule that failed.
//!
//! ```
//! use mtls::policy::Policy;
//!
//! // Built in code...
//! let a = Policy::any_of([
//!     Policy::spiffe_path_prefix("spiffe://prod.example.org/ns/payments")?,
//!     Policy::dns(["*.internal.example.org"]),
//! ]);
//! // ...or parsed, e.g. from repeated `--allow` flags.
//! let b = Policy::parse_any(["spiffe-prefix:spiffe://prod.example.org/ns/payments", "dns:*.internal.example.org"])?;
//! assert_eq!(a.to_string(), b.to_string());
//! assert_eq!(
//!     a.to_string(),
//!     "any(spiffe-prefix:spiffe://prod.example.org/ns/payments, dns:*.internal.example.org)"
//! );
//!
//! // Display parses back to an equivalent policy.
//! let c: Policy = a.to_string().parse()?;
//! assert_eq!(c.to_string(), a.to_string());
//!
//! let err = "cn".parse::<Policy>().unwrap_err();
//! assert!(err.to_string().contains("expected `:` after `cn`"));
//! # Ok::<_, mtls::policy::PolicyError>(())
//! ```
//!
//! # Rules
//!
//! | string | constructor | passes when |
//! |---|---|---|
//! | `any` | [`Policy::any_verified`] | always (any certificate that chains to a trusted CA) |
//! | `cn:NAME` | [`Policy::common_name`] | [`PeerIdentity::common_name`] equals NAME (case-sensitive) |
//! | `dns:NAME`, `dns:*.DOMAIN` | [`Policy::dns`] | a DNS SAN equals NAME (ASCII case-insensitive, one trailing dot ignored), or has exactly one label before `.DOMAIN` |
//! | `ip:ADDR`, `ip:NET/LEN` | [`Policy::ip`], [`Policy::ip_network`] | an IP SAN equals ADDR or lies in NET/LEN |
//! | `uri:URI` | [`Policy::uri`] | a URI SAN equals URI exactly |
//! | `email:ADDR` | [`Policy::email`] | an rfc822Name SAN equals ADDR (domain part case-insensitive) |
//! | `spiffe:TRUST_DOMAIN` | [`Policy::spiffe_trust_domain`] | the SPIFFE ID is in that trust domain |
//! | `spiffe:spiffe://TD/PATH` | [`Policy::spiffe_id`] | the SPIFFE ID equals it |
//! | `spiffe-prefix:spiffe://TD/PATH` | [`Policy::spiffe_path_prefix`] | the SPIFFE ID is that ID or below it, on a segment boundary |
//! | `o:NAME` / `ou:NAME` | [`Policy::organization`] / [`Policy::org_unit`] | any O / OU of the subject equals NAME |
//! | `issuer:DN` | [`Policy::issuer`] | the issuer DN equals DN (RFC 4514; attribute types case-insensitive, spaces around separators ignored) |
//! | `sha256:HEX` | [`Policy::fingerprint_sha256`] | SHA-256 of the leaf certificate equals HEX |
//! | `spki-sha256:HEX` | [`Policy::spki_sha256`] | SHA-256 of the leaf's SubjectPublicKeyInfo equals HEX |
//! | `any(P, …)` / `all(P, …)` / `not(P)` | [`Policy::any_of`] / [`Policy::all_of`] / [`Policy::not`] | some / every / not P passes |
//! | `custom:NAME` | [`Policy::from_fn`], [`Policy::custom`] | the code passes (display only; cannot be parsed) |
//!
//! DNS notes: a wildcard pattern `*.example.org` matches `a.example.org` but neither
//! `a.b.example.org` nor `example.org`. Certificate SANs are taken literally: a certificate
//! SAN `*.svc.local` matches only the allowlist entry `*.svc.local`. The SPIFFE rules need a
//! valid SPIFFE ID in the certificate (see [`PeerIdentity`]'s extraction rule). An
//! IPv4-mapped IPv6 address (`::ffff:10.1.2.3`) matches the IPv4 rules (`ip:10.0.0.0/8`),
//! and an IPv4 address the IPv4-mapped ones.
//!
//! # Deny rules fail closed
//!
//! Each rule answers *match*, *no match* or *cannot tell*; the last when a field it reads
//! is present but cannot be read with certainty: several `spiffe://` URI SANs or an
//! invalid one (SPIFFE rules), several common names or one that is not a character string
//! (`cn:`), an O or OU value that is not a character string (`o:`, `ou:`, when no readable
//! value matched). `not(P)` turns *match* into *no match* and back, but keeps *cannot
//! tell*; `any(…)` passes on the first *match*, `all(…)` fails on the first *no match*.
//! A policy passes only on *match*. So `all(any, not(spiffe:spiffe://evil.example/x))`
//! refuses a certificate with two `spiffe://evil.example/…` URI SANs, which an evaluation
//! that read "no SPIFFE ID" as "not evil" would have admitted. Custom rules answer *match*
//! or *no match*.
//!
//! # Name constraints and what they do not cover
//!
//! A CA's name constraints limit the names its sub-CAs may certify, but rustls' WebPki
//! verifier applies them per name form: DNS constraints to DNS SANs, IP constraints to IP
//! SANs; it refuses every certificate below a directoryName or URI constraint (it does
//! not implement those), and checks nothing against the subject's CN. So a sub-CA
//! limited to `permitted;DNS:team-a.example` can still mint a certificate with
//! `CN=admin` or the URI SAN `spiffe://prod.example/admin`, which `cn:admin` or
//! `spiffe:prod.example` would admit. When a `cn:` or
//! `spiffe:` rule must only admit certificates of one issuing CA, pin the issuer too:
//! `all(issuer:"CN=Team A CA,O=Example", cn:admin)`.
//!
//! Rules of the same kind given together (several values to one constructor, or several
//! atoms of one kind directly inside `any(…)`) are merged into a single hash-set lookup, so
//! a long allowlist costs about as much as a short one.
//!
//! # String grammar
//!
//! ```text
//! policy      = combinator / atom
//! combinator  = ("any" / "all") "(" policy *("," policy) ")"
//!             / "not" "(" policy ")"
//! atom        = "any"                        ; any verified peer
//!             / kind ":" value
//! kind        = "cn" / "dns" / "ip" / "uri" / "email" / "spiffe" / "spiffe-prefix"
//!             / "o" / "ou" / "issuer" / "sha256" / "spki-sha256"   ; case-insensitive
//! value       = quoted / unquoted
//! quoted      = DQUOTE *( any char except DQUOTE and "\" / "\" any char ) DQUOTE
//! ```
//!
//! * Whitespace around tokens is ignored; an unquoted value is trimmed.
//! * **Top level** (a whole string that is a single atom): the unquoted value is everything
//!   after the first `:`, so `issuer:CN=Example CA, O=Example` works without quotes. As a
//!   guard against `cn:a, cn:b` (two rules meant, one CN `a, cn:b` written), a comma followed
//!   by `KIND:` or `any(`/`all(`/`not(` is an error there; quote the value if it is meant.
//! * **Inside `any(…)`, `all(…)`, `not(…)`**: an unquoted value ends at the next `,` or `)`
//!   and may not contain `(` or `"`; quote values with commas or parentheses, e.g.
//!   `any(issuer:"CN=a, O=b", cn:x)`. In quotes, `\"` is a quote and `\\` a backslash.
//! * `any()` / `all()` with nothing inside are errors; nesting is limited to 32 levels.
//! * [`Display`](std::fmt::Display) writes the same grammar (quoting where needed), and the
//!   result parses back to an equivalent policy. A policy that can never pass (an empty
//!   allowlist or combinator) displays as `not(any)`.
//!
//! [`PeerIdentity`]: crate::identity::PeerIdentity
//! [`PeerIdentity::common_name`]: crate::identity::PeerIdentity::common_name

use std::net::IpAddr;
use std::sync::Arc;

use crate::identity::{PeerIdentity, SpiffeId};
use crate::spiffe::{looks_like_spiffe, validate_trust_domain};

mod allowlist;
mod authorize;
mod display;
mod error;
mod eval;
mod parse;
#[cfg(test)]
mod tests;

use allowlist::{Allowlist, Kind, check_network, normalize_dns, normalize_email, parse_hex_pin};
pub use authorize::{Authorize, Denied};
pub use error::PolicyError;

/// An authorization policy: a cheap-to-clone (`Arc`) rule tree.
///
/// See the [module docs](self) for the rules, the string grammar and an example.
/// Policies are built with the constructors below, parsed with [`FromStr`](std::str::FromStr) /
/// [`parse_any`](Self::parse_any), and shown with [`Display`](std::fmt::Display) in the same
/// syntax.
#[derive(Clone)]
pub struct Policy {
    node: Arc<Node>,
}

enum Node {
    AnyVerified,
    Allow(Box<Allowlist>),
    AnyOf(Vec<Policy>),
    AllOf(Vec<Policy>),
    Not(Policy),
    Custom {
        name: String,
        inner: Arc<dyn Authorize>,
    },
}

impl Policy {
    fn from_node(node: Node) -> Self {
        Self {
            node: Arc::new(node),
        }
    }

    fn strings<I, S>(kind: Kind, values: I, key: impl Fn(&str) -> String) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut list = Allowlist::new(kind);
        for v in values {
            let v: String = v.into();
            let k = key(&v);
            list.add_exact(v, k);
        }
        list.into_policy()
    }

    /// Every peer whose certificate chains to a trusted CA; string `any`.
    ///
    /// Authorization is an explicit choice: use this to say "any verified peer" (like
    /// ghostunnel's `--allow-all`).
    pub fn any_verified() -> Self {
        Self::from_node(Node::AnyVerified)
    }

    /// Allowlist of common names ([`PeerIdentity::common_name`], exact and case-sensitive);
    /// string `cn:NAME`.
    pub fn common_name<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::strings(Kind::Cn, names, str::to_owned)
    }

    /// Allowlist of DNS SANs; string `dns:NAME` or `dns:*.DOMAIN`.
    ///
    /// Names compare ASCII case-insensitively, ignoring one trailing dot. An entry
    /// `*.example.org` matches a SAN with exactly one (non-wildcard) label before
    /// `.example.org`: `a.example.org`, not `a.b.example.org` nor `example.org`. A wildcard
    /// SAN in the certificate is taken literally and only matches the identical entry.
    pub fn dns<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut list = Allowlist::new(Kind::Dns);
        for name in names {
            let name = normalize_dns(&name.into());
            if list.show(name.clone()) {
                if let Some(suffix) = name.strip_prefix("*.") {
                    list.wildcard.insert(suffix.to_owned());
                }
                // The literal entry also matches a certificate SAN spelled the same way.
                list.exact.insert(name);
            }
        }
        list.into_policy()
    }

    /// Allowlist of IP address SANs; string `ip:ADDRESS`.
    pub fn ip<I>(addrs: I) -> Self
    where
        I: IntoIterator<Item = IpAddr>,
    {
        let mut list = Allowlist::new(Kind::Ip);
        for addr in addrs {
            if list.show(addr.to_string()) {
                list.ips.insert(addr.to_canonical());
            }
        }
        list.into_policy()
    }

    /// Allowlist of IP networks `(address, prefix length)` containing an IP SAN; string
    /// `ip:NETWORK/LENGTH`, e.g. `ip:10.0.0.0/8`.
    ///
    /// # Errors
    ///
    /// [`PolicyError::BadValue`] if a prefix length is longer than the address or the address
    /// has bits set beyond the prefix (`10.0.0.1/8`).
    pub fn ip_network<I>(networks: I) -> Result<Self, PolicyError>
    where
        I: IntoIterator<Item = (IpAddr, u8)>,
    {
        let mut list = Allowlist::new(Kind::Ip);
        for (addr, len) in networks {
            check_network(addr, len).map_err(|reason| PolicyError::BadValue {
                spec: format!("ip:{addr}/{len}"),
                reason,
            })?;
            if list.show(format!("{addr}/{len}")) {
                list.nets.push((addr, len));
            }
        }
        Ok(list.into_policy())
    }

    /// Allowlist of URI SANs, compared exactly; string `uri:URI`.
    pub fn uri<I, S>(uris: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::strings(Kind::Uri, uris, str::to_owned)
    }

    /// Allowlist of e-mail (rfc822Name) SANs; the part after the last `@` compares
    /// case-insensitively, the local part exactly; string `email:ADDRESS`.
    pub fn email<I, S>(addrs: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::strings(Kind::Email, addrs, normalize_email)
    }

    /// Allowlist of SPIFFE trust domains (`prod.example.org`, or `spiffe://prod.example.org`);
    /// the peer's SPIFFE ID must be in one of them; string `spiffe:TRUST_DOMAIN`.
    ///
    /// # Errors
    ///
    /// [`PolicyError::BadValue`] if a trust domain is not valid (uppercase, port, path, …).
    pub fn spiffe_trust_domain<I, S>(trust_domains: I) -> Result<Self, PolicyError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut list = Allowlist::new(Kind::Spiffe);
        for td in trust_domains {
            let raw = td.as_ref();
            let bad = |reason: String| PolicyError::BadValue {
                spec: format!("spiffe:{raw}"),
                reason,
            };
            let td = if looks_like_spiffe(raw) {
                let id: SpiffeId = raw.parse().map_err(|e| bad(format!("{e}")))?;
                if !id.path().is_empty() {
                    return Err(bad(format!(
                        "{raw:?} has a path; use spiffe:{raw} (exact ID) or spiffe-prefix:{raw} instead of a trust domain"
                    )));
                }
                id.trust_domain().to_owned()
            } else {
                validate_trust_domain(raw).map_err(|e| {
                    bad(format!(
                        "not a valid trust domain ({}); expected e.g. prod.example.org",
                        e.to_string().replace("SPIFFE ID ", "")
                    ))
                })?;
                raw.to_owned()
            };
            list.add_exact(td.clone(), td);
        }
        Ok(list.into_policy())
    }

    /// Allowlist of exact SPIFFE IDs; string `spiffe:spiffe://TD/PATH`.
    pub fn spiffe_id<I>(ids: I) -> Self
    where
        I: IntoIterator<Item = SpiffeId>,
    {
        let mut list = Allowlist::new(Kind::Spiffe);
        for id in ids {
            list.add_exact(id.to_string(), id.to_string());
        }
        list.into_policy()
    }

    /// SPIFFE IDs at or below a path prefix, on a segment boundary: `spiffe://td/ns/prod`
    /// matches `spiffe://td/ns/prod` and `spiffe://td/ns/prod/sa/x` but not
    /// `spiffe://td/ns/production`. String `spiffe-prefix:spiffe://td/ns/prod`. Combine
    /// several with [`any_of`](Self::any_of).
    ///
    /// # Errors
    ///
    /// [`PolicyError::BadValue`] if the prefix is not a valid SPIFFE ID (e.g. it ends with `/`).
    pub fn spiffe_path_prefix(trust_domain_and_prefix: &str) -> Result<Self, PolicyError> {
        let id: SpiffeId = trust_domain_and_prefix
            .parse()
            .map_err(|e| PolicyError::BadValue {
                spec: format!("spiffe-prefix:{trust_domain_and_prefix}"),
                reason: format!("{e}; expected e.g. spiffe://prod.example.org/ns/payments"),
            })?;
        let mut list = Allowlist::new(Kind::SpiffePrefix);
        list.show(id.to_string());
        list.prefixes.push(id);
        Ok(list.into_policy())
    }

    /// Allowlist of organizations: passes if any `O` of the subject is listed (exact);
    /// string `o:NAME`.
    pub fn organization<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::strings(Kind::O, names, str::to_owned)
    }

    /// Allowlist of organizational units: passes if any `OU` of the subject is listed
    /// (exact); string `ou:NAME`.
    pub fn org_unit<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::strings(Kind::Ou, names, str::to_owned)
    }

    /// Allowlist of issuer distinguished names (RFC 4514, as [`PeerIdentity::issuer`]
    /// prints them); string `issuer:DN`.
    ///
    /// Attribute types compare case-insensitively (`cn=` is `CN=`, `2.5.4.3=` too), spaces
    /// around `,`, `+` and `=` are ignored, escapes are resolved; values compare exactly.
    ///
    /// # Errors
    ///
    /// [`PolicyError::BadValue`] if a name is not an RFC 4514 distinguished name. (Unlike
    /// the other string allowlists this one parses its input, so it can fail.)
    pub fn issuer<I, S>(dns: I) -> Result<Self, PolicyError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut list = Allowlist::new(Kind::Issuer);
        for dn in dns {
            let dn = dn.as_ref();
            let normalized =
                crate::dn::normalize_dn(dn).map_err(|reason| PolicyError::BadValue {
                    spec: format!("issuer:{dn}"),
                    reason: format!("{reason}; expected e.g. CN=Example CA,O=Example"),
                })?;
            list.add_exact(normalized.clone(), normalized);
        }
        Ok(list.into_policy())
    }

    /// Pins of the leaf certificate's SHA-256 fingerprint, as hex (any case, colons
    /// optional); string `sha256:HEX`.
    ///
    /// # Errors
    ///
    /// [`PolicyError::BadValue`] if a pin is not 64 hex digits.
    pub fn fingerprint_sha256<I, S>(pins: I) -> Result<Self, PolicyError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::pins(Kind::Sha256, pins)
    }

    /// Pins of the SHA-256 of the leaf's SubjectPublicKeyInfo (survives re-issuing for the
    /// same key); string `spki-sha256:HEX`.
    ///
    /// # Errors
    ///
    /// [`PolicyError::BadValue`] if a pin is not 64 hex digits.
    pub fn spki_sha256<I, S>(pins: I) -> Result<Self, PolicyError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::pins(Kind::SpkiSha256, pins)
    }

    fn pins<I, S>(kind: Kind, pins: I) -> Result<Self, PolicyError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut list = Allowlist::new(kind);
        for pin in pins {
            let bytes = parse_hex_pin(kind, pin.as_ref())?;
            if list.show(crate::identity::hex_lower(&bytes)) {
                list.pins.insert(bytes);
            }
        }
        Ok(list.into_policy())
    }

    /// Passes if any of `policies` passes; string `any(P1, P2, …)`.
    ///
    /// Nested `any_of`s are flattened and allowlists of the same kind merged into one set
    /// lookup. With no policies it denies everyone. When it denies, [`Denied::reason`] lists
    /// every alternative's reason.
    pub fn any_of<I>(policies: I) -> Self
    where
        I: IntoIterator<Item = Self>,
    {
        enum Item {
            List(Box<Allowlist>),
            Other(Policy),
        }
        let mut items: Vec<Item> = Vec::new();
        let push = |p: Self, items: &mut Vec<Item>| match &*p.node {
            Node::Allow(list) => {
                let same = items.iter_mut().find_map(|i| match i {
                    Item::List(l) if l.kind == list.kind => Some(l),
                    _ => None,
                });
                match same {
                    Some(l) => l.merge(list),
                    None => items.push(Item::List(list.clone())),
                }
            }
            _ => items.push(Item::Other(p)),
        };
        for p in policies {
            if let Node::AnyOf(children) = &*p.node {
                for c in children {
                    push(c.clone(), &mut items);
                }
            } else {
                push(p, &mut items);
            }
        }
        let mut out: Vec<Self> = items
            .into_iter()
            .map(|i| match i {
                Item::List(l) => l.into_policy(),
                Item::Other(p) => p,
            })
            .collect();
        if out.len() == 1
            && let Some(p) = out.pop()
        {
            return p;
        }
        Self::from_node(Node::AnyOf(out))
    }

    /// Passes if every one of `policies` passes; string `all(P1, P2, …)`. Nested `all_of`s
    /// are flattened. With no policies it denies everyone (write
    /// [`any_verified`](Self::any_verified) to allow all). When it denies, the [`Denied`] is
    /// the first failing policy's.
    pub fn all_of<I>(policies: I) -> Self
    where
        I: IntoIterator<Item = Self>,
    {
        let mut out: Vec<Self> = Vec::new();
        for p in policies {
            if let Node::AllOf(children) = &*p.node {
                out.extend(children.iter().cloned());
            } else {
                out.push(p);
            }
        }
        if out.len() == 1
            && let Some(p) = out.pop()
        {
            return p;
        }
        Self::from_node(Node::AllOf(out))
    }

    /// Passes if `policy` denies; string `not(P)`.
    #[allow(clippy::should_implement_trait)] // a constructor, not `!policy`
    pub fn not(policy: Self) -> Self {
        Self::from_node(Node::Not(policy))
    }

    /// A policy written in code, shown as `custom:NAME` (which cannot be parsed back). If
    /// `f` denies with an empty rule, the rule is reported as `custom:NAME`.
    pub fn from_fn<F>(name: &str, f: F) -> Self
    where
        F: Fn(&PeerIdentity) -> Result<(), Denied> + Send + Sync + 'static,
    {
        Self::custom(name, f)
    }

    /// Wraps any [`Authorize`] implementation, shown as `custom:NAME` (which cannot be
    /// parsed back).
    pub fn custom(name: &str, authorize: impl Authorize) -> Self {
        Self::from_node(Node::Custom {
            name: name.to_owned(),
            inner: Arc::new(authorize),
        })
    }

    /// Whether this is exactly [`any_verified`](Self::any_verified) (every verified peer).
    pub fn is_any_verified(&self) -> bool {
        matches!(*self.node, Node::AnyVerified)
    }

    /// Parses several policy strings (e.g. repeated `--allow` flags) and combines them with
    /// [`any_of`](Self::any_of); a single string gives that policy.
    ///
    /// # Errors
    ///
    /// The first string's [`PolicyError`], or [`PolicyError::Empty`] if there are none.
    pub fn parse_any<I, S>(specs: I) -> Result<Self, PolicyError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let parsed = specs
            .into_iter()
            .map(|s| s.as_ref().parse())
            .collect::<Result<Vec<Self>, _>>()?;
        if parsed.is_empty() {
            return Err(PolicyError::Empty);
        }
        Ok(Self::any_of(parsed))
    }
}
