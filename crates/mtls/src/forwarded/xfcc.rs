//! Envoy `x-forwarded-client-cert`.
//!
//! Source: Envoy's docs (`docs/root/configuration/http/http_conn_man/headers.rst`,
//! "x-forwarded-client-cert") and its writer (`source/common/http/conn_manager_utility.cc`,
//! `mutateXfccRequestHeader`):
//!
//! - The value is a comma-separated list of *elements*, one per proxy; a proxy appends its
//!   element *at the end*. An element is `;`-separated `key=value` pairs; keys are
//!   case-insensitive. A value with `,`, `;` or `=` is double-quoted, and a `"` inside it
//!   is written `\"`.
//! - Envoy writes `By=<its URI SAN>` (one per URI SAN in newer releases), `Hash=<hex
//!   SHA-256 of the client's DER>`, then what `set_current_client_cert_details` asks for:
//!   `Cert="<URL-encoded PEM>"`, `Chain="<URL-encoded PEM, leaf first>"`,
//!   `Subject="<DN>"`, `URI=<SAN>`, `DNS=<SAN>` (repeated).
//! - The PEM is OpenSSL's (`PEM_write_bio_X509`), URL-encoded: older Envoy replaced only
//!   `\n`, space, `+`, `/` and `=`; newer Envoy percent-encodes all but the unreserved set.
//!
//! **Which element.** With `APPEND_FORWARD`, the elements before the last come from
//! whoever connected to the nearest proxy, who may have written anything there; only the
//! last element was written by the proxy the caller trusts. So the last element is
//! decoded and the others are only checked for syntax. With `SANITIZE_SET` there is only
//! one. A syntax error anywhere fails the whole header: an unbalanced quote in an earlier
//! element could otherwise move where the last element seems to start.

use sha2::{Digest, Sha256};

use super::text::{
    Bad, Certs, hex, hex_lower, is_ws, pem_encode, percent_decode, percent_encode, trim_end_matches,
};
use super::{ForwardedCert, ForwardedError};

/// One `key=value` pair of the element being read: the key as written, the value unquoted.
struct Pair {
    key: Vec<u8>,
    value: Vec<u8>,
}

/// The pairs of the last element, and how many elements there were.
struct Parsed {
    last: Vec<Pair>,
    elements: usize,
}

fn parse(v: &[u8]) -> Result<Parsed, Bad> {
    let mut elements = 1;
    let mut current: Vec<Pair> = Vec::new();
    let mut i = 0;
    loop {
        // Key, after optional whitespace (header lines joined with ", ").
        while v.get(i).copied().is_some_and(is_ws) {
            i += 1;
        }
        let key_start = i;
        while v
            .get(i)
            .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            i += 1;
        }
        let key = &v[key_start..i];
        if key.is_empty() {
            return Err(format!(
                "element {elements} has an empty or invalid key at byte {i} (expected \
                 `Key=value`)"
            )
            .into());
        }
        if v.get(i) != Some(&b'=') {
            return Err(format!("the key at byte {key_start} is not followed by '='").into());
        }
        i += 1;

        let mut value = Vec::new();
        if v.get(i) == Some(&b'"') {
            i += 1;
            loop {
                match v.get(i) {
                    None => {
                        return Err(format!(
                            "the quoted value of element {elements} is not closed"
                        )
                        .into());
                    }
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') => match v.get(i + 1) {
                        Some(&c) => {
                            value.push(c);
                            i += 2;
                        }
                        None => {
                            return Err("the value ends with a lone backslash".into());
                        }
                    },
                    Some(&c) => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
            while v.get(i).copied().is_some_and(is_ws) {
                i += 1;
            }
        } else {
            let start = i;
            while let Some(&c) = v.get(i) {
                if c == b';' || c == b',' {
                    break;
                }
                if c == b'"' {
                    return Err(format!(
                        "a '\"' at byte {i} inside an unquoted value (quote the whole value)"
                    )
                    .into());
                }
                i += 1;
            }
            value.extend_from_slice(trim_end_matches(&v[start..i], is_ws));
        }
        current.push(Pair {
            key: key.to_vec(),
            value,
        });

        match v.get(i) {
            None => break,
            Some(b';') => i += 1,
            Some(b',') => {
                i += 1;
                elements += 1;
                current.clear();
            }
            Some(_) => {
                return Err(format!(
                    "unexpected character at byte {i} after a quoted value (expected ';' or ',')"
                )
                .into());
            }
        }
    }
    Ok(Parsed {
        last: current,
        elements,
    })
}

/// Either the `ForwardedError` that XFCC has of its own, or a decoding fault.
pub(super) enum XfccError {
    Own(ForwardedError),
    Bad(Bad),
}

impl From<Bad> for XfccError {
    fn from(bad: Bad) -> Self {
        Self::Bad(bad)
    }
}

pub(super) fn decode(v: &[u8]) -> Result<ForwardedCert, XfccError> {
    let parsed = parse(v)?;
    let mut by = None;
    let mut hash = None;
    let mut cert = None;
    let mut chain = None;
    for pair in &parsed.last {
        let slot = if pair.key.eq_ignore_ascii_case(b"By") {
            if by.is_none() {
                let s = String::from_utf8(pair.value.clone())
                    .map_err(|_| Bad::from("the By value is not UTF-8"))?;
                by = Some(s);
            }
            continue;
        } else if pair.key.eq_ignore_ascii_case(b"Hash") {
            &mut hash
        } else if pair.key.eq_ignore_ascii_case(b"Cert") {
            &mut cert
        } else if pair.key.eq_ignore_ascii_case(b"Chain") {
            &mut chain
        } else {
            // Subject, URI, DNS and keys of later Envoy releases: not needed here.
            continue;
        };
        if slot.is_some() {
            // Only the known keys get here, so the key quoted is short.
            return Err(Bad::Malformed(format!(
                "the last element has two {} keys",
                pair.key.escape_ascii()
            ))
            .into());
        }
        *slot = Some(pair.value.as_slice());
    }

    let hash = match hash {
        Some(h) => {
            let bytes = hex(h).map_err(|e| Bad::Malformed(format!("the Hash is not hex ({e})")))?;
            let Ok(arr) = <[u8; 32]>::try_from(bytes.as_slice()) else {
                return Err(Bad::Malformed(format!(
                    "the Hash is {} bytes, not a 32-byte SHA-256",
                    bytes.len()
                ))
                .into());
            };
            Some(arr)
        }
        None => None,
    };

    let mut leaf = Certs::default();
    if let Some(c) = cert {
        leaf.push_pem(&percent_decode(c)?)?;
        if leaf.0.len() != 1 {
            return Err(Bad::Malformed(format!(
                "Cert holds {} certificates; Envoy puts only the leaf there and the chain in Chain",
                leaf.0.len()
            ))
            .into());
        }
    }
    let mut all = Certs::default();
    if let Some(c) = chain {
        all.push_pem(&percent_decode(c)?)?;
    }
    let chain = match (leaf.0.pop(), all.0.is_empty()) {
        (None, true) => {
            return Err(XfccError::Own(ForwardedError::XfccNoCert {
                element: parsed.elements,
                elements: parsed.elements,
            }));
        }
        (Some(leaf), true) => vec![leaf],
        (Some(leaf), false) if all.0.first() != Some(&leaf) => {
            return Err(XfccError::Own(ForwardedError::ChainMismatch));
        }
        (_, false) => all.0,
    };

    if let (Some(expected), Some(leaf)) = (hash, chain.first()) {
        let actual: [u8; 32] = Sha256::digest(leaf).into();
        if actual != expected {
            return Err(XfccError::Own(ForwardedError::HashMismatch {
                expected: hex_lower(&expected),
                actual: hex_lower(&actual),
            }));
        }
    }

    Ok(ForwardedCert {
        chain: chain.into_iter().map(Into::into).collect(),
        by,
        hash,
    })
}

/// Writes `s` as an XFCC value: bare if it can be, else quoted with `\"` and `\\`.
fn push_value(s: &str, out: &mut String) {
    let needs_quotes = s.is_empty()
        || s.bytes()
            .any(|b| matches!(b, b',' | b';' | b'=' | b'"' | b'\\') || is_ws(b));
    if !needs_quotes {
        out.push_str(s);
        return;
    }
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

pub(super) fn encode(chain: &[rustls::pki_types::CertificateDer<'_>], by: Option<&str>) -> String {
    let mut out = String::new();
    let mut sep = "";
    if let Some(by) = by {
        out.push_str("By=");
        push_value(by, &mut out);
        sep = ";";
    }
    let Some(leaf) = chain.first() else {
        return out;
    };
    out.push_str(sep);
    out.push_str("Hash=");
    out.push_str(&hex_lower(&Sha256::digest(leaf)));

    let mut pem = String::new();
    pem_encode(leaf, &mut pem);
    out.push_str(";Cert=\"");
    percent_encode(pem.as_bytes(), &mut out);
    out.push('"');

    if chain.len() > 1 {
        let mut pem = String::new();
        for c in chain {
            pem_encode(c, &mut pem);
        }
        out.push_str(";Chain=\"");
        percent_encode(pem.as_bytes(), &mut out);
        out.push('"');
    }
    out
}
