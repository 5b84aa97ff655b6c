//! The accounting behind the listener's caps (see [Limits](super#limits)): each
//! connection's state (silent, talking, done), the counts per state and per source, and
//! evicting the oldest connection of a state when its cap is exceeded.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::{ListenerOptions, ListenerStats};

/// One handshake in progress, as the accept loop sees it.
pub(super) struct Pending {
    pub(super) tracker: Arc<Tracker>,
    pub(super) task: tokio::task::AbortHandle,
}

/// Where a handshake is.
const DONE: u8 = 0;
/// Accepted, and nothing received yet.
pub(super) const SILENT: u8 = 1;
/// The client has sent something.
const TALKING: u8 = 2;

/// Handshakes in progress per client address, for the per-source cap.
pub(super) type Sources = Mutex<HashMap<IpAddr, usize>>;

/// How many connections are in each state; shared by the tasks and the accept loop.
#[derive(Default)]
pub(super) struct Counts {
    pub(super) silent: AtomicUsize,
    pub(super) talking: AtomicUsize,
    /// Wakes the accept loop when the talking cap is exceeded.
    pub(super) over: tokio::sync::Notify,
}

impl Counts {
    fn of(&self, state: u8) -> Option<&AtomicUsize> {
        match state {
            SILENT => Some(&self.silent),
            TALKING => Some(&self.talking),
            _ => None,
        }
    }
}

/// The state of one connection until its handshake ends, shared by its task and the
/// accept loop. Its counts (per state, and per source) are released exactly once: by
/// whoever moves the state to [`DONE`] — the task when the handshake ends or its future is
/// dropped, or the accept loop when it evicts the connection.
pub(super) struct Tracker {
    pub(super) state: AtomicU8,
    pub(super) counts: Arc<Counts>,
    pub(super) source: Option<(Arc<Sources>, IpAddr)>,
}

impl Tracker {
    pub(super) fn in_progress(&self) -> bool {
        self.state.load(Ordering::Acquire) != DONE
    }

    /// The client sent its first byte: the connection moves to the talking cap.
    pub(super) fn talking(&self, max_handshakes: usize) {
        if self
            .state
            .compare_exchange(SILENT, TALKING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.counts.silent.fetch_sub(1, Ordering::AcqRel);
            if self.counts.talking.fetch_add(1, Ordering::AcqRel) >= max_handshakes {
                self.counts.over.notify_one();
            }
        }
    }

    /// Releases the counts; true if this call did.
    pub(super) fn release(&self) -> bool {
        let was = self.state.swap(DONE, Ordering::AcqRel);
        let Some(count) = self.counts.of(was) else {
            return false;
        };
        count.fetch_sub(1, Ordering::AcqRel);
        if let Some((sources, ip)) = &self.source {
            let mut map = sources.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = map.get_mut(ip) {
                *n -= 1;
                if *n == 0 {
                    map.remove(ip);
                }
            }
        }
        true
    }
}

/// Releases the tracker's slot when the task's future is dropped (aborted) before the
/// handshake ended.
pub(super) struct Slot(pub(super) Arc<Tracker>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// The address a per-source count is kept under: IPv4-mapped IPv6 counts as IPv4.
pub(super) fn source_of(addr: SocketAddr) -> IpAddr {
    addr.ip().to_canonical()
}

/// Takes a per-source slot for `ip`, unless it has `max` handshakes in progress.
pub(super) fn take_source(sources: &Sources, ip: IpAddr, max: usize) -> bool {
    let mut map = sources.lock().unwrap_or_else(|p| p.into_inner());
    let n = map.entry(ip).or_insert(0);
    if *n >= max {
        return false;
    }
    *n += 1;
    true
}

/// Drops the oldest connection in `state`; false when there is none.
fn evict_oldest(pending: &mut VecDeque<Pending>, state: u8, stats: &ListenerStats) -> bool {
    let Some(p) = pending
        .iter()
        .position(|p| p.tracker.state.load(Ordering::Acquire) == state)
        .and_then(|i| pending.remove(i))
    else {
        return false;
    };
    if p.tracker.release() {
        p.task.abort();
        stats.handshakes_evicted.fetch_add(1, Ordering::Relaxed);
        stats.observer.eviction(if state == SILENT {
            crate::observe::Eviction::Silent
        } else {
            crate::observe::Eviction::Handshaking
        });
        tracing::debug!(
            target: "mtls::acceptor",
            silent = state == SILENT,
            "connection cap reached; dropped the oldest connection in the same state"
        );
    }
    true
}

/// Drops the oldest connections of each state while its cap is exceeded (`room`: also
/// make room for one more silent connection).
pub(super) fn enforce_caps(
    pending: &mut VecDeque<Pending>,
    counts: &Counts,
    options: &ListenerOptions,
    room: bool,
    stats: &ListenerStats,
) {
    let silent_cap = options.silent_cap() - usize::from(room);
    while counts.silent.load(Ordering::Acquire) > silent_cap && evict_oldest(pending, SILENT, stats)
    {
    }
    while counts.talking.load(Ordering::Acquire) > options.max_handshakes
        && evict_oldest(pending, TALKING, stats)
    {}
}

/// The handshakes in progress, oldest first. Dropped with the accept loop (when the
/// listener is dropped), it drops those that are still handshaking.
pub(super) struct PendingHandshakes(pub(super) VecDeque<Pending>);

impl Drop for PendingHandshakes {
    fn drop(&mut self) {
        for p in self.0.drain(..) {
            if p.tracker.in_progress() {
                p.task.abort();
            }
        }
    }
}
