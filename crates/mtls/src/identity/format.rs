//! Serial number, hex and time formatting for [`PeerIdentity`](super::PeerIdentity).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;

use crate::dn::push_hex_upper;

/// A serial number as `openssl x509 -serial` prints it: uppercase hex, no sign byte.
pub(crate) fn format_serial(raw: &[u8]) -> String {
    let negative = raw.first().is_some_and(|b| b & 0x80 != 0);
    let magnitude: Vec<u8> = if negative {
        // Two's complement: invert and add one.
        let mut m: Vec<u8> = raw.iter().map(|b| !b).collect();
        for b in m.iter_mut().rev() {
            let (v, carry) = b.overflowing_add(1);
            *b = v;
            if !carry {
                break;
            }
        }
        m
    } else {
        raw.to_vec()
    };
    let start = magnitude
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(magnitude.len());
    let digits = magnitude.get(start..).unwrap_or_default();
    let mut out = String::with_capacity(digits.len() * 2 + 1);
    if digits.is_empty() {
        out.push_str("00");
        return out;
    }
    if negative {
        out.push('-');
    }
    push_hex_upper(digits, &mut out);
    out
}

const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

pub(crate) fn hex_lower(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(HEX_LOWER[usize::from(b >> 4)]));
        out.push(char::from(HEX_LOWER[usize::from(b & 0xf)]));
    }
    out
}

pub(super) fn to_system_time(t: OffsetDateTime) -> Option<SystemTime> {
    let secs = t.unix_timestamp();
    let nanos = Duration::from_nanos(u64::from(t.nanosecond()));
    match u64::try_from(secs) {
        Ok(s) => UNIX_EPOCH
            .checked_add(Duration::from_secs(s))?
            .checked_add(nanos),
        Err(_) => UNIX_EPOCH
            .checked_sub(Duration::from_secs(secs.unsigned_abs()))?
            .checked_add(nanos),
    }
}

pub(super) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_formatting_matches_openssl() {
        assert_eq!(format_serial(&[0x01]), "01");
        assert_eq!(format_serial(&[0x00, 0xff, 0x01]), "FF01");
        assert_eq!(format_serial(&[0x00]), "00");
        assert_eq!(format_serial(&[]), "00");
        assert_eq!(format_serial(&[0xff]), "-01");
        assert_eq!(format_serial(&[0xff, 0x00]), "-0100");
        assert_eq!(format_serial(&[0x80]), "-80");
    }
}
