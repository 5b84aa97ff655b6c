//! Merged single-kind allowlists and their matching rules.

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;

use super::{Node, Policy, PolicyError};
use crate::identity::{PeerIdentity, SpiffeId, SpiffeIdError};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Kind {
    Cn,
    Dns,
    Ip,
    Uri,
    Email,
    Spiffe,
    SpiffePrefix,
    O,
    Ou,
    Issuer,
    Sha256,
    SpkiSha256,
}

impl Kind {
    pub(super) const ALL: [Self; 12] = [
        Self::Cn,
        Self::Dns,
        Self::Ip,
        Self::Uri,
        Self::Email,
        Self::Spiffe,
        Self::SpiffePrefix,
        Self::O,
        Self::Ou,
        Self::Issuer,
        Self::Sha256,
        Self::SpkiSha256,
    ];

    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Cn => "cn",
            Self::Dns => "dns",
            Self::Ip => "ip",
            Self::Uri => "uri",
            Self::Email => "email",
            Self::Spiffe => "spiffe",
            Self::SpiffePrefix => "spiffe-prefix",
            Self::O => "o",
            Self::Ou => "ou",
            Self::Issuer => "issuer",
            Self::Sha256 => "sha256",
            Self::SpkiSha256 => "spki-sha256",
        }
    }

    pub(super) fn expected(self) -> &'static str {
        match self {
            Self::Cn => "cn:NAME",
            Self::Dns => "dns:NAME or dns:*.DOMAIN",
            Self::Ip => "ip:ADDRESS or ip:NETWORK/LENGTH",
            Self::Uri => "uri:URI",
            Self::Email => "email:ADDRESS",
            Self::Spiffe => "spiffe:TRUST_DOMAIN or spiffe:spiffe://TRUST_DOMAIN/PATH",
            Self::SpiffePrefix => "spiffe-prefix:spiffe://TRUST_DOMAIN/PATH",
            Self::O => "o:NAME",
            Self::Ou => "ou:NAME",
            Self::Issuer => "issuer:DN (e.g. issuer:\"CN=Example CA,O=Example\")",
            Self::Sha256 => "sha256:HEX (64 hex digits, colons allowed)",
            Self::SpkiSha256 => "spki-sha256:HEX (64 hex digits, colons allowed)",
        }
    }

    pub(super) fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(name))
    }
}

/// One merged allowlist of a single kind. Only the fields of its kind are used.
#[derive(Clone)]
pub(super) struct Allowlist {
    pub(super) kind: Kind,
    /// Values as displayed, in insertion order, without duplicates.
    pub(super) shown: Vec<String>,
    /// Exact-match keys (normalized for the kind).
    pub(super) exact: HashSet<String>,
    /// DNS wildcard suffixes (`example.org` for `*.example.org`).
    pub(super) wildcard: HashSet<String>,
    pub(super) ips: HashSet<IpAddr>,
    pub(super) nets: Vec<(IpAddr, u8)>,
    pub(super) pins: HashSet<[u8; 32]>,
    pub(super) prefixes: Vec<SpiffeId>,
}

impl Allowlist {
    pub(super) fn new(kind: Kind) -> Self {
        Self {
            kind,
            shown: Vec::new(),
            exact: HashSet::new(),
            wildcard: HashSet::new(),
            ips: HashSet::new(),
            nets: Vec::new(),
            pins: HashSet::new(),
            prefixes: Vec::new(),
        }
    }

    /// Records `shown`; returns false if it was already there (then nothing else is added).
    pub(super) fn show(&mut self, shown: String) -> bool {
        if self.shown.contains(&shown) {
            return false;
        }
        self.shown.push(shown);
        true
    }

    pub(super) fn add_exact(&mut self, shown: String, key: String) {
        if self.show(shown) {
            self.exact.insert(key);
        }
    }

    pub(super) fn merge(&mut self, other: &Self) {
        for s in &other.shown {
            if !self.shown.contains(s) {
                self.shown.push(s.clone());
            }
        }
        self.exact.extend(other.exact.iter().cloned());
        self.wildcard.extend(other.wildcard.iter().cloned());
        self.ips.extend(other.ips.iter().copied());
        for n in &other.nets {
            if !self.nets.contains(n) {
                self.nets.push(*n);
            }
        }
        self.pins.extend(other.pins.iter().copied());
        for p in &other.prefixes {
            if !self.prefixes.contains(p) {
                self.prefixes.push(p.clone());
            }
        }
    }

    pub(super) fn into_policy(self) -> Policy {
        Policy::from_node(Node::Allow(Box::new(self)))
    }

    /// Whether the peer matches; a [`Miss`] says why not, and whether it *cannot tell*
    /// (the field is present but unreadable or ambiguous), which a `not(…)` must not turn
    /// into a pass.
    pub(super) fn check(&self, peer: &PeerIdentity) -> Result<(), Miss> {
        let subject = peer.subject_ambiguity();
        match self.kind {
            Kind::Cn => {
                if subject.cn_count > 1 {
                    return Err(Miss::unknown(format!(
                        "the subject has {} common names, so a rule on the CN cannot tell \
                         which one counts",
                        subject.cn_count
                    )));
                }
                match peer.common_name() {
                    Some(cn) if self.exact.contains(cn) => Ok(()),
                    Some(cn) => Err(Miss::no(format!("common name {cn:?} not in allowlist"))),
                    None if subject.unreadable_cn => Err(Miss::unknown(
                        "the subject's common name is not a character string".to_owned(),
                    )),
                    None => Err(Miss::no(
                        "the certificate subject has no common name".to_owned(),
                    )),
                }
            }
            Kind::Dns => {
                if peer.dns_names().iter().any(|n| self.dns_matches(n)) {
                    Ok(())
                } else {
                    Err(Miss::no(none_matched("DNS SAN", peer.dns_names())))
                }
            }
            Kind::Ip => {
                let ips = peer.ip_addresses();
                if ips.iter().any(|ip| self.ip_matches(*ip)) {
                    Ok(())
                } else {
                    Err(Miss::no(none_matched("IP SAN", ips)))
                }
            }
            Kind::Uri => {
                if peer.uris().iter().any(|u| self.exact.contains(u.as_str())) {
                    Ok(())
                } else {
                    Err(Miss::no(none_matched("URI SAN", peer.uris())))
                }
            }
            Kind::Email => {
                if peer
                    .emails()
                    .iter()
                    .any(|e| self.exact.contains(&normalize_email(e)))
                {
                    Ok(())
                } else {
                    Err(Miss::no(none_matched("e-mail SAN", peer.emails())))
                }
            }
            Kind::Spiffe => {
                let id = spiffe_id(peer)?;
                if self.exact.contains(id.as_str()) || self.exact.contains(id.trust_domain()) {
                    Ok(())
                } else {
                    Err(Miss::no(format!("SPIFFE ID {:?} not allowed", id.as_str())))
                }
            }
            Kind::SpiffePrefix => {
                let id = spiffe_id(peer)?;
                if self.prefixes.iter().any(|p| id.is_under(p)) {
                    Ok(())
                } else {
                    Err(Miss::no(format!(
                        "SPIFFE ID {:?} is not under an allowed prefix",
                        id.as_str()
                    )))
                }
            }
            Kind::O => self.check_values(
                peer.organizations(),
                subject.unreadable_o,
                "organization (O)",
            ),
            Kind::Ou => self.check_values(
                peer.org_units(),
                subject.unreadable_ou,
                "organizational unit (OU)",
            ),
            Kind::Issuer => {
                let issuer = peer.issuer();
                let found = self.exact.contains(issuer)
                    || crate::dn::normalize_dn(issuer).is_ok_and(|n| self.exact.contains(&n));
                if found {
                    Ok(())
                } else {
                    Err(Miss::no(format!("issuer {issuer:?} not in allowlist")))
                }
            }
            Kind::Sha256 => {
                if self.pins.contains(peer.fingerprint_sha256_bytes()) {
                    Ok(())
                } else {
                    Err(Miss::no(format!(
                        "certificate SHA-256 fingerprint {} is not pinned",
                        peer.fingerprint_sha256()
                    )))
                }
            }
            Kind::SpkiSha256 => {
                if self.pins.contains(peer.spki_sha256_bytes()) {
                    Ok(())
                } else {
                    Err(Miss::no(format!(
                        "public key (SPKI) SHA-256 {} is not pinned",
                        peer.spki_sha256()
                    )))
                }
            }
        }
    }

    /// O / OU: any value in the allowlist matches; otherwise an unreadable value means we
    /// cannot tell.
    fn check_values(&self, values: &[String], unreadable: bool, what: &str) -> Result<(), Miss> {
        if values.iter().any(|v| self.exact.contains(v.as_str())) {
            Ok(())
        } else if unreadable {
            Err(Miss::unknown(format!(
                "the subject has an {what} value that is not a character string"
            )))
        } else {
            Err(Miss::no(none_matched(what, values)))
        }
    }

    /// An IP SAN matches as written and as its IPv4 / IPv4-mapped IPv6 twin, so
    /// `::ffff:10.1.2.3` is inside `ip:10.0.0.0/8` and `10.1.2.3` inside
    /// `ip:::ffff:10.0.0.0/104` (the allowlist's exact addresses are kept canonical).
    fn ip_matches(&self, ip: IpAddr) -> bool {
        let canonical = ip.to_canonical();
        let mapped = match canonical {
            IpAddr::V4(v4) => Some(IpAddr::V6(v4.to_ipv6_mapped())),
            IpAddr::V6(_) => None,
        };
        self.ips.contains(&canonical)
            || [Some(ip), Some(canonical), mapped]
                .into_iter()
                .flatten()
                .any(|ip| self.nets.iter().any(|&(net, len)| in_network(ip, net, len)))
    }

    pub(super) fn dns_matches(&self, name: &str) -> bool {
        let name = name.strip_suffix('.').unwrap_or(name);
        let lowered;
        let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            lowered = name.to_ascii_lowercase();
            lowered.as_str()
        } else {
            name
        };
        if self.exact.contains(name) {
            return true;
        }
        match name.split_once('.') {
            Some((label, rest)) => {
                !label.is_empty() && !label.contains('*') && self.wildcard.contains(rest)
            }
            None => false,
        }
    }
}

/// Why a peer did not match a rule.
#[derive(Debug)]
pub(super) struct Miss {
    pub(super) reason: String,
    /// The field is present but unreadable or ambiguous: the rule cannot tell.
    pub(super) unknown: bool,
}

impl Miss {
    pub(super) fn no(reason: String) -> Self {
        Self {
            reason,
            unknown: false,
        }
    }

    pub(super) fn unknown(reason: String) -> Self {
        Self {
            reason,
            unknown: true,
        }
    }
}

/// The SPIFFE ID for the SPIFFE rules: none in the certificate is a plain miss; several,
/// or an invalid one, is "cannot tell".
fn spiffe_id(peer: &PeerIdentity) -> Result<&SpiffeId, Miss> {
    peer.require_spiffe_id().map_err(|e| match e {
        SpiffeIdError::NotInCertificate => Miss::no(e.to_string()),
        other => Miss::unknown(other.to_string()),
    })
}

pub(super) fn none_matched<T: fmt::Debug>(what: &str, have: &[T]) -> String {
    const SHOWN: usize = 5;
    if have.is_empty() {
        return format!("the certificate has no {what}");
    }
    let mut list = have
        .iter()
        .take(SHOWN)
        .map(|v| format!("{v:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    if have.len() > SHOWN {
        list.push_str(&format!(", … ({} more)", have.len() - SHOWN));
    }
    format!("no {what} in allowlist (the certificate has {list})")
}

/// Lower-cases and drops trailing dots (all of them, so that normalising is idempotent and
/// a policy displays as a string that parses back to the same policy).
pub(super) fn normalize_dns(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

pub(super) fn normalize_email(addr: &str) -> String {
    match addr.rsplit_once('@') {
        Some((local, domain)) => format!("{local}@{}", domain.to_ascii_lowercase()),
        None => addr.to_owned(),
    }
}

pub(super) fn in_network(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

pub(super) fn parse_hex_pin(kind: Kind, value: &str) -> Result<[u8; 32], PolicyError> {
    let bad = |reason: String| PolicyError::BadValue {
        spec: format!("{}:{value}", kind.name()),
        reason,
    };
    let digits: Vec<u8> = value.bytes().filter(|&b| b != b':').collect();
    if let Some(&c) = digits.iter().find(|b| !b.is_ascii_hexdigit()) {
        return Err(bad(format!(
            "{:?} is not a hex digit; expected 64 hex digits (SHA-256), with or without colons",
            char::from(c)
        )));
    }
    if digits.len() != 64 {
        return Err(bad(format!(
            "expected 64 hex digits (SHA-256), found {}",
            digits.len()
        )));
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let hi = char::from(pair[0]).to_digit(16).unwrap_or(0);
        let lo = char::from(pair[1]).to_digit(16).unwrap_or(0);
        *o = u8::try_from(hi * 16 + lo).unwrap_or(0);
    }
    Ok(out)
}

pub(super) fn parse_ip_value(value: &str) -> Result<Result<IpAddr, (IpAddr, u8)>, PolicyError> {
    let spec = format!("ip:{value}");
    match value.split_once('/') {
        None => value.parse().map(Ok).map_err(|_| PolicyError::BadValue {
            spec,
            reason: format!(
                "{value:?} is not an IP address (expected e.g. 10.0.0.1, 2001:db8::1 or a network such as 10.0.0.0/8)"
            ),
        }),
        Some((addr, len)) => {
            let addr: IpAddr = addr.parse().map_err(|_| PolicyError::BadValue {
                spec: spec.clone(),
                reason: format!(
                    "{addr:?} is not an IP address (expected a network such as 10.0.0.0/8 or 2001:db8::/32)"
                ),
            })?;
            let len: u8 = len.parse().map_err(|_| PolicyError::BadValue {
                spec: spec.clone(),
                reason: format!("prefix length {len:?} is not a number"),
            })?;
            check_network(addr, len).map_err(|reason| PolicyError::BadValue { spec, reason })?;
            Ok(Err((addr, len)))
        }
    }
}

pub(super) fn check_network(addr: IpAddr, len: u8) -> Result<(), String> {
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if len > max {
        return Err(format!(
            "prefix length {len} is longer than {max} bits for {addr}"
        ));
    }
    let canonical = match addr {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4((u32::from(a) & mask).into())
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6((u128::from(a) & mask).into())
        }
    };
    if canonical != addr {
        return Err(format!(
            "{addr}/{len} has host bits set; the network is {canonical}/{len}"
        ));
    }
    Ok(())
}
