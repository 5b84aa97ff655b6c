//! [`PolicyError`]: a policy string or constructor argument that is not valid.

const KINDS: &str = "any, cn, dns, ip, uri, email, spiffe, spiffe-prefix, o, ou, issuer, sha256, \
                     spki-sha256, and the combinators any(...), all(...), not(...)";

/// A policy string (or a constructor argument) is not valid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// Nothing to parse.
    #[error(
        "the policy is empty; write e.g. `any` (every verified peer), `cn:NAME`, \
         `spiffe:TRUST_DOMAIN` or `any(P1, P2)`"
    )]
    Empty,
    /// `kind:` is not one of the known kinds.
    #[error("unknown policy kind `{kind}` in `{spec}`; valid kinds: {KINDS}")]
    UnknownKind {
        /// The rule as written.
        spec: String,
        /// The unknown kind.
        kind: String,
    },
    /// `kind:` with nothing after it.
    #[error("`{spec}` has an empty value; write {expected}")]
    EmptyValue {
        /// The rule as written.
        spec: String,
        /// The accepted form(s), e.g. `cn:NAME`.
        expected: &'static str,
    },
    /// The value does not fit the kind (bad hex, bad IP address, bad SPIFFE ID, …).
    #[error("invalid value in `{spec}`: {reason}")]
    BadValue {
        /// The rule as written.
        spec: String,
        /// What is wrong and what is accepted.
        reason: String,
    },
    /// The string does not follow the grammar (unbalanced parentheses, missing `:`, …).
    #[error("syntax error in `{input}` at byte {position}: {reason}")]
    BadSyntax {
        /// The whole policy string.
        input: String,
        /// Byte offset of the problem.
        position: usize,
        /// What was expected.
        reason: String,
    },
}
