//! The string form: display round trips, merged allowlists, parse errors, fuzz findings.

use super::*;

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
