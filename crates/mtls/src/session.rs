//! Session-resumption stores that forget sessions when trust material changes.
//!
//! rustls does not run the certificate verifier again when a session is resumed, so a
//! session made before a CA was removed, a CRL was added or the policy was tightened
//! would let its peer skip the new checks. The server keeps one `ServerConfig` for its
//! whole life (its resolver and verifier read swappable material), so instead of
//! rebuilding the config on such reloads, its session store tags every session with the
//! *trust epoch* it was made in and refuses to resume a session from an older epoch.
//! Sessions survive reloads that change only the server's own certificate. The client
//! side, whose identity is what a resumed session would carry over, empties its whole
//! store on every reload.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use rustls::NamedGroup;
use rustls::client::{
    ClientSessionMemoryCache, ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue,
};
use rustls::pki_types::ServerName;
use rustls::server::{ServerSessionMemoryCache, StoresServerSessions};

/// Server sessions tagged with the trust epoch they were made in.
#[derive(Debug)]
pub(crate) struct EpochSessionStore {
    inner: Arc<ServerSessionMemoryCache>,
    epoch: Arc<AtomicU64>,
}

impl EpochSessionStore {
    pub(crate) fn new(size: usize, epoch: Arc<AtomicU64>) -> Self {
        Self {
            inner: ServerSessionMemoryCache::new(size),
            epoch,
        }
    }

    /// The session without its tag, when it was made in the current epoch.
    fn current(&self, mut tagged: Vec<u8>) -> Option<Vec<u8>> {
        let at = tagged.len().checked_sub(8)?;
        let tag = u64::from_be_bytes(tagged.get(at..)?.try_into().ok()?);
        if tag != self.epoch.load(Ordering::Acquire) {
            return None;
        }
        // The tag is at the end: stripping it moves nothing.
        tagged.truncate(at);
        Some(tagged)
    }
}

impl StoresServerSessions for EpochSessionStore {
    fn put(&self, key: Vec<u8>, mut value: Vec<u8>) -> bool {
        // Appended, not prepended: no copy of the session, and usually no reallocation.
        value.extend_from_slice(&self.epoch.load(Ordering::Acquire).to_be_bytes());
        self.inner.put(key, value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.current(self.inner.get(key)?)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.current(self.inner.take(key)?)
    }

    fn can_cache(&self) -> bool {
        self.inner.can_cache()
    }
}

/// Client sessions that can be forgotten all at once.
#[derive(Debug)]
pub(crate) struct ResettableClientSessions {
    inner: ArcSwap<ClientSessionMemoryCache>,
    size: usize,
}

impl ResettableClientSessions {
    pub(crate) fn new(size: usize) -> Self {
        Self {
            inner: ArcSwap::from_pointee(ClientSessionMemoryCache::new(size)),
            size,
        }
    }

    /// Forgets every session.
    pub(crate) fn reset(&self) {
        self.inner
            .store(Arc::new(ClientSessionMemoryCache::new(self.size)));
    }
}

impl ClientSessionStore for ResettableClientSessions {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.inner.load().set_kx_hint(server_name, group);
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.inner.load().kx_hint(server_name)
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.inner.load().set_tls12_session(server_name, value);
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.inner.load().tls12_session(server_name)
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.inner.load().remove_tls12_session(server_name);
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        self.inner.load().insert_tls13_ticket(server_name, value);
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        self.inner.load().take_tls13_ticket(server_name)
    }
}
