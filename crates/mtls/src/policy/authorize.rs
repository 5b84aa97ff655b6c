//! The [`Authorize`] trait and the [`Denied`] refusal it returns.

use std::fmt;

use crate::identity::PeerIdentity;

/// Decides whether a verified peer may proceed.
///
/// Implemented by [`Policy`] and by closures `Fn(&PeerIdentity) -> Result<(), Denied>`.
/// Implementations run during the handshake: keep them fast and non-blocking.
///
/// ```
/// use mtls::policy::{Authorize, Denied, Policy};
/// use mtls::identity::PeerIdentity;
///
/// let only_payments = |peer: &PeerIdentity| {
///     if peer.org_units().iter().any(|ou| ou == "payments") {
///         Ok(())
///     } else {
///         Err(Denied::new("payments-only", "not in the payments OU"))
///     }
/// };
/// let policy = Policy::custom("payments-only", only_payments);
/// assert_eq!(policy.to_string(), "custom:payments-only");
/// ```
///
/// [`Policy`]: super::Policy
pub trait Authorize: Send + Sync + 'static {
    /// Returns `Ok(())` to let the peer in.
    ///
    /// # Errors
    ///
    /// A [`Denied`] naming the rule that refused the peer and why.
    fn authorize(&self, peer: &PeerIdentity) -> Result<(), Denied>;
}

impl<F> Authorize for F
where
    F: Fn(&PeerIdentity) -> Result<(), Denied> + Send + Sync + 'static,
{
    fn authorize(&self, peer: &PeerIdentity) -> Result<(), Denied> {
        self(peer)
    }
}

/// A policy refused a peer: which rule, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denied {
    pub(super) rule: String,
    pub(super) reason: String,
}

impl Denied {
    /// A refusal by `rule` (e.g. `cn:admin`) for `reason` (e.g. `common name "alice" not in
    /// allowlist`).
    pub fn new(rule: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            rule: rule.into(),
            reason: reason.into(),
        }
    }

    /// The rule that failed, in the policy string form (e.g. `cn:admin`).
    pub fn rule(&self) -> &str {
        &self.rule
    }

    /// Why it failed.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "denied by rule `{}`: {}", self.rule, self.reason)
    }
}

impl std::error::Error for Denied {}
