//! Distinguished names: RFC 4514 formatting of X.509 names (as `openssl -nameopt RFC2253`
//! prints them) and normalization of RFC 4514 strings written by users, shared by
//! [`identity`](crate::identity) and [`policy`](crate::policy).

use x509_parser::asn1_rs::{Any, Tag, ToDer};
use x509_parser::prelude::X509Name;

/// A distinguished name rendered as RFC 4514 plus the attribute values identity needs.
pub(crate) struct Name {
    pub(crate) rfc4514: String,
    pub(crate) common_name: Option<String>,
    pub(crate) organizations: Vec<String>,
    pub(crate) org_units: Vec<String>,
    /// What a policy cannot read with certainty: several CNs, or a CN, O or OU value
    /// that is not a character string (so absent from the fields above).
    pub(crate) ambiguous: Ambiguous,
}

/// Subject attributes that are present but cannot be read with certainty; a deny rule on
/// them fails closed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Ambiguous {
    /// CN attributes, readable or not.
    pub(crate) cn_count: usize,
    pub(crate) unreadable_cn: bool,
    pub(crate) unreadable_o: bool,
    pub(crate) unreadable_ou: bool,
}

const OID_CN: &str = "2.5.4.3";
const OID_O: &str = "2.5.4.10";
const OID_OU: &str = "2.5.4.11";

/// (dotted OID, OpenSSL short name). RFC 4514 allows any registered descriptor; these are the
/// ones `openssl -nameopt RFC2253` prints.
const ATTRIBUTE_NAMES: &[(&str, &str)] = &[
    ("2.5.4.3", "CN"),
    ("2.5.4.4", "SN"),
    ("2.5.4.5", "serialNumber"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.9", "street"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.12", "title"),
    ("2.5.4.13", "description"),
    ("2.5.4.15", "businessCategory"),
    ("2.5.4.17", "postalCode"),
    ("2.5.4.18", "postOfficeBox"),
    ("2.5.4.41", "name"),
    ("2.5.4.42", "GN"),
    ("2.5.4.43", "initials"),
    ("2.5.4.44", "generationQualifier"),
    ("2.5.4.45", "x500UniqueIdentifier"),
    ("2.5.4.46", "dnQualifier"),
    ("2.5.4.65", "pseudonym"),
    ("2.5.4.97", "organizationIdentifier"),
    ("0.9.2342.19200300.100.1.1", "UID"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("1.2.840.113549.1.9.1", "emailAddress"),
    ("1.3.6.1.4.1.311.60.2.1.1", "jurisdictionL"),
    ("1.3.6.1.4.1.311.60.2.1.2", "jurisdictionST"),
    ("1.3.6.1.4.1.311.60.2.1.3", "jurisdictionC"),
];

fn attribute_name(oid: &str) -> Option<&'static str> {
    ATTRIBUTE_NAMES
        .iter()
        .find(|(o, _)| *o == oid)
        .map(|(_, n)| *n)
}

impl Name {
    pub(crate) fn parse(name: &X509Name<'_>) -> Self {
        let mut out = Self {
            rfc4514: String::new(),
            common_name: None,
            organizations: Vec::new(),
            org_units: Vec::new(),
            ambiguous: Ambiguous::default(),
        };
        // RFC 4514: the last RDN of the sequence comes first. Inside a multi-valued RDN,
        // OpenSSL also prints the attributes in reverse encoded order; do the same.
        let rdns: Vec<_> = name.iter_rdn().collect();
        for (i, rdn) in rdns.iter().rev().enumerate() {
            if i > 0 {
                out.rfc4514.push(',');
            }
            let attrs: Vec<_> = rdn.iter().collect();
            for (j, attr) in attrs.iter().rev().enumerate() {
                if j > 0 {
                    out.rfc4514.push('+');
                }
                let oid = attr.attr_type().to_id_string();
                let text = decode_string(attr.attr_value());
                match attribute_name(&oid) {
                    Some(short) => {
                        out.rfc4514.push_str(short);
                        out.rfc4514.push('=');
                        match &text {
                            Some(t) => escape_value(t, &mut out.rfc4514),
                            None => push_hex_der(attr.attr_value(), &mut out.rfc4514),
                        }
                    }
                    None => {
                        out.rfc4514.push_str(&oid);
                        out.rfc4514.push('=');
                        push_hex_der(attr.attr_value(), &mut out.rfc4514);
                    }
                }
                if oid == OID_CN {
                    out.ambiguous.cn_count += 1;
                }
                match (oid.as_str(), text) {
                    (OID_CN, Some(t)) if out.common_name.is_none() => out.common_name = Some(t),
                    (OID_O, Some(t)) => out.organizations.push(t),
                    (OID_OU, Some(t)) => out.org_units.push(t),
                    (OID_CN, None) => out.ambiguous.unreadable_cn = true,
                    (OID_O, None) => out.ambiguous.unreadable_o = true,
                    (OID_OU, None) => out.ambiguous.unreadable_ou = true,
                    _ => {}
                }
            }
        }
        out
    }
}

/// Decodes a directory string value; `None` for non-string types or invalid encodings.
fn decode_string(value: &Any<'_>) -> Option<String> {
    let data = value.data;
    match value.tag() {
        Tag::Utf8String => std::str::from_utf8(data).ok().map(str::to_owned),
        // One byte per character; OpenSSL reads these (and T.61) as Latin-1.
        Tag::PrintableString
        | Tag::Ia5String
        | Tag::NumericString
        | Tag::VisibleString
        | Tag::TeletexString => Some(data.iter().map(|&b| char::from(b)).collect()),
        Tag::BmpString => {
            if !data.len().is_multiple_of(2) {
                return None;
            }
            let units = data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]));
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .ok()
        }
        Tag::UniversalString => {
            if !data.len().is_multiple_of(4) {
                return None;
            }
            data.chunks_exact(4)
                .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect()
        }
        _ => None,
    }
}

fn push_hex_der(value: &Any<'_>, out: &mut String) {
    out.push('#');
    match value.to_der_vec() {
        Ok(der) => push_hex_upper(&der, out),
        // Cannot happen for a value that was just parsed; keep the content at least.
        Err(_) => push_hex_upper(value.data, out),
    }
}

/// Escapes an attribute value per RFC 4514 section 2.4, the way OpenSSL's RFC 2253 mode does.
pub(crate) fn escape_value(value: &str, out: &mut String) {
    let last = value.chars().count().saturating_sub(1);
    for (i, ch) in value.chars().enumerate() {
        match ch {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => {
                out.push('\\');
                out.push(ch);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            c if c.is_ascii_control() => {
                out.push('\\');
                push_hex_upper(&[c as u8], out);
            }
            c => out.push(c),
        }
    }
}

/// Normalizes an RFC 4514 distinguished name string to the form
/// [`PeerIdentity::subject`](crate::identity::PeerIdentity::subject) produces: attribute types
/// matched case-insensitively (and dotted OIDs of known types replaced by their short name),
/// spaces around separators dropped, values unescaped and re-escaped canonically, `#hex` values
/// in uppercase. Attribute values are otherwise compared exactly.
pub(crate) fn normalize_dn(dn: &str) -> Result<String, String> {
    let mut out = String::with_capacity(dn.len());
    let mut chars = dn.chars().peekable();
    let mut first = true;
    loop {
        while chars.peek().is_some_and(|c| *c == ' ') {
            chars.next();
        }
        if chars.peek().is_none() {
            if first {
                return Err("the distinguished name is empty".to_owned());
            }
            return Err("the distinguished name ends with a separator".to_owned());
        }
        // Attribute type.
        let mut ty = String::new();
        for c in chars.by_ref() {
            if c == '=' {
                break;
            }
            ty.push(c);
        }
        let ty = ty.trim();
        if ty.is_empty() {
            return Err("an attribute type is missing before `=`".to_owned());
        }
        let canonical_ty = canonical_attribute_type(ty)
            .ok_or_else(|| format!("`{ty}` is not an attribute type (like CN, O or 2.5.4.3)"))?;
        out.push_str(&canonical_ty);
        out.push('=');
        while chars.peek().is_some_and(|c| *c == ' ') {
            chars.next();
        }
        // Attribute value, up to an unescaped ',' or '+'.
        let mut bytes: Vec<u8> = Vec::new();
        let mut significant = 0; // length of `bytes` up to the last escaped or non-space char
        let mut sep = None;
        let hex_form = chars.peek() == Some(&'#');
        while let Some(c) = chars.next() {
            match c {
                ',' | '+' => {
                    sep = Some(c);
                    break;
                }
                '\\' => {
                    let Some(n) = chars.next() else {
                        return Err("the distinguished name ends with a lone `\\`".to_owned());
                    };
                    if n.is_ascii_hexdigit() {
                        let lo = chars
                            .next()
                            .and_then(|l| l.to_digit(16))
                            .ok_or_else(|| "a `\\` hex escape needs two hex digits".to_owned())?;
                        let hi = n.to_digit(16).unwrap_or(0);
                        bytes.push(u8::try_from(hi * 16 + lo).unwrap_or(0));
                    } else {
                        let mut buf = [0u8; 4];
                        bytes.extend_from_slice(n.encode_utf8(&mut buf).as_bytes());
                    }
                    significant = bytes.len();
                }
                c => {
                    let mut buf = [0u8; 4];
                    bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    if c != ' ' {
                        significant = bytes.len();
                    }
                }
            }
        }
        bytes.truncate(significant);
        let value = String::from_utf8(bytes)
            .map_err(|_| "an escaped attribute value is not valid UTF-8".to_owned())?;
        if hex_form {
            // RFC 4514: `#` then the hex of the value's BER encoding, nothing else.
            let hex = &value[1..];
            if hex.is_empty() || hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(
                    "a value starting with `#` must be the hex of a BER encoding (like \
                     #0C0461626364); write a literal `#` as `\\#`"
                        .to_owned(),
                );
            }
            out.push_str(&value.to_ascii_uppercase());
        } else {
            escape_value(&value, &mut out);
        }
        first = false;
        match sep {
            Some(s) => out.push(s),
            None => return Ok(out),
        }
    }
}

fn canonical_attribute_type(ty: &str) -> Option<String> {
    let oid = ty
        .strip_prefix("OID.")
        .or_else(|| ty.strip_prefix("oid."))
        .unwrap_or(ty);
    if oid.starts_with(|c: char| c.is_ascii_digit()) {
        if !oid
            .split('.')
            .all(|arc| !arc.is_empty() && arc.bytes().all(|b| b.is_ascii_digit()))
        {
            return None;
        }
        return Some(attribute_name(oid).unwrap_or(oid).to_owned());
    }
    if !ty.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return None;
    }
    Some(
        ATTRIBUTE_NAMES
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(ty))
            .map_or_else(|| ty.to_owned(), |(_, n)| (*n).to_owned()),
    )
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

pub(crate) fn push_hex_upper(bytes: &[u8], out: &mut String) {
    for b in bytes {
        out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
        out.push(char::from(HEX_UPPER[usize::from(b & 0xf)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_normalization() {
        let esc = |s: &str| {
            let mut out = String::new();
            escape_value(s, &mut out);
            out
        };
        assert_eq!(esc("a,b+c\"d\\e<f>g;h"), "a\\,b\\+c\\\"d\\\\e\\<f\\>g\\;h");
        assert_eq!(esc("#x y "), "\\#x y\\ ");
        assert_eq!(esc(" "), "\\ ");
        assert_eq!(esc("a\u{0}b\nc"), "a\\00b\\0Ac");
        assert_eq!(esc("a#b"), "a#b");
        assert_eq!(esc("été"), "été");

        let norm = |s: &str| normalize_dn(s);
        assert_eq!(norm("CN=a,O=b").as_deref(), Ok("CN=a,O=b"));
        assert_eq!(norm("cn=a, o = b ,  ou=c").as_deref(), Ok("CN=a,O=b,OU=c"));
        assert_eq!(
            norm("2.5.4.3=a+EMAILADDRESS=x@y").as_deref(),
            Ok("CN=a+emailAddress=x@y")
        );
        assert_eq!(
            norm("CN=Acme\\, Inc.,C=US").as_deref(),
            Ok("CN=Acme\\, Inc.,C=US")
        );
        assert_eq!(norm("CN=\\41\\42c").as_deref(), Ok("CN=ABc"));
        assert_eq!(norm("CN=\\ x\\ ").as_deref(), Ok("CN=\\ x\\ "));
        assert_eq!(norm("1.2.3.4=#0c0161").as_deref(), Ok("1.2.3.4=#0C0161"));
        assert!(norm("").is_err());
        assert!(norm("CN=a,").is_err());
        assert!(norm("=a").is_err());
        assert!(norm("C N=a").is_err());
        assert!(norm("CN=a\\").is_err());
        assert!(norm("CN=\\4").is_err());
    }
}
