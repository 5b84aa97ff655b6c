//! Each kind passes one certificate and refuses another.

use std::net::IpAddr;

use super::*;

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
