//! RFC 9440 `Client-Cert` / `Client-Cert-Chain`.
//!
//! Source: RFC 9440 §2.1–2.3 (httpwg/http-extensions `draft-ietf-httpbis-client-cert-field.md`):
//! `Client-Cert` is an RFC 8941 Byte Sequence (`:` base64 of the DER `:`), a singleton;
//! `Client-Cert-Chain` is an RFC 8941 List whose members are Byte Sequences, in TLS order,
//! and it "MAY have a list of values or occur multiple times" (the lines are one list once
//! joined with commas). Appendix A's example chain header holds the intermediate and the
//! root, not the leaf; Cloudflare's `cert_chain_rfc9440` likewise excludes the leaf.
//!
//! RFC 8941 §3.3.5 asks parsers not to fail on missing `=` padding; parameters on the items
//! (which RFC 9440 does not define) are refused rather than skipped.

use super::text::{Bad, Certs, base64, base64_encode, trim_end_matches, trim_start_matches};

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// One sf-binary item: `:BASE64:`.
fn byte_sequence(item: &[u8]) -> Result<Vec<u8>, Bad> {
    let [b':', inner @ .., b':'] = item else {
        return Err(if item.first() == Some(&b'-') {
            "it is PEM, not an RFC 8941 byte sequence; RFC 9440 wants the DER in base64 \
             between colons (`:MIIB...:`)"
                .into()
        } else {
            "it is not an RFC 8941 byte sequence (`:BASE64:`)".into()
        });
    };
    if let Some(bad) = inner
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')))
    {
        return Err(if inner.get(bad) == Some(&b':') {
            "a byte sequence has parameters or a second item after it; RFC 9440 allows \
             one certificate per item"
                .into()
        } else {
            format!(
                "a byte sequence has a character outside the base64 alphabet at offset {}",
                bad + 1
            )
            .into()
        });
    }
    base64(inner).map_err(|e| Bad::Malformed(format!("bad base64 in a byte sequence ({e})")))
}

/// `Client-Cert`: exactly one byte sequence.
pub(super) fn cert(value: &[u8], out: &mut Certs) -> Result<(), Bad> {
    out.push(byte_sequence(value)?)
}

/// `Client-Cert-Chain`: an sf-list of byte sequences (several header lines joined with
/// `, `). An empty list is no certificates.
pub(super) fn chain(value: &[u8], out: &mut Certs) -> Result<(), Bad> {
    for member in value.split(|b| *b == b',') {
        let member = trim_end_matches(trim_start_matches(member, is_ows), is_ows);
        if member.is_empty() {
            return Err("the list has an empty member (two commas, or a trailing comma)".into());
        }
        out.push(byte_sequence(member)?)?;
    }
    Ok(())
}

pub(super) fn encode_item(der: &[u8]) -> String {
    format!(":{}:", base64_encode(der))
}
