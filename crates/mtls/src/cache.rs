//! The identities of the chains a snapshot's WebPki verifier accepted.
//!
//! Each trust snapshot has its own cache, so an entry means "this exact chain passed this
//! snapshot's path validation", and the identity in it carries this snapshot's
//! generation. It is keyed by the *whole* chain, leaf first: two connections that send
//! the same leaf with different intermediates get two entries, and the identity handed
//! to a connection always holds the chain that connection sent. The policy is not part of
//! an entry; it runs on every admission.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls::pki_types::{CertificateDer, UnixTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use crate::identity::{IdentityError, PeerIdentity};

/// At most this many chains per snapshot; a full cache is emptied and refilled.
const MAX_ENTRIES: usize = 4096;

#[derive(Debug)]
struct Entry {
    identity: Arc<PeerIdentity>,
    /// Seconds since the epoch after which some certificate of the chain has expired.
    valid_until: u64,
}

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct IdentityCache {
    map: Mutex<Map>,
}

#[derive(Debug, Default)]
struct Map {
    /// Chain hash -> the entries with that hash (almost always one).
    by_hash: HashMap<u64, Vec<Entry>, BuildHasherDefault<Passthrough>>,
    len: usize,
}

impl IdentityCache {
    /// The identity of `leaf` + `intermediates` when this exact chain was accepted before
    /// and none of its certificates has expired at `now`.
    pub(crate) fn get(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Option<Arc<PeerIdentity>> {
        let hash = chain_hash(leaf, intermediates);
        let map = self.map.lock().ok()?;
        map.by_hash
            .get(&hash)?
            .iter()
            .find(|e| same_chain(e.identity.chain(), leaf, intermediates))
            .filter(|e| now.as_secs() <= e.valid_until)
            .map(|e| e.identity.clone())
    }

    /// Parses the chain's identity (stamped with `generation`) and remembers it. Call only
    /// for a chain the snapshot's WebPki verifier accepted.
    pub(crate) fn insert(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        generation: u64,
    ) -> Result<Arc<PeerIdentity>, IdentityError> {
        let mut identity = PeerIdentity::from_parts(leaf, intermediates)?;
        identity.set_generation(generation);
        let identity = Arc::new(identity);
        let valid_until = intermediates
            .iter()
            .filter_map(not_after)
            .fold(unix(identity.not_after()), u64::min);
        let hash = chain_hash(leaf, intermediates);
        if let Ok(mut map) = self.map.lock() {
            if map.len >= MAX_ENTRIES {
                *map = Map::default();
            }
            let bucket = map.by_hash.entry(hash).or_default();
            bucket.retain(|e| !same_chain(e.identity.chain(), leaf, intermediates));
            bucket.push(Entry {
                identity: identity.clone(),
                valid_until,
            });
            map.len += 1;
        }
        Ok(identity)
    }
}

fn same_chain(
    cached: &[CertificateDer<'_>],
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
) -> bool {
    cached.len() == 1 + intermediates.len()
        && cached
            .iter()
            .zip(std::iter::once(leaf).chain(intermediates))
            .all(|(a, b)| a.as_ref() == b.as_ref())
}

/// Hashes each certificate by its length and its last 32 bytes, which lie in its
/// signature: cheaper than hashing every byte on every connection, and as good a key,
/// since a hit compares the whole chain. Only verified chains are cached, so a peer
/// cannot craft colliding keys without its CA signing them.
fn chain_hash(leaf: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>]) -> u64 {
    let mut h = TailHasher::default();
    for cert in std::iter::once(leaf).chain(intermediates) {
        let der = cert.as_ref();
        h.mix(der.len() as u64);
        h.write(der);
    }
    h.finish()
}

#[derive(Debug, Default)]
struct TailHasher(u64);

impl TailHasher {
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(23) ^ word).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

impl Hasher for TailHasher {
    fn write(&mut self, bytes: &[u8]) {
        let tail = &bytes[bytes.len().saturating_sub(32)..];
        for chunk in tail.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The map's keys are already hashes.
#[derive(Debug, Default)]
struct Passthrough(u64);

impl Hasher for Passthrough {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

fn not_after(der: &CertificateDer<'_>) -> Option<u64> {
    let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
    u64::try_from(cert.validity().not_after.timestamp()).ok()
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn now() -> UnixTime {
        UnixTime::now()
    }

    #[test]
    fn chains_that_differ_only_before_their_tails_are_told_apart() {
        let ca = mtls_testing::Ca::root("Cache CA");
        let (a, b) = (ca.leaf("alice").build(), ca.leaf("bob").build());
        let (a, b) = (
            CertificateDer::from(a.cert_der()),
            CertificateDer::from(b.cert_der()),
        );
        // Two byte strings that differ only before the last 32 bytes hash the same.
        let mut twin = a.to_vec();
        twin[20] ^= 0xff;
        let twin = CertificateDer::from(twin);
        assert_eq!(chain_hash(&a, &[]), chain_hash(&twin, &[]));
        assert_ne!(chain_hash(&a, &[]), chain_hash(&b, &[]));

        let cache = IdentityCache::default();
        let alice = cache.insert(&a, &[], 1).unwrap();
        assert_eq!(alice.common_name(), Some("alice"));
        assert!(
            cache.get(&twin, &[], now()).is_none(),
            "a hash collision returned alice"
        );
        assert!(Arc::ptr_eq(&cache.get(&a, &[], now()).unwrap(), &alice));
        assert_eq!(alice.generation(), 1);
    }

    #[test]
    fn the_same_leaf_with_another_chain_is_another_entry() {
        let pki = mtls_testing::TestPki::new();
        let leaf = pki.intermediate.leaf("alice").client().build();
        let leaf_der = CertificateDer::from(leaf.cert_der());
        let inter = CertificateDer::from(pki.intermediate.cert_der());
        let cache = IdentityCache::default();
        let short = cache.insert(&leaf_der, &[], 1).unwrap();
        assert!(
            cache
                .get(&leaf_der, std::slice::from_ref(&inter), now())
                .is_none()
        );
        let long = cache
            .insert(&leaf_der, std::slice::from_ref(&inter), 1)
            .unwrap();
        assert_eq!(short.chain().len(), 1);
        assert_eq!(long.chain().len(), 2);
        assert_eq!(cache.get(&leaf_der, &[], now()).unwrap().chain().len(), 1);
    }

    #[test]
    fn an_entry_is_not_returned_once_a_certificate_of_its_chain_has_expired() {
        let ca = mtls_testing::Ca::root("Cache CA");
        let a = CertificateDer::from(ca.leaf("alice").build().cert_der());
        let cache = IdentityCache::default();
        let alice = cache.insert(&a, &[], 1).unwrap();
        let after =
            UnixTime::since_unix_epoch(std::time::Duration::from_secs(unix(alice.not_after()) + 1));
        assert!(cache.get(&a, &[], after).is_none());
    }
}
