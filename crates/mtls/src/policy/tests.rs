#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};
use rustls::pki_types::CertificateDer;

use super::*;

const OID_OU_ARCS: [u64; 4] = [2, 5, 4, 11];

/// What a test certificate should contain.
#[derive(Default)]
pub(super) struct Spec<'a> {
    pub(super) cn: Option<&'a str>,
    /// A second CN, encoded before `cn` (so `cn` stays the most specific one).
    pub(super) cn2: Option<&'a str>,
    pub(super) o: Option<&'a str>,
    pub(super) ous: &'a [&'a str],
    pub(super) dns: &'a [&'a str],
    pub(super) ips: &'a [&'a str],
    pub(super) uris: &'a [&'a str],
    pub(super) emails: &'a [&'a str],
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

pub(super) fn peer(spec: Spec<'_>) -> PeerIdentity {
    let key = KeyPair::generate().expect("key");
    PeerIdentity::from_chain(&[der_with_key(&spec, &key)]).expect("parses")
}

pub(super) fn parse(s: &str) -> Policy {
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
pub(super) fn passes(p: &Policy, peer: &PeerIdentity) {
    if let Err(d) = p.authorize(peer) {
        panic!("{p} should pass {}: {d}", peer.subject());
    }
}

#[track_caller]
pub(super) fn denied(p: &Policy, peer: &PeerIdentity) -> Denied {
    match p.authorize(peer) {
        Ok(()) => panic!("{p} should deny {peer:?}"),
        Err(d) => d,
    }
}

// === each kind passes one certificate and refuses another ===

#[test]
fn any_verified() {
    let p = Policy::any_verified();
    assert!(p.is_any_verified());
    assert_eq!(p.to_string(), "any");
    passes(&p, &peer(Spec::default()));
    assert!(parse("ANY").is_any_verified());
    assert!(!parse("cn:x").is_any_verified());
}

#[test]
fn common_name() {
    let p = parse("cn:alice");
    passes(
        &p,
        &peer(Spec {
            cn: Some("alice"),
            ..Spec::default()
        }),
    );
    let d = denied(
        &p,
        &peer(Spec {
            cn: Some("bob"),
            ..Spec::default()
        }),
    );
    assert_eq!(d.rule(), "cn:alice");
    assert_eq!(d.reason(), "common name \"bob\" not in allowlist");
    assert_eq!(
        d.to_string(),
        "denied by rule `cn:alice`: common name \"bob\" not in allowlist"
    );
    let d = denied(
        &p,
        &peer(Spec {
            o: Some("alice"),
            ..Spec::default()
        }),
    );
    assert_eq!(d.reason(), "the certificate subject has no common name");
    // Case-sensitive.
    denied(
        &p,
        &peer(Spec {
            cn: Some("Alice"),
            ..Spec::default()
        }),
    );
}

#[test]
fn dns_exact_and_wildcard() {
    let cert = |names: &'static [&'static str]| {
        peer(Spec {
            dns: names,
            ..Spec::default()
        })
    };
    let exact = Policy::dns(["API.Example.org."]);
    assert_eq!(exact.to_string(), "dns:api.example.org");
    passes(&exact, &cert(&["other.example", "api.example.org"]));
    passes(&exact, &cert(&["API.EXAMPLE.ORG."]));
    let d = denied(&exact, &cert(&["api.example.com"]));
    assert_eq!(
        d.reason(),
        "no DNS SAN in allowlist (the certificate has \"api.example.com\")"
    );
    assert_eq!(
        denied(&exact, &cert(&[])).reason(),
        "the certificate has no DNS SAN"
    );

    let wild = parse("dns:*.example.org");
    passes(&wild, &cert(&["a.example.org"]));
    passes(&wild, &cert(&["A.Example.Org."]));
    denied(&wild, &cert(&["a.b.example.org"]));
    denied(&wild, &cert(&["example.org"]));
    denied(&wild, &cert(&[".example.org"]));
    denied(&wild, &cert(&["aexample.org"]));
    // Certificate wildcards are literal.
    passes(&wild, &cert(&["*.example.org"]));
    denied(&wild, &cert(&["*.a.example.org"]));
    denied(&wild, &cert(&["a*.example.org"]));
    denied(&parse("dns:*.local"), &cert(&["*.svc.local"]));
    passes(&parse("dns:*.svc.local"), &cert(&["*.svc.local"]));
    denied(&parse("dns:a.svc.local"), &cert(&["*.svc.local"]));
}

#[test]
fn ip_addresses_and_networks() {
    let cert = |ips: &'static [&'static str]| {
        peer(Spec {
            ips,
            ..Spec::default()
        })
    };
    let p = parse("ip:10.1.2.3");
    passes(&p, &cert(&["10.1.2.3"]));
    let d = denied(&p, &cert(&["10.1.2.4"]));
    assert_eq!(
        d.reason(),
        "no IP SAN in allowlist (the certificate has 10.1.2.4)"
    );

    let net = parse("ip:10.0.0.0/8");
    passes(&net, &cert(&["10.200.0.1"]));
    denied(&net, &cert(&["11.0.0.1"]));
    // An IPv4-mapped IPv6 SAN is the IPv4 address, for allow and deny rules alike.
    passes(&net, &cert(&["::ffff:10.0.0.1"]));
    denied(&parse("not(ip:10.0.0.0/8)"), &cert(&["::ffff:10.1.2.3"]));
    passes(&parse("ip:10.1.2.3"), &cert(&["::ffff:10.1.2.3"]));
    passes(&parse("ip:::ffff:10.1.2.3"), &cert(&["10.1.2.3"]));
    passes(&parse("ip:::ffff:10.0.0.0/104"), &cert(&["10.1.2.3"]));
    denied(&parse("ip:::ffff:10.0.0.0/104"), &cert(&["11.1.2.3"]));
    let net6 = parse("ip:2001:db8::/32");
    passes(&net6, &cert(&["2001:db8:1::7"]));
    denied(&net6, &cert(&["2001:db9::1"]));
    passes(&parse("ip:0.0.0.0/0"), &cert(&["192.0.2.1"]));
    passes(&parse("ip:::1/128"), &cert(&["::1"]));

    let addr: IpAddr = "192.0.2.1".parse().expect("ip");
    let p = Policy::any_of([
        Policy::ip([addr]),
        Policy::ip_network([("10.0.0.0".parse().expect("ip"), 8)]).expect("net"),
    ]);
    assert_eq!(p.to_string(), "any(ip:192.0.2.1, ip:10.0.0.0/8)");
    passes(&p, &cert(&["192.0.2.1"]));
    passes(&p, &cert(&["10.9.9.9"]));
    denied(&p, &cert(&["192.0.2.2"]));
    assert_eq!(
        Policy::ip_network([("10.0.0.1".parse().expect("ip"), 8)])
            .unwrap_err()
            .to_string(),
        "invalid value in `ip:10.0.0.1/8`: 10.0.0.1/8 has host bits set; the network is 10.0.0.0/8"
    );
}

#[test]
fn uri_and_email() {
    let p = parse("uri:https://example.org/x");
    passes(
        &p,
        &peer(Spec {
            uris: &["https://example.org/x"],
            ..Spec::default()
        }),
    );
    denied(
        &p,
        &peer(Spec {
            uris: &["https://example.org/X"],
            ..Spec::default()
        }),
    );

    let e = parse("email:Ops@Example.ORG");
    passes(
        &e,
        &peer(Spec {
            emails: &["Ops@example.org"],
            ..Spec::default()
        }),
    );
    denied(
        &e,
        &peer(Spec {
            emails: &["ops@example.org"],
            ..Spec::default()
        }),
    );
    let d = denied(&e, &peer(Spec::default()));
    assert_eq!(d.reason(), "the certificate has no e-mail SAN");
}

#[test]
fn spiffe_rules() {
    let with = |uri: &str| {
        peer(Spec {
            uris: &[uri],
            ..Spec::default()
        })
    };
    let api = with("spiffe://prod.example.org/ns/prod/sa/api");

    let td = parse("spiffe:prod.example.org");
    passes(&td, &api);
    denied(&td, &with("spiffe://dev.example.org/ns/prod/sa/api"));
    assert_eq!(
        Policy::spiffe_trust_domain(["spiffe://prod.example.org"])
            .expect("td")
            .to_string(),
        "spiffe:prod.example.org"
    );

    let exact = parse("spiffe:spiffe://prod.example.org/ns/prod/sa/api");
    passes(&exact, &api);
    let d = denied(&exact, &with("spiffe://prod.example.org/ns/prod/sa/web"));
    assert_eq!(
        d.reason(),
        "SPIFFE ID \"spiffe://prod.example.org/ns/prod/sa/web\" not allowed"
    );
    let id: SpiffeId = "spiffe://prod.example.org/ns/prod/sa/api"
        .parse()
        .expect("id");
    assert_eq!(Policy::spiffe_id([id]).to_string(), exact.to_string());

    let prefix = parse("spiffe-prefix:spiffe://prod.example.org/ns/prod");
    passes(&prefix, &api);
    passes(&prefix, &with("spiffe://prod.example.org/ns/prod"));
    let d = denied(&prefix, &with("spiffe://prod.example.org/ns/production"));
    assert_eq!(
        d.reason(),
        "SPIFFE ID \"spiffe://prod.example.org/ns/production\" is not under an allowed prefix"
    );
    denied(&prefix, &with("spiffe://other.org/ns/prod"));

    // No valid SPIFFE ID: the reason says why.
    let d = denied(&td, &peer(Spec::default()));
    assert_eq!(
        d.reason(),
        "the certificate has no SPIFFE ID (no URI SAN starting with spiffe://)"
    );
    let two = peer(Spec {
        uris: &["spiffe://prod.example.org/a", "spiffe://prod.example.org/b"],
        ..Spec::default()
    });
    assert!(
        denied(&td, &two)
            .reason()
            .contains("2 URI SANs starting with spiffe://")
    );
    let bad = with("spiffe://prod.example.org/a//b");
    assert!(
        denied(&prefix, &bad)
            .reason()
            .contains("not a valid SPIFFE ID")
    );
}

#[test]
fn organization_and_org_units() {
    let cert = peer(Spec {
        cn: Some("x"),
        o: Some("mtls fixtures"),
        ous: &["payments", "backend"],
        ..Spec::default()
    });
    passes(&parse("o:mtls fixtures"), &cert);
    denied(&parse("o:other"), &cert);
    passes(&parse("ou:payments"), &cert);
    passes(&parse("ou:backend"), &cert);
    let d = denied(&parse("ou:frontend"), &cert);
    assert_eq!(
        d.reason(),
        "no organizational unit (OU) in allowlist (the certificate has \"backend\", \"payments\")"
    );
    passes(&parse("all(ou:payments, ou:backend)"), &cert);
    denied(&parse("all(ou:payments, ou:frontend)"), &cert);
}

#[test]
fn issuer_distinguished_names() {
    let cert = peer(Spec {
        cn: Some("Example CA"),
        o: Some("Acme, Inc."),
        ..Spec::default()
    });
    assert_eq!(cert.issuer(), "CN=Example CA,O=Acme\\, Inc.");
    for spec in [
        "issuer:CN=Example CA,O=Acme\\, Inc.",
        "issuer:cn=Example CA, o=Acme\\, Inc.",
        "issuer:\"2.5.4.3=Example CA, O = Acme\\\\, Inc.\"",
        "any(issuer:\"CN=Example CA, O=Acme\\\\, Inc.\", cn:nobody)",
    ] {
        passes(&parse(spec), &cert);
    }
    let d = denied(&parse("issuer:CN=Example CA,O=Other"), &cert);
    assert_eq!(d.rule(), "issuer:\"CN=Example CA,O=Other\"");
    assert_eq!(
        d.reason(),
        "issuer \"CN=Example CA,O=Acme\\\\, Inc.\" not in allowlist"
    );
    // Values are case-sensitive.
    denied(&parse("issuer:CN=example ca,O=Acme\\, Inc."), &cert);
}

#[test]
fn fingerprint_and_spki_pins() {
    let key = KeyPair::generate().expect("key");
    let a = PeerIdentity::from_chain(&[der_with_key(
        &Spec {
            cn: Some("a"),
            ..Spec::default()
        },
        &key,
    )])
    .expect("a");
    let b = PeerIdentity::from_chain(&[der_with_key(
        &Spec {
            cn: Some("b"),
            ..Spec::default()
        },
        &key,
    )])
    .expect("b");
    let other = peer(Spec {
        cn: Some("a"),
        ..Spec::default()
    });

    // Upper case with colons, as openssl prints it.
    let colons = a
        .fingerprint_sha256()
        .to_ascii_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(":");
    let pin = Policy::fingerprint_sha256([colons]).expect("pin");
    assert_eq!(
        pin.to_string(),
        format!("sha256:{}", a.fingerprint_sha256())
    );
    passes(&pin, &a);
    let d = denied(&pin, &b);
    assert!(
        d.reason().starts_with("certificate SHA-256 fingerprint "),
        "{d}"
    );

    let spki = parse(&format!("spki-sha256:{}", a.spki_sha256()));
    passes(&spki, &a);
    passes(&spki, &b); // same key, re-issued
    denied(&spki, &other);
}

// === combinators ===

#[test]
fn not_any_all_semantics() {
    let alice = peer(Spec {
        cn: Some("alice"),
        o: Some("acme"),
        ..Spec::default()
    });
    let bob = peer(Spec {
        cn: Some("bob"),
        o: Some("acme"),
        ..Spec::default()
    });
    let eve = peer(Spec {
        cn: Some("eve"),
        o: Some("evil"),
        ..Spec::default()
    });

    let not_bob = parse("not(cn:bob)");
    passes(&not_bob, &alice);
    let d = denied(&not_bob, &bob);
    assert_eq!(d.rule(), "not(cn:bob)");
    assert_eq!(d.reason(), "the peer matches `cn:bob`");

    let acme_not_bob = parse("all(o:acme, not(cn:bob))");
    passes(&acme_not_bob, &alice);
    assert_eq!(denied(&acme_not_bob, &bob).rule(), "not(cn:bob)");
    let d = denied(&acme_not_bob, &eve);
    assert_eq!(d.rule(), "o:acme", "all() reports the first failing rule");

    let either = parse("any(cn:bob, o:evil)");
    passes(&either, &bob);
    passes(&either, &eve);
    let d = denied(&either, &alice);
    assert_eq!(d.rule(), "any(cn:bob, o:evil)");
    assert_eq!(
        d.reason(),
        "no alternative passed (`cn:bob`: common name \"alice\" not in allowlist; \
         `o:evil`: no organization (O) in allowlist (the certificate has \"acme\"))"
    );

    // Empty combinators deny.
    let none = Policy::any_of([]);
    assert_eq!(none.to_string(), "not(any)");
    denied(&none, &alice);
    denied(&Policy::all_of([]), &alice);
    denied(&Policy::common_name(Vec::<String>::new()), &alice);
    denied(&parse("not(any)"), &alice);
    passes(&parse("not(not(any))"), &alice);

    // Singletons collapse; nesting flattens.
    assert_eq!(Policy::any_of([parse("cn:a")]).to_string(), "cn:a");
    assert_eq!(Policy::all_of([parse("cn:a")]).to_string(), "cn:a");
    assert_eq!(
        parse("all(cn:a, all(o:b, ou:c))").to_string(),
        "all(cn:a, o:b, ou:c)"
    );
}

#[test]
fn custom_policies() {
    let p = Policy::from_fn("even-serial", |peer: &PeerIdentity| {
        if peer
            .serial()
            .ends_with(['0', '2', '4', '6', '8', 'A', 'C', 'E'])
        {
            Ok(())
        } else {
            Err(Denied::new("", "odd serial"))
        }
    });
    assert_eq!(p.to_string(), "custom:even-serial");
    assert_eq!(format!("{p:?}"), "Policy(custom:even-serial)");
    let cert = peer(Spec::default());
    if let Err(d) = p.authorize(&cert) {
        assert_eq!(d.rule(), "custom:even-serial");
        assert_eq!(d.reason(), "odd serial");
    }
    let named = Policy::custom("never", |_: &PeerIdentity| -> Result<(), Denied> {
        Err(Denied::new("my-rule", "no"))
    });
    assert_eq!(denied(&named, &cert).rule(), "my-rule");
    let combined = Policy::all_of([Policy::any_verified(), named]);
    assert_eq!(combined.to_string(), "all(any, custom:never)");
    assert_eq!(denied(&combined, &cert).rule(), "my-rule");

    // Policy is itself an Authorize, usable where a trait object is wanted.
    let dynamic: Arc<dyn Authorize> = Arc::new(parse("cn:x"));
    assert!(dynamic.authorize(&cert).is_err());
    assert!(
        parse_err("custom:even-serial")
            .contains("custom policies are written in code (Policy::from_fn / Policy::custom)")
    );
}

// === string form ===

#[test]
fn display_round_trips() {
    let pin = "ab".repeat(32);
    let cases: Vec<String> = vec![
        "any".into(),
        "cn:alice".into(),
        "cn:mtls fixtures".into(),
        "dns:api.example.org".into(),
        "dns:*.example.org".into(),
        "ip:10.0.0.1".into(),
        "ip:2001:db8::1".into(),
        "ip:10.0.0.0/8".into(),
        "ip:2001:db8::/32".into(),
        "uri:https://example.org/a?b=c".into(),
        "email:ops@example.org".into(),
        "spiffe:prod.example.org".into(),
        "spiffe:spiffe://prod.example.org/ns/api/sa/api".into(),
        "spiffe:spiffe://prod.example.org".into(),
        "spiffe-prefix:spiffe://prod.example.org/ns/prod".into(),
        "o:Acme".into(),
        "ou:payments".into(),
        "issuer:\"CN=Example CA,O=Acme\\\\, Inc.\"".into(),
        format!("sha256:{pin}"),
        format!("spki-sha256:{pin}"),
        "not(cn:bob)".into(),
        "not(any)".into(),
        "any(cn:a, cn:b)".into(),
        "any(cn:a, dns:x.example, ou:\"a, b\")".into(),
        "all(o:acme, not(any(cn:bob, cn:eve)), any(spiffe:td, ip:10.0.0.0/8))".into(),
        "cn:\"quote \\\" and \\\\ backslash\"".into(),
        "cn:\"(parens)\"".into(),
        "cn:\"\"".into(),
        "cn:\" padded \"".into(),
    ];
    for s in &cases {
        let p = parse(s);
        assert_eq!(&p.to_string(), s, "canonical display of {s:?}");
        assert_eq!(parse(&p.to_string()).to_string(), p.to_string());
    }

    // Constructed policies with awkward values round-trip too.
    let awkward = [
        "a,b",
        "x(y)",
        "q\"uote",
        "back\\slash",
        " lead",
        "trail ",
        "",
        "é ü",
    ];
    let built = [
        Policy::common_name(awkward),
        Policy::organization(awkward),
        Policy::org_unit(awkward),
        Policy::uri(awkward),
        Policy::email(awkward),
        Policy::dns(awkward),
        Policy::issuer(["CN=a\\,b+O=c", "CN=\\#x"]).expect("issuer"),
        Policy::not(Policy::all_of([
            Policy::common_name(["a"]),
            Policy::dns(["b"]),
        ])),
    ];
    for p in built {
        let shown = p.to_string();
        let again = parse(&shown);
        assert_eq!(again.to_string(), shown);
    }

    // Top-level unquoted values may contain anything, including commas.
    assert_eq!(
        parse("issuer:CN=Example CA, O=Acme").to_string(),
        "issuer:\"CN=Example CA,O=Acme\""
    );
    assert_eq!(
        parse("  cn : x ").to_string(),
        "cn:x",
        "whitespace is ignored"
    );
    assert_eq!(
        parse("CN:x").to_string(),
        "cn:x",
        "kinds are case-insensitive"
    );
    assert_eq!(parse("cn:a)b").to_string(), "cn:\"a)b\"");
}

#[test]
fn allowlists_merge_into_one_set() {
    let names: Vec<String> = (0..100).map(|i| format!("svc-{i}")).collect();
    let specs: Vec<String> = names.iter().map(|n| format!("cn:{n}")).collect();
    let parsed = Policy::parse_any(&specs).expect("parse");
    assert!(
        matches!(&*parsed.node, Node::Allow(_)),
        "merged into one allowlist"
    );
    let built = Policy::common_name(&names);
    assert_eq!(parsed.to_string(), built.to_string());
    assert!(parsed.to_string().starts_with("any(cn:svc-0, cn:svc-1, "));
    passes(
        &parsed,
        &peer(Spec {
            cn: Some("svc-99"),
            ..Spec::default()
        }),
    );
    denied(
        &parsed,
        &peer(Spec {
            cn: Some("svc-100"),
            ..Spec::default()
        }),
    );

    // Mixed kinds: one set per kind; duplicates are dropped.
    let mixed = parse("any(cn:a, dns:x.example, cn:b, dns:*.y.example, cn:a)");
    assert_eq!(
        mixed.to_string(),
        "any(cn:a, cn:b, dns:x.example, dns:*.y.example)"
    );
    match &*mixed.node {
        Node::AnyOf(children) => assert_eq!(children.len(), 2),
        _ => panic!("expected any_of"),
    }
    assert_eq!(
        Policy::parse_any(["cn:a"]).expect("one").to_string(),
        "cn:a"
    );
    assert_eq!(
        Policy::parse_any(Vec::<String>::new()).unwrap_err(),
        PolicyError::Empty
    );
}

#[test]
fn parse_errors_are_clear() {
    assert_eq!(
        parse_err("   "),
        "the policy is empty; write e.g. `any` (every verified peer), `cn:NAME`, \
         `spiffe:TRUST_DOMAIN` or `any(P1, P2)`"
    );
    assert_eq!(
        parse_err("foo:bar"),
        "unknown policy kind `foo` in `foo:bar`; valid kinds: any, cn, dns, ip, uri, email, \
         spiffe, spiffe-prefix, o, ou, issuer, sha256, spki-sha256, and the combinators \
         any(...), all(...), not(...)"
    );
    assert!(parse_err("any(cn:a, sn:b)").starts_with("unknown policy kind `sn` in `sn:b`"));
    assert!(parse_err("bogus").starts_with("unknown policy kind `bogus`"));
    assert_eq!(parse_err("cn:"), "`cn:` has an empty value; write cn:NAME");
    assert_eq!(
        parse_err("any(dns: , cn:a)"),
        "`dns:` has an empty value; write dns:NAME or dns:*.DOMAIN"
    );
    assert_eq!(
        parse_err("sha256:xyz"),
        "invalid value in `sha256:xyz`: 'x' is not a hex digit; expected 64 hex digits \
         (SHA-256), with or without colons"
    );
    assert_eq!(
        parse_err("sha256:abcd"),
        "invalid value in `sha256:abcd`: expected 64 hex digits (SHA-256), found 4"
    );
    assert_eq!(
        parse_err("ip:10.0.0.256"),
        "invalid value in `ip:10.0.0.256`: \"10.0.0.256\" is not an IP address (expected e.g. \
         10.0.0.1, 2001:db8::1 or a network such as 10.0.0.0/8)"
    );
    assert_eq!(
        parse_err("ip:10.0.0.0/33"),
        "invalid value in `ip:10.0.0.0/33`: prefix length 33 is longer than 32 bits for 10.0.0.0"
    );
    assert_eq!(
        parse_err("ip:10.0.0.0/x"),
        "invalid value in `ip:10.0.0.0/x`: prefix length \"x\" is not a number"
    );
    assert_eq!(
        parse_err("ip:10.1.0.0/8"),
        "invalid value in `ip:10.1.0.0/8`: 10.1.0.0/8 has host bits set; the network is 10.0.0.0/8"
    );
    assert_eq!(
        parse_err("any(cn:a, dns:b"),
        "syntax error in `any(cn:a, dns:b` at byte 15: missing `)` to close the `any(` at byte 3"
    );
    assert_eq!(
        parse_err("any(cn:a))"),
        "syntax error in `any(cn:a))` at byte 9: unbalanced `)`: there is no `(` to close"
    );
    assert_eq!(
        parse_err("not(cn:a, cn:b)"),
        "syntax error in `not(cn:a, cn:b)` at byte 3: not(...) takes exactly one policy"
    );
    assert_eq!(
        parse_err("all()"),
        "syntax error in `all()` at byte 4: all() needs at least one policy inside the parentheses"
    );
    assert_eq!(
        parse_err("cn"),
        "syntax error in `cn` at byte 2: expected `:` after `cn`, found the end"
    );
    assert_eq!(
        parse_err("any(cn:a(b))"),
        "syntax error in `any(cn:a(b))` at byte 8: '(' in an unquoted value inside \
         any()/all()/not(); quote the value, e.g. kind:\"a(b)\""
    );
    assert_eq!(
        parse_err("cn:\"abc"),
        "syntax error in `cn:\"abc` at byte 3: unterminated quoted value: missing closing `\"`"
    );
    assert_eq!(
        parse_err("cn:\"a\" b"),
        "syntax error in `cn:\"a\" b` at byte 7: unexpected 'b' after the quoted value"
    );
    assert_eq!(
        parse_err("foo(cn:a)"),
        "syntax error in `foo(cn:a)` at byte 0: `foo(` is not a combinator; use any(...), all(...) or not(...)"
    );
    assert_eq!(
        parse_err("any:x"),
        "syntax error in `any:x` at byte 0: `any` takes no value: write `any` alone, or any(P1, P2)"
    );
    assert_eq!(
        parse_err("any x"),
        "syntax error in `any x` at byte 4: unexpected 'x' after the policy; separate \
         alternatives inside any(...)"
    );
    assert_eq!(
        parse_err("spiffe:Prod.example.org"),
        "invalid value in `spiffe:Prod.example.org`: not a valid trust domain (trust domain \
         contains 'P'; only lowercase letters, digits, '.', '-' and '_' are allowed); expected \
         e.g. prod.example.org"
    );
    assert_eq!(
        parse_err("spiffe:spiffe://td/a/"),
        "invalid value in `spiffe:spiffe://td/a/`: SPIFFE ID path must not end with `/`; \
         expected spiffe:TRUST_DOMAIN or spiffe:spiffe://TRUST_DOMAIN/PATH"
    );
    assert_eq!(
        parse_err("spiffe-prefix:spiffe://td/ns/"),
        "invalid value in `spiffe-prefix:spiffe://td/ns/`: SPIFFE ID path must not end with `/`; \
         expected e.g. spiffe://prod.example.org/ns/payments"
    );
    assert!(
        Policy::spiffe_trust_domain(["spiffe://td/x"])
            .unwrap_err()
            .to_string()
            .contains("has a path; use spiffe:spiffe://td/x (exact ID) or spiffe-prefix:")
    );
    assert_eq!(
        parse_err("issuer:CN=a,"),
        "invalid value in `issuer:CN=a,`: the distinguished name ends with a separator; \
         expected e.g. CN=Example CA,O=Example"
    );
    assert_eq!(
        parse_err("cn:a, cn:b"),
        "syntax error in `cn:a, cn:b` at byte 4: this looks like several rules separated by \
         commas; combine them with any(P1, P2), or quote the value if the comma belongs to it"
    );
    assert!(parse_err("dns:a,any(cn:b)").contains("looks like several rules"));
    assert_eq!(parse("cn:\"a, cn:b\"").to_string(), "cn:\"a, cn:b\"");
    assert_eq!(parse("o:Acme, Inc.").to_string(), "o:\"Acme, Inc.\"");
    let deep = format!("{}any{}", "not(".repeat(100_000), ")".repeat(100_000));
    assert!(parse_err(&deep).contains("policies nest deeper than 32 levels"));
}

#[test]
fn parser_never_panics() {
    let samples = [
        "all(o:acme, not(any(cn:bob, cn:\"e,v)e\")), any(spiffe:td, ip:10.0.0.0/8))",
        "issuer:\"CN=a\\\\,b\", sha256:AB:CD",
        "any(ip:2001:db8::/32, spiffe-prefix:spiffe://td/a, email:é@x)",
    ];
    for s in samples {
        for (i, _) in s.char_indices() {
            let _ = s[..i].parse::<Policy>();
            let _ = s[i..].parse::<Policy>();
        }
    }
    for s in [
        "(",
        ")",
        ",",
        "\"",
        "\\",
        ":",
        "any(",
        "not(not(",
        "\u{0}",
        "ip:/",
        "ip:1.2.3.4/",
        "issuer:=",
        "issuer:\\",
    ] {
        let _ = s.parse::<Policy>();
    }
}

/// Found by the `policy` fuzz target: a DNS value with several trailing dots displayed as
/// a string that parsed to a different policy.
#[test]
fn dns_trailing_dots_normalise_idempotently() {
    for spec in [
        "dns:s3c:3n233x/nćOID..",
        "all(dns:a.example.org..)",
        "dns:A.example.org.",
    ] {
        let p: Policy = spec.parse().unwrap();
        let shown = p.to_string();
        let again: Policy = shown.parse().unwrap();
        assert_eq!(again.to_string(), shown, "{spec}");
        assert!(!shown.ends_with(".)") && !shown.ends_with('.'), "{shown}");
    }
}

/// Found by the `policy` fuzz target: an issuer value in `#hex` form holding escapes that
/// are not hex displayed as a string that did not parse back.
#[test]
fn issuer_hex_values_must_be_hex() {
    let bad = r#"issuer:"CN=#HHHH\\\\FF""#;
    let e = bad.parse::<Policy>().unwrap_err().to_string();
    assert!(e.contains("must be the hex of a BER encoding"), "{e}");
    for good in ["issuer:CN=#0C0461626364", r#"issuer:"CN=\\#not hex, O=x""#] {
        let p: Policy = good.parse().unwrap();
        let shown = p.to_string();
        assert_eq!(
            shown.parse::<Policy>().unwrap().to_string(),
            shown,
            "{good}"
        );
    }
}
