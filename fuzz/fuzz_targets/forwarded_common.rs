//! Shared by the `forwarded_*` targets.
//!
//! Input: one flag byte; if it is odd, two big-endian bytes give the length of the
//! certificate header value, and the bytes after it are the chain header value; if it is
//! even, everything after the flag is the certificate header value and there is no chain
//! value.
//!
//! Checks: no panic; a success has 1 to `MAX_CHAIN_LEN` certificates, each of which
//! parses as X.509 with no trailing data; an XFCC hash equals the leaf's SHA-256; and the
//! chain re-encoded as RFC 9440 and as XFCC decodes back to the same chain.

use mtls::forwarded::{self, HeaderFormat, MAX_CHAIN_LEN};

fn split(data: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    let (&flag, rest) = data.split_first()?;
    if flag & 1 == 0 {
        return Some((rest, None));
    }
    let [hi, lo, rest @ ..] = rest else {
        return None;
    };
    let at = usize::from(u16::from_be_bytes([*hi, *lo])).min(rest.len());
    let (value, chain) = rest.split_at(at);
    Some((value, Some(chain)))
}

pub fn run(format: HeaderFormat, data: &[u8]) {
    let Some((value, chain)) = split(data) else {
        return;
    };
    let Ok(fwd) = forwarded::decode(format, value, chain) else {
        return;
    };
    assert!(!fwd.chain.is_empty() && fwd.chain.len() <= MAX_CHAIN_LEN);
    for der in &fwd.chain {
        match x509_parser::parse_x509_certificate(der) {
            Ok((rest, _)) => assert!(rest.is_empty()),
            Err(e) => panic!("decode returned a non-certificate: {e}"),
        }
    }
    if let Some(hash) = fwd.hash {
        use sha2::Digest;
        let leaf: [u8; 32] = sha2::Sha256::digest(&fwd.chain[0]).into();
        assert_eq!(hash, leaf);
    }
    let (cert, rest) = forwarded::encode_rfc9440(&fwd.chain);
    let again = forwarded::decode(
        HeaderFormat::Rfc9440,
        cert.as_bytes(),
        rest.as_deref().map(str::as_bytes),
    );
    match again {
        // A chain whose second certificate is the leaf again loses that repeat.
        Ok(again) => assert!(again.chain == fwd.chain || fwd.chain.get(1) == fwd.chain.first()),
        Err(e) => panic!("RFC 9440 re-encoding does not decode: {e}"),
    }
    let xfcc = forwarded::encode_xfcc(&fwd.chain, fwd.by.as_deref());
    match forwarded::decode(HeaderFormat::Xfcc, xfcc.as_bytes(), None) {
        Ok(again) => {
            assert_eq!(again.chain, fwd.chain);
            assert_eq!(again.by, fwd.by);
        }
        Err(e) => panic!("XFCC re-encoding does not decode: {e}"),
    }
}
