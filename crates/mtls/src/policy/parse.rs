//! The policy string parser (grammar in the parent module's docs).

use std::str::FromStr;

use super::allowlist::{Kind, parse_ip_value};
use super::{Policy, PolicyError};
use crate::identity::SpiffeId;
use crate::spiffe::looks_like_spiffe;

/// Deepest nesting of combinators accepted by the parser.
const MAX_DEPTH: usize = 32;

impl FromStr for Policy {
    type Err = PolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().is_empty() {
            return Err(PolicyError::Empty);
        }
        let mut p = Parser { input: s, pos: 0 };
        let policy = p.policy(0)?;
        p.skip_ws();
        if let Some(c) = p.peek() {
            return Err(p.syntax(
                p.pos,
                if c == ')' {
                    "unbalanced `)`: there is no `(` to close".to_owned()
                } else {
                    format!(
                        "unexpected {c:?} after the policy; separate alternatives inside any(...)"
                    )
                },
            ));
        }
        Ok(policy)
    }
}

// === parser ===

struct Parser<'a> {
    input: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        self.input.get(self.pos..).unwrap_or_default()
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    fn syntax(&self, position: usize, reason: String) -> PolicyError {
        PolicyError::BadSyntax {
            input: self.input.to_owned(),
            position,
            reason,
        }
    }

    fn found(&self) -> String {
        match self.peek() {
            Some(c) => format!("{c:?}"),
            None => "the end".to_owned(),
        }
    }

    fn policy(&mut self, depth: usize) -> Result<Policy, PolicyError> {
        self.skip_ws();
        let start = self.pos;
        if depth > MAX_DEPTH {
            return Err(self.syntax(
                start,
                format!("policies nest deeper than {MAX_DEPTH} levels"),
            ));
        }
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            self.bump();
        }
        let word = self.input.get(start..self.pos).unwrap_or_default();
        if word.is_empty() {
            return Err(self.syntax(
                start,
                format!(
                    "expected a policy such as `cn:NAME` or `any(...)`, found {}",
                    self.found()
                ),
            ));
        }
        let lower = word.to_ascii_lowercase();
        let after_word = self.pos;
        self.skip_ws();
        if self.peek() == Some('(') {
            return self.combinator(depth, start, word, &lower);
        }
        if self.peek() != Some(':') {
            self.pos = after_word;
            if lower == "any" {
                return Ok(Policy::any_verified());
            }
            if Kind::from_name(&lower).is_some() || lower == "custom" {
                return Err(self.syntax(
                    self.pos,
                    format!("expected `:` after `{word}`, found {}", self.found()),
                ));
            }
            return Err(PolicyError::UnknownKind {
                spec: word.to_owned(),
                kind: word.to_owned(),
            });
        }
        self.bump(); // ':'
        let (value, quoted) = self.value(depth)?;
        let spec = self.input.get(start..self.pos).unwrap_or_default().trim();
        let Some(kind) = Kind::from_name(&lower) else {
            if lower == "custom" {
                return Err(PolicyError::BadValue {
                    spec: spec.to_owned(),
                    reason:
                        "custom policies are written in code (Policy::from_fn / Policy::custom) \
                             and cannot be parsed from a string"
                            .to_owned(),
                });
            }
            if lower == "any" {
                return Err(self.syntax(
                    start,
                    "`any` takes no value: write `any` alone, or any(P1, P2)".to_owned(),
                ));
            }
            return Err(PolicyError::UnknownKind {
                spec: spec.to_owned(),
                kind: word.to_owned(),
            });
        };
        if value.is_empty() && !quoted {
            return Err(PolicyError::EmptyValue {
                spec: spec.to_owned(),
                expected: kind.expected(),
            });
        }
        atom(kind, &value).map_err(|e| match e {
            PolicyError::BadValue { reason, .. } => PolicyError::BadValue {
                spec: spec.to_owned(),
                reason,
            },
            e => e,
        })
    }

    fn combinator(
        &mut self,
        depth: usize,
        start: usize,
        word: &str,
        lower: &str,
    ) -> Result<Policy, PolicyError> {
        if !matches!(lower, "any" | "all" | "not") {
            return Err(self.syntax(
                start,
                format!("`{word}(` is not a combinator; use any(...), all(...) or not(...)"),
            ));
        }
        let open = self.pos;
        self.bump(); // '('
        self.skip_ws();
        if self.peek() == Some(')') {
            return Err(self.syntax(
                self.pos,
                format!("{lower}() needs at least one policy inside the parentheses"),
            ));
        }
        let mut items = Vec::new();
        loop {
            items.push(self.policy(depth + 1)?);
            self.skip_ws();
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                Some(')') => {
                    self.bump();
                    break;
                }
                None => {
                    return Err(self.syntax(
                        self.pos,
                        format!("missing `)` to close the `{lower}(` at byte {open}"),
                    ));
                }
                Some(c) => {
                    return Err(self.syntax(
                        self.pos,
                        format!("expected `,` or `)` in `{lower}(...)`, found {c:?}"),
                    ));
                }
            }
        }
        match lower {
            "any" => Ok(Policy::any_of(items)),
            "all" => Ok(Policy::all_of(items)),
            _ => {
                let mut items = items.into_iter();
                match (items.next(), items.next()) {
                    (Some(p), None) => Ok(Policy::not(p)),
                    _ => Err(self.syntax(open, "not(...) takes exactly one policy".to_owned())),
                }
            }
        }
    }

    /// Reads a value after `kind:`; returns it and whether it was quoted.
    fn value(&mut self, depth: usize) -> Result<(String, bool), PolicyError> {
        self.skip_ws();
        if self.peek() == Some('"') {
            let v = self.quoted()?;
            if depth == 0 {
                self.skip_ws();
                if self.peek().is_some() {
                    return Err(self.syntax(
                        self.pos,
                        format!("unexpected {} after the quoted value", self.found()),
                    ));
                }
            }
            return Ok((v, true));
        }
        if depth == 0 {
            let v = self.rest().trim().to_owned();
            if let Some(at) = second_rule_at(&v) {
                let position = self.pos + self.rest().len() - self.rest().trim_start().len() + at;
                return Err(self.syntax(
                    position,
                    "this looks like several rules separated by commas; combine them with \
                     any(P1, P2), or quote the value if the comma belongs to it"
                        .to_owned(),
                ));
            }
            self.pos = self.input.len();
            return Ok((v, false));
        }
        let start = self.pos;
        while let Some(c) = self.peek() {
            match c {
                ',' | ')' => break,
                '(' | '"' => {
                    return Err(self.syntax(
                        self.pos,
                        format!(
                            "{c:?} in an unquoted value inside any()/all()/not(); quote the value, e.g. kind:\"a(b)\""
                        ),
                    ));
                }
                _ => {
                    self.bump();
                }
            }
        }
        let v = self.input.get(start..self.pos).unwrap_or_default().trim();
        Ok((v.to_owned(), false))
    }

    fn quoted(&mut self) -> Result<String, PolicyError> {
        let open = self.pos;
        self.bump(); // '"'
        let mut out = String::new();
        loop {
            match self.bump() {
                Some('"') => return Ok(out),
                Some('\\') => match self.bump() {
                    Some(c) => out.push(c),
                    None => break,
                },
                Some(c) => out.push(c),
                None => break,
            }
        }
        Err(self.syntax(
            open,
            "unterminated quoted value: missing closing `\"`".to_owned(),
        ))
    }
}

/// In an unquoted top-level value, the byte offset of a `,` that is followed by what looks
/// like another rule (`kind:` or a combinator), e.g. the second rule in `cn:a, cn:b`.
fn second_rule_at(value: &str) -> Option<usize> {
    value.match_indices(',').map(|(i, _)| i).find(|&i| {
        let next = value.get(i + 1..).unwrap_or_default().trim_start();
        let word_len = next
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(next.len());
        let (word, after) = next.split_at(word_len);
        let after = after.trim_start();
        (after.starts_with(':') && Kind::from_name(word).is_some())
            || (after.starts_with('(')
                && ["any", "all", "not"]
                    .iter()
                    .any(|c| c.eq_ignore_ascii_case(word)))
    })
}

fn atom(kind: Kind, value: &str) -> Result<Policy, PolicyError> {
    Ok(match kind {
        Kind::Cn => Policy::common_name([value]),
        Kind::Dns => Policy::dns([value]),
        Kind::Ip => match parse_ip_value(value)? {
            Ok(addr) => Policy::ip([addr]),
            Err(net) => Policy::ip_network([net])?,
        },
        Kind::Uri => Policy::uri([value]),
        Kind::Email => Policy::email([value]),
        Kind::Spiffe => {
            if looks_like_spiffe(value) {
                let id: SpiffeId = value.parse().map_err(|e| PolicyError::BadValue {
                    spec: format!("spiffe:{value}"),
                    reason: format!(
                        "{e}; expected spiffe:TRUST_DOMAIN or spiffe:spiffe://TRUST_DOMAIN/PATH"
                    ),
                })?;
                Policy::spiffe_id([id])
            } else {
                Policy::spiffe_trust_domain([value])?
            }
        }
        Kind::SpiffePrefix => Policy::spiffe_path_prefix(value)?,
        Kind::O => Policy::organization([value]),
        Kind::Ou => Policy::org_unit([value]),
        Kind::Issuer => Policy::issuer([value])?,
        Kind::Sha256 => Policy::fingerprint_sha256([value])?,
        Kind::SpkiSha256 => Policy::spki_sha256([value])?,
    })
}
