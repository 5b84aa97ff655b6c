//! `forwarded::decode` with `HeaderFormat::Rfc9440` on any bytes: never panics, and what it
//! returns keeps its promises (see `forwarded_common.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "forwarded_common.rs"]
mod common;

fuzz_target!(|data: &[u8]| common::run(mtls::forwarded::HeaderFormat::Rfc9440, data));
