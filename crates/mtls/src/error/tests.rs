#![allow(clippy::unwrap_used)]

use std::error::Error as _;
use std::io;

use super::*;
use crate::{ExtractError, HandshakeError};

/// Walks `err`'s `source()` chain and fails if a message contains the text of the
/// source below it (printed *and* returned); returns the messages, top first.
fn chain(err: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut messages = vec![err.to_string()];
    let mut current = err;
    while let Some(source) = current.source() {
        let (above, below) = (current.to_string(), source.to_string());
        assert!(
            !above.contains(&below),
            "{above:?} prints its source {below:?} and also returns it"
        );
        messages.push(below);
        current = source;
    }
    messages
}

fn not_found() -> io::Error {
    io::Error::from(io::ErrorKind::NotFound)
}

/// A cause with a cause of its own, for the shape that prints one level and returns
/// the next.
#[derive(Debug, thiserror::Error)]
#[error("tenant database unavailable")]
struct Lookup(#[source] io::Error);

#[test]
fn a_printed_cause_is_not_returned() {
    let text = not_found().to_string();
    let io = Error::Io {
        path: "ca.crt".into(),
        error: not_found(),
    };
    assert!(io.to_string().contains(&text), "{io}");
    assert!(io.source().is_none());
    assert_eq!(chain(&io).len(), 1);

    let rustls = Error::Rustls(rustls::Error::NoCertificatesPresented);
    assert!(rustls.source().is_none());
    assert!(
        rustls.to_string().contains("peer sent no certificates"),
        "{rustls}"
    );

    let tls = HandshakeError::Tls {
        error: io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::NoCertificatesPresented,
        ),
        rejection: None,
    };
    assert!(
        tls.to_string().contains("peer sent no certificates"),
        "{tls}"
    );
    assert_eq!(chain(&tls).len(), 1);
}

#[test]
fn a_transparent_variant_forwards_message_and_source() {
    let policy: Error = "nonsense:x".parse::<crate::Policy>().unwrap_err().into();
    assert!(matches!(policy, Error::Policy(_)));
    assert_eq!(chain(&policy).len(), 1);
}

#[test]
fn a_returned_cause_is_not_printed() {
    let e = ExtractError::with_source("tenant lookup failed", not_found());
    assert_eq!(
        chain(&e),
        ["tenant lookup failed".to_owned(), not_found().to_string()]
    );
    // Through the handshake error, the extractor's message is printed once and its
    // cause is still returned.
    let hs = HandshakeError::Extract(ExtractError::with_source(
        "tenant lookup failed",
        not_found(),
    ));
    let messages = chain(&hs);
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(
        messages[0].ends_with(": tenant lookup failed"),
        "{messages:?}"
    );
    assert_eq!(messages[1], not_found().to_string());
}

#[test]
fn a_cause_already_in_the_message_returns_only_its_own_source() {
    let e = ExtractError::from_error(Lookup(not_found()));
    assert_eq!(
        chain(&e),
        [
            "tenant database unavailable".to_owned(),
            not_found().to_string()
        ]
    );
    assert!(e.cause().is_some_and(|c| c.is::<Lookup>()));

    let e = ExtractError::with_source(format!("lookup: {}", not_found()), not_found());
    assert_eq!(chain(&e).len(), 1);
    assert!(e.cause().is_some());
}

#[test]
fn builder_errors_say_what_is_missing_and_how_to_fix_it() {
    let cases = [
        (
            Error::MissingIdentity { role: Role::Server },
            &["no server identity", ".identity(cert, key)"][..],
        ),
        (
            Error::MissingCa { role: Role::Server },
            &["no client CA", ".client_ca(path)"],
        ),
        (
            Error::MissingCa { role: Role::Client },
            &["no CA to verify servers", ".ca(path)"],
        ),
        (
            Error::InvalidServerName {
                name: "https://api".into(),
            },
            &["\"https://api\"", "not a valid DNS name or IP address"],
        ),
        (Error::ReloadCancelled, &["cancelled", "stay in force"]),
        (
            Error::ReloadPanicked {
                message: "boom".into(),
            },
            &["panicked (boom)", "stay in force"],
        ),
    ];
    for (e, words) in cases {
        let msg = e.to_string();
        for w in words {
            assert!(msg.contains(w), "{msg:?} lacks {w:?}");
        }
        assert!(e.path().is_none());
        assert!(e.source().is_none());
    }
}
