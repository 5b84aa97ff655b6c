//! Hand-rolled DER and PEM encoding helpers (no extra dependencies).

/// The content bytes of a DER INTEGER encoding the non-negative big-endian number `bytes`.
pub(crate) fn der_integer_content(bytes: &[u8]) -> Vec<u8> {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    let digits = &bytes[start..];
    match digits.first() {
        None => vec![0],
        Some(&b) if b >= 0x80 => {
            let mut v = vec![0];
            v.extend_from_slice(digits);
            v
        }
        Some(_) => digits.to_vec(),
    }
}

/// Rewrites a PKCS#8 v2 (RFC 5958 OneAsymmetricKey, as ring makes for Ed25519) private key
/// as PKCS#8 v1 by dropping the optional fields after the private key; v1 keys are returned
/// unchanged.
pub(crate) fn pkcs8_v1(der: &[u8]) -> Vec<u8> {
    fn convert(der: &[u8]) -> Option<Vec<u8>> {
        let (header, total) = read_tlv(der)?;
        let body = der.get(header..total)?;
        let (_, version_len) = read_tlv(body)?;
        if body.get(..version_len)? == [0x02, 0x01, 0x00] {
            return None;
        }
        let rest = body.get(version_len..)?;
        let (_, alg_len) = read_tlv(rest)?;
        let after_alg = rest.get(alg_len..)?;
        let (_, key_len) = read_tlv(after_alg)?;
        let mut v1 = vec![0x02, 0x01, 0x00];
        v1.extend_from_slice(rest.get(..alg_len)?);
        v1.extend_from_slice(after_alg.get(..key_len)?);
        Some(tlv(0x30, &v1))
    }
    convert(der).unwrap_or_else(|| der.to_vec())
}

/// Splits a DER certificate into (tbsCertificate TLV, signatureAlgorithm TLV).
pub(crate) fn split_certificate(der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let (header, total) = read_tlv(der)?;
    let body = der.get(header..total)?;
    let (_, tbs_len) = read_tlv(body)?;
    let rest = body.get(tbs_len..)?;
    let (_, alg_len) = read_tlv(rest)?;
    Some((body.get(..tbs_len)?.to_vec(), rest.get(..alg_len)?.to_vec()))
}

/// Header length and total length of the (single-byte tag) TLV at the start of `input`.
pub(crate) fn read_tlv(input: &[u8]) -> Option<(usize, usize)> {
    let first = usize::from(*input.get(1)?);
    let (header, len) = if first < 0x80 {
        (2, first)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for byte in input.get(2..2 + n)? {
            len = (len << 8) | usize::from(*byte);
        }
        (2 + n, len)
    };
    let total = header.checked_add(len)?;
    (total <= input.len()).then_some((header, total))
}

pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

pub(crate) fn pem(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 0x3f) as usize]));
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
