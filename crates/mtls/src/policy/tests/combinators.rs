//! Combinators: `any(…)`, `all(…)`, `not(…)` and custom rules.

use super::*;

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
