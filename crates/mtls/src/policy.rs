//! TEMPORARY STUB (replaced by the real module).
#![allow(missing_docs, dead_code)]
use crate::identity::PeerIdentity;
use std::sync::Arc;
#[derive(Debug, Clone)]
pub struct Denied {
    rule: String,
    reason: String,
}
impl Denied {
    pub fn rule(&self) -> &str {
        &self.rule
    }
    pub fn reason(&self) -> &str {
        &self.reason
    }
}
#[derive(Clone)]
pub struct Policy {
    s: String,
    f: Arc<dyn Fn(&PeerIdentity) -> Result<(), Denied> + Send + Sync>,
}
impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.s)
    }
}
impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.s)
    }
}
impl Policy {
    pub fn any_verified() -> Self {
        Self {
            s: "any".into(),
            f: Arc::new(|_| Ok(())),
        }
    }
    pub fn authorize(&self, p: &PeerIdentity) -> Result<(), Denied> {
        (self.f)(p)
    }
}
#[derive(Debug, thiserror::Error)]
#[error("bad policy: {0}")]
pub struct PolicyError(String);
impl std::str::FromStr for Policy {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, PolicyError> {
        if s == "any" {
            return Ok(Self::any_verified());
        }
        let Some(cn) = s.strip_prefix("cn:") else {
            return Err(PolicyError(s.into()));
        };
        let cn = cn.to_owned();
        let rule = s.to_owned();
        Ok(Self {
            s: s.into(),
            f: Arc::new(move |p: &PeerIdentity| {
                if p.common_name() == Some(cn.as_str()) {
                    Ok(())
                } else {
                    Err(Denied {
                        rule: rule.clone(),
                        reason: "cn".into(),
                    })
                }
            }),
        })
    }
}
