//! Small private helpers shared by the other modules: panicking on rcgen errors, writing
//! files, random serial numbers.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) fn ok<T>(result: Result<T, rcgen::Error>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("mtls-testing: rcgen failed {what}: {e}"),
    }
}

pub(crate) fn write_file(path: PathBuf, contents: &str) -> PathBuf {
    if let Err(e) = std::fs::write(&path, contents) {
        panic!("mtls-testing: cannot write {}: {e}", path.display());
    }
    path
}

/// 16 random bytes, first byte in `0x01..=0x7f` (positive, no leading zero, exactly 16 bytes
/// as a DER INTEGER).
pub(crate) fn random_serial() -> Vec<u8> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut out = Vec::with_capacity(16);
    for half in 0u8..2 {
        // RandomState is randomly keyed per process (and per instance), good enough here.
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(count);
        hasher.write_u128(nanos);
        hasher.write_u8(half);
        out.extend_from_slice(&hasher.finish().to_be_bytes());
    }
    out[0] = out[0] % 0x7f + 1;
    out
}
