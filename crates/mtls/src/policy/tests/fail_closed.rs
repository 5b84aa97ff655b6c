//! Deny rules fail closed: a rule on a field that is present but ambiguous or unreadable
//! cannot tell, and `not(…)` keeps it so.

use super::{Spec, denied, parse, passes, peer};

#[test]
fn a_deny_rule_on_an_ambiguous_spiffe_id_fails_closed() {
    // Two spiffe:// URI SANs: no SPIFFE ID can be extracted.
    let two_evil = peer(Spec {
        cn: Some("mallory"),
        uris: &["spiffe://evil.example/a", "spiffe://evil.example/b"],
        ..Spec::default()
    });
    let p = parse("all(any, not(spiffe:evil.example))");
    let d = denied(&p, &two_evil);
    assert!(d.reason().contains("cannot tell"), "{d}");
    denied(
        &parse("not(spiffe-prefix:spiffe://evil.example/a)"),
        &two_evil,
    );
    // Positive rules on it are denied too, as before.
    denied(&parse("spiffe:good.example"), &two_evil);
    // An invalid SPIFFE ID is just as unreadable.
    let invalid = peer(Spec {
        uris: &["spiffe://evil.example/a/../b"],
        ..Spec::default()
    });
    denied(&parse("not(spiffe:evil.example)"), &invalid);

    // No SPIFFE ID at all is a plain "no match": the deny rule passes.
    let none = peer(Spec {
        cn: Some("alice"),
        uris: &["https://example.org/alice"],
        ..Spec::default()
    });
    passes(&parse("all(any, not(spiffe:evil.example))"), &none);
    // One valid, other SPIFFE ID: passes the deny rule.
    let good = peer(Spec {
        uris: &["spiffe://good.example/a"],
        ..Spec::default()
    });
    passes(&parse("not(spiffe:evil.example)"), &good);
}

#[test]
fn a_deny_rule_on_several_common_names_fails_closed() {
    // CN=admin encoded first, CN=user most specific: `common_name()` is "user".
    let two = peer(Spec {
        cn: Some("user"),
        cn2: Some("admin"),
        ..Spec::default()
    });
    assert_eq!(two.common_name(), Some("user"));
    let d = denied(&parse("not(cn:admin)"), &two);
    assert!(d.reason().contains("common names"), "{d}");
    // An allow rule cannot tell either: refused rather than guessed.
    denied(&parse("cn:user"), &two);
    // One CN: both kinds of rule work as before.
    let one = peer(Spec {
        cn: Some("user"),
        ..Spec::default()
    });
    passes(&parse("not(cn:admin)"), &one);
    passes(&parse("cn:user"), &one);
}

#[test]
fn combinators_carry_cannot_tell() {
    let two_evil = peer(Spec {
        cn: Some("mallory"),
        uris: &["spiffe://evil.example/a", "spiffe://evil.example/b"],
        ..Spec::default()
    });
    // any: a match wins over "cannot tell".
    passes(
        &parse("any(cn:mallory, not(spiffe:evil.example))"),
        &two_evil,
    );
    // any: no match and "cannot tell" is not a pass.
    denied(&parse("any(cn:alice, not(spiffe:evil.example))"), &two_evil);
    // all: a no-match fails whatever else cannot tell.
    denied(&parse("all(cn:alice, not(spiffe:evil.example))"), &two_evil);
    // not(not(x)) of "cannot tell" still cannot tell.
    denied(&parse("not(not(spiffe:evil.example))"), &two_evil);
}
