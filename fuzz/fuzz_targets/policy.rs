//! Policy-string parsing: never panics, and what parses displays as a string that parses
//! back to the same display.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(p) = s.parse::<mtls::Policy>() {
        let shown = p.to_string();
        let again: mtls::Policy = shown
            .parse()
            .unwrap_or_else(|e| panic!("display {shown:?} of {s:?} does not parse: {e}"));
        assert_eq!(again.to_string(), shown);
    }
});
