#![allow(clippy::unwrap_used, clippy::expect_used)]

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};
use rustls::pki_types::CertificateDer;

use super::*;

mod combinators;
mod fail_closed;
mod kinds;
mod string_form;

const OID_OU_ARCS: [u64; 4] = [2, 5, 4, 11];

/// What a test certificate should contain.
#[derive(Default)]
struct Spec<'a> {
    cn: Option<&'a str>,
    /// A second CN, encoded before `cn` (so `cn` stays the most specific one).
    cn2: Option<&'a str>,
    o: Option<&'a str>,
    ous: &'a [&'a str],
    dns: &'a [&'a str],
    ips: &'a [&'a str],
    uris: &'a [&'a str],
    emails: &'a [&'a str],
}

fn ia5(s: &str) -> rcgen::string::Ia5String {
    match s.try_into() {
        Ok(v) => v,
        Err(e) => panic!("{s:?} is not IA5: {e}"),
    }
}

fn der_with_key(spec: &Spec<'_>, key: &KeyPair) -> CertificateDer<'static> {
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    if let Some(o) = spec.o {
        p.distinguished_name.push(DnType::OrganizationName, o);
    }
    for (i, ou) in spec.ous.iter().enumerate() {
        // rcgen keeps one value per type; a custom type with the OU OID adds more OUs.
        let ty = match i {
            0 => DnType::OrganizationalUnitName,
            1 => DnType::CustomDnType(OID_OU_ARCS.to_vec()),
            _ => panic!("at most two OUs"),
        };
        p.distinguished_name.push(ty, *ou);
    }
    if let Some(cn) = spec.cn2 {
        p.distinguished_name
            .push(DnType::CustomDnType(vec![2, 5, 4, 3]), cn);
    }
    if let Some(cn) = spec.cn {
        p.distinguished_name.push(DnType::CommonName, cn);
    }
    p.subject_alt_names = spec
        .dns
        .iter()
        .map(|d| SanType::DnsName(ia5(d)))
        .chain(
            spec.ips
                .iter()
                .map(|i| SanType::IpAddress(i.parse().expect("ip"))),
        )
        .chain(spec.uris.iter().map(|u| SanType::URI(ia5(u))))
        .chain(spec.emails.iter().map(|e| SanType::Rfc822Name(ia5(e))))
        .collect();
    p.self_signed(key).expect("cert").der().clone()
}

fn peer(spec: Spec<'_>) -> PeerIdentity {
    let key = KeyPair::generate().expect("key");
    PeerIdentity::from_chain(&[der_with_key(&spec, &key)]).expect("parses")
}

fn parse(s: &str) -> Policy {
    match s.parse() {
        Ok(p) => p,
        Err(e) => panic!("{s:?} should parse: {e}"),
    }
}

fn parse_err(s: &str) -> String {
    match s.parse::<Policy>() {
        Ok(p) => panic!("{s:?} should not parse, got {p}"),
        Err(e) => e.to_string(),
    }
}

#[track_caller]
fn passes(p: &Policy, peer: &PeerIdentity) {
    if let Err(d) = p.authorize(peer) {
        panic!("{p} should pass {}: {d}", peer.subject());
    }
}

#[track_caller]
fn denied(p: &Policy, peer: &PeerIdentity) -> Denied {
    match p.authorize(peer) {
        Ok(()) => panic!("{p} should deny {peer:?}"),
        Err(d) => d,
    }
}
