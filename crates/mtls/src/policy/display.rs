//! The string form of a policy ([`Display`](fmt::Display)), which parses back.

use std::fmt;

use super::allowlist::Kind;
use super::{Node, Policy};

impl Policy {
    fn fmt_inner(&self, f: &mut fmt::Formatter<'_>, inside_any: bool) -> fmt::Result {
        match &*self.node {
            Node::AnyVerified => f.write_str("any"),
            Node::Allow(list) => match list.shown.as_slice() {
                [] => f.write_str("not(any)"),
                [one] => write_atom(f, list.kind, one),
                many => {
                    if !inside_any {
                        f.write_str("any(")?;
                    }
                    for (i, v) in many.iter().enumerate() {
                        if i > 0 {
                            f.write_str(", ")?;
                        }
                        write_atom(f, list.kind, v)?;
                    }
                    if !inside_any {
                        f.write_str(")")?;
                    }
                    Ok(())
                }
            },
            Node::AnyOf(children) | Node::AllOf(children) if children.is_empty() => {
                f.write_str("not(any)")
            }
            Node::AnyOf(children) => {
                f.write_str("any(")?;
                for (i, c) in children.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    c.fmt_inner(f, true)?;
                }
                f.write_str(")")
            }
            Node::AllOf(children) => {
                f.write_str("all(")?;
                for (i, c) in children.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    c.fmt_inner(f, false)?;
                }
                f.write_str(")")
            }
            Node::Not(p) => {
                f.write_str("not(")?;
                p.fmt_inner(f, false)?;
                f.write_str(")")
            }
            Node::Custom { name, .. } => write!(f, "custom:{name}"),
        }
    }
}

fn write_atom(f: &mut fmt::Formatter<'_>, kind: Kind, value: &str) -> fmt::Result {
    f.write_str(kind.name())?;
    f.write_str(":")?;
    let needs_quotes = value.is_empty()
        || value.starts_with(char::is_whitespace)
        || value.ends_with(char::is_whitespace)
        || value.contains([',', '(', ')', '"', '\\']);
    if !needs_quotes {
        return f.write_str(value);
    }
    f.write_str("\"")?;
    for c in value.chars() {
        if c == '"' || c == '\\' {
            f.write_str("\\")?;
        }
        write!(f, "{c}")?;
    }
    f.write_str("\"")
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_inner(f, false)
    }
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Policy")
            .field(&format_args!("{self}"))
            .finish()
    }
}
