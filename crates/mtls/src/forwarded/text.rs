//! The encodings the proxies use, decoded strictly and without panics: percent-encoding,
//! base64, hex, PEM with any whitespace for line breaks, and concatenated DER. Each
//! certificate found is checked to be X.509 as it is collected.

use std::fmt::Write as _;

use data_encoding::{BASE64, HEXLOWER_PERMISSIVE};

use super::{ForwardedError, HeaderFormat, HeaderKind, MAX_CHAIN_LEN, PREFIX_LEN};

/// Why a value could not be decoded; [`Ctx::error`] turns it into a [`ForwardedError`].
#[derive(Debug)]
pub(super) enum Bad {
    Malformed(String),
    NotCertificate { index: usize, detail: String },
    TooMany(usize),
}

impl From<String> for Bad {
    fn from(reason: String) -> Self {
        Self::Malformed(reason)
    }
}

impl From<&str> for Bad {
    fn from(reason: &str) -> Self {
        Self::Malformed(reason.to_owned())
    }
}

/// Which header of which format is being decoded, for error messages.
#[derive(Clone, Copy)]
pub(super) struct Ctx<'a> {
    pub(super) format: HeaderFormat,
    pub(super) header: HeaderKind,
    /// The whole value as received, for the prefix in error messages.
    pub(super) value: &'a [u8],
}

impl Ctx<'_> {
    pub(super) fn error(self, bad: Bad) -> ForwardedError {
        match bad {
            Bad::Malformed(reason) => ForwardedError::Malformed {
                format: self.format,
                header: self.header,
                reason,
                prefix: prefix(self.value),
            },
            Bad::NotCertificate { index, detail } => ForwardedError::NotCertificate {
                format: self.format,
                header: self.header,
                index,
                detail,
            },
            Bad::TooMany(count) => ForwardedError::TooManyCertificates {
                format: self.format,
                count,
                max: MAX_CHAIN_LEN,
            },
        }
    }
}

/// The certificates of one header, each checked to be X.509 when added.
#[derive(Default)]
pub(super) struct Certs(pub(super) Vec<Vec<u8>>);

impl Certs {
    pub(super) fn push(&mut self, der: Vec<u8>) -> Result<(), Bad> {
        if self.0.len() >= MAX_CHAIN_LEN {
            return Err(Bad::TooMany(self.0.len() + 1));
        }
        let index = self.0.len() + 1;
        match x509_parser::parse_x509_certificate(&der) {
            Ok(([], _)) => {}
            Ok((rest, _)) => {
                return Err(Bad::NotCertificate {
                    index,
                    detail: format!("{} bytes of trailing data after it", rest.len()),
                });
            }
            Err(e) => {
                return Err(Bad::NotCertificate {
                    index,
                    detail: e.to_string(),
                });
            }
        }
        self.0.push(der);
        Ok(())
    }

    /// Splits concatenated DER certificates (HAProxy's `ssl_c_chain_der`).
    pub(super) fn push_concatenated(&mut self, mut der: &[u8]) -> Result<(), Bad> {
        if der.is_empty() {
            return Err("it decodes to no bytes".into());
        }
        while !der.is_empty() {
            if self.0.len() >= MAX_CHAIN_LEN {
                return Err(Bad::TooMany(self.0.len() + 1));
            }
            let index = self.0.len() + 1;
            match x509_parser::parse_x509_certificate(der) {
                Ok((rest, _)) if rest.len() < der.len() => {
                    let used = der.len() - rest.len();
                    self.0.push(der[..used].to_vec());
                    der = rest;
                }
                Ok(_) => {
                    return Err(Bad::NotCertificate {
                        index,
                        detail: "empty certificate".to_owned(),
                    });
                }
                Err(e) => {
                    return Err(Bad::NotCertificate {
                        index,
                        detail: e.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Every `CERTIFICATE` block of PEM text whose line breaks may be newlines, CRLF, spaces
    /// (Apache httpd) or newline + tab (nginx `$ssl_client_cert`). Between blocks only
    /// whitespace and commas (several header lines joined) are allowed.
    pub(super) fn push_pem(&mut self, mut text: &[u8]) -> Result<(), Bad> {
        const BEGIN: &[u8] = b"-----BEGIN ";
        const DASHES: &[u8] = b"-----";
        const END: &[u8] = b"-----END CERTIFICATE-----";
        let before = self.0.len();
        loop {
            text = trim_start_matches(text, |b| is_ws(b) || b == b',');
            if text.is_empty() {
                break;
            }
            let Some(rest) = text.strip_prefix(BEGIN) else {
                return Err(if self.0.len() == before {
                    "it is not PEM: it does not start with \"-----BEGIN CERTIFICATE-----\"".into()
                } else {
                    "there is text after an \"-----END CERTIFICATE-----\" line".into()
                });
            };
            let Some(label_end) = find(rest, DASHES) else {
                return Err("a \"-----BEGIN\" line is not closed with \"-----\"".into());
            };
            let label = &rest[..label_end];
            if label != b"CERTIFICATE" {
                return Err(format!(
                    "it holds a \"{}\" PEM block, not a CERTIFICATE",
                    escape(&label[..label.len().min(PREFIX_LEN)])
                )
                .into());
            }
            let body_and_rest = &rest[label_end + DASHES.len()..];
            let Some(end) = find(body_and_rest, END) else {
                return Err("the \"-----END CERTIFICATE-----\" line is missing".into());
            };
            let body: Vec<u8> = body_and_rest[..end]
                .iter()
                .copied()
                .filter(|b| !is_ws(*b))
                .collect();
            let der =
                base64(&body).map_err(|e| format!("a PEM block's base64 is corrupt ({e})"))?;
            self.push(der)?;
            text = &body_and_rest[end + END.len()..];
        }
        if self.0.len() == before {
            return Err("it holds no PEM certificate".into());
        }
        Ok(())
    }
}

/// ASCII whitespace as header values carry it: space, tab, CR, LF.
pub(super) fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

pub(super) fn trim(v: &[u8]) -> &[u8] {
    trim_end_matches(trim_start_matches(v, is_ws), is_ws)
}

pub(super) fn trim_start_matches(mut v: &[u8], f: impl Fn(u8) -> bool) -> &[u8] {
    while let [first, rest @ ..] = v {
        if !f(*first) {
            break;
        }
        v = rest;
    }
    v
}

pub(super) fn trim_end_matches(mut v: &[u8], f: impl Fn(u8) -> bool) -> &[u8] {
    while let [rest @ .., last] = v {
        if !f(*last) {
            break;
        }
        v = rest;
    }
    v
}

/// Removes one pair of surrounding double quotes (HAProxy `%{+Q}`, a quoted config value).
pub(super) fn unquote(v: &[u8]) -> &[u8] {
    match v {
        [b'"', inner @ .., b'"'] => inner,
        _ => v,
    }
}

pub(super) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

pub(super) fn contains(haystack: &[u8], needle: u8) -> bool {
    haystack.contains(&needle)
}

/// Percent-decoding as the proxies write it (RFC 3986): `%XX` only; `+` stays `+`, since
/// base64 uses it and no proxy here encodes a space as `+`.
pub(super) fn percent_decode(v: &[u8]) -> Result<Vec<u8>, Bad> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while let Some(&b) = v.get(i) {
        if b == b'%' {
            let hi = v.get(i + 1).and_then(|c| hex_digit(*c));
            let lo = v.get(i + 2).and_then(|c| hex_digit(*c));
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(format!(
                    "a '%' at byte {i} is not followed by two hex digits (bad URL encoding)"
                )
                .into());
            };
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Ok(out)
}

/// Percent-encodes everything but RFC 3986's unreserved characters, as Envoy does.
pub(super) fn percent_encode(v: &[u8], out: &mut String) {
    for &b in v {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Standard base64 (RFC 4648 §4); missing `=` padding is added, as RFC 8941 §3.3.5 asks
/// parsers to accept.
pub(super) fn base64(v: &[u8]) -> Result<Vec<u8>, String> {
    let decoded = if v.len().is_multiple_of(4) {
        BASE64.decode(v)
    } else {
        let mut padded = v.to_vec();
        padded.resize(v.len().div_ceil(4) * 4, b'=');
        BASE64.decode(&padded)
    };
    decoded.map_err(|e| e.to_string())
}

/// Hex in either case (HAProxy's `hex` converter writes uppercase).
pub(super) fn hex(v: &[u8]) -> Result<Vec<u8>, String> {
    HEXLOWER_PERMISSIVE.decode(v).map_err(|e| e.to_string())
}

pub(super) fn hex_lower(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

/// The first [`PREFIX_LEN`] bytes of a value, escaped, with `…` if there is more.
pub(super) fn prefix(v: &[u8]) -> String {
    let mut s = escape(&v[..v.len().min(PREFIX_LEN)]);
    if v.len() > PREFIX_LEN {
        s.push('…');
    }
    s
}

fn escape(v: &[u8]) -> String {
    v.escape_ascii().to_string()
}

/// One certificate as PEM, 64 columns, `\n` line ends (what OpenSSL writes).
pub(super) fn pem_encode(der: &[u8], out: &mut String) {
    out.push_str("-----BEGIN CERTIFICATE-----\n");
    let b64 = BASE64.encode(der);
    for line in b64.as_bytes().chunks(64) {
        // Base64 output is ASCII.
        out.extend(line.iter().map(|b| char::from(*b)));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
}

pub(super) fn base64_encode(der: &[u8]) -> String {
    BASE64.encode(der)
}
