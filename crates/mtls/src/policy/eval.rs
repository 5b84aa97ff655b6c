//! Evaluating a policy against a peer: match, no match, or cannot tell.

use super::{Authorize, Denied, Node, Policy};
use crate::identity::PeerIdentity;

/// The outcome of a rule: it matches, it does not, or it cannot tell (a field the rule
/// reads is present but unreadable or ambiguous).
enum Verdict {
    Match,
    NoMatch(Denied),
    Unknown(Denied),
}

impl Policy {
    /// Checks a peer.
    ///
    /// # Errors
    ///
    /// [`Denied`] naming the failing rule (in string form) and the reason.
    pub fn authorize(&self, peer: &PeerIdentity) -> Result<(), Denied> {
        match self.evaluate(peer) {
            Verdict::Match => Ok(()),
            Verdict::NoMatch(d) | Verdict::Unknown(d) => Err(d),
        }
    }

    /// The three-way evaluation behind [`authorize`](Self::authorize): a rule on a field
    /// that is present but unreadable or ambiguous *cannot tell*, and stays so through
    /// `not(…)`, so a deny rule fails closed. `any` passes when a child passes (else it
    /// cannot tell when a child cannot), `all` fails when a child fails.
    fn evaluate(&self, peer: &PeerIdentity) -> Verdict {
        match &*self.node {
            Node::AnyVerified => Verdict::Match,
            Node::Allow(list) => match list.check(peer) {
                Ok(()) => Verdict::Match,
                Err(miss) => {
                    let denied = Denied::new(self.to_string(), miss.reason);
                    if miss.unknown {
                        Verdict::Unknown(denied)
                    } else {
                        Verdict::NoMatch(denied)
                    }
                }
            },
            Node::AnyOf(children) => {
                let mut reasons = Vec::with_capacity(children.len());
                let mut unknown = false;
                for c in children {
                    match c.evaluate(peer) {
                        Verdict::Match => return Verdict::Match,
                        Verdict::NoMatch(d) => reasons.push(format!("`{}`: {}", d.rule, d.reason)),
                        Verdict::Unknown(d) => {
                            unknown = true;
                            reasons.push(format!("`{}`: cannot tell: {}", d.rule, d.reason));
                        }
                    }
                }
                let reason = if reasons.is_empty() {
                    "no alternatives (an empty any() denies every peer)".to_owned()
                } else {
                    format!("no alternative passed ({})", reasons.join("; "))
                };
                let denied = Denied::new(self.to_string(), reason);
                if unknown {
                    Verdict::Unknown(denied)
                } else {
                    Verdict::NoMatch(denied)
                }
            }
            Node::AllOf(children) => {
                if children.is_empty() {
                    return Verdict::NoMatch(Denied::new(
                        self.to_string(),
                        "an empty all() denies every peer",
                    ));
                }
                let mut first_unknown = None;
                for c in children {
                    match c.evaluate(peer) {
                        Verdict::Match => {}
                        no @ Verdict::NoMatch(_) => return no,
                        unknown @ Verdict::Unknown(_) => {
                            first_unknown.get_or_insert(unknown);
                        }
                    }
                }
                first_unknown.unwrap_or(Verdict::Match)
            }
            Node::Not(inner) => match inner.evaluate(peer) {
                Verdict::Match => Verdict::NoMatch(Denied::new(
                    self.to_string(),
                    format!("the peer matches `{inner}`"),
                )),
                Verdict::NoMatch(_) => Verdict::Match,
                Verdict::Unknown(d) => Verdict::Unknown(Denied::new(
                    self.to_string(),
                    format!(
                        "cannot tell whether the peer matches `{inner}` ({}), so the deny \
                         rule fails closed",
                        d.reason
                    ),
                )),
            },
            Node::Custom { name, inner } => match inner.authorize(peer) {
                Ok(()) => Verdict::Match,
                Err(mut d) => {
                    if d.rule.is_empty() {
                        d.rule = format!("custom:{name}");
                    }
                    Verdict::NoMatch(d)
                }
            },
        }
    }
}

impl Authorize for Policy {
    fn authorize(&self, peer: &PeerIdentity) -> Result<(), Denied> {
        Self::authorize(self, peer)
    }
}
