//! Hot reload: validate the whole new material set, then swap it in one step.
//!
//! A [`Server`](crate::Server) or [`Client`](crate::Client) keeps one rustls config for
//! its whole life. Its certificate resolver and verifier read their material (certified
//! key, CA roots, CRLs, policy) through [`arc_swap`], so a reload never touches a
//! connection in flight and the next handshake sees the new material.
//!
//! A reload reads every file again and runs every check a build runs (the key matches the
//! certificate, extended key usage, the chain leads to a configured CA, CRLs come from a
//! configured CA, nothing has expired). Only when all of it passes is the set swapped
//! in; otherwise the old set stays in force and the error is reported three ways: as the
//! [`ReloadHandle::reload`] result, as a `tracing` event at `ERROR` level on target
//! `mtls::reload`, and as [`ReloadEvent::Failed`] on the [`ReloadHandle::subscribe`]
//! stream. Each successful reload gets the next generation number; each connection's
//! [`PeerIdentity::generation`](crate::PeerIdentity::generation) records the generation
//! that authenticated it.
//!
//! Triggers: [`ReloadHandle::reload`] (or its async twin), file watching with
//! [`ReloadHandle::watch`] (feature `watch`), polling with [`WatchOptions::poll`], and
//! SIGHUP with [`ReloadHandle::reload_on_sighup`] (Unix).
//!
//! Resumption: a session made before a change of CA, CRL or policy is never resumed
//! afterwards (see the crate's session stores), so no peer skips the new checks.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::broadcast;

use crate::error::{Error, fmt_time};
use crate::policy::Policy;

/// Something that happened to a side's material.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ReloadEvent {
    /// New material is in force.
    Reloaded {
        /// Its generation.
        generation: u64,
        /// Whether CAs, CRLs or the policy changed (sessions from before are not resumed).
        trust_changed: bool,
    },
    /// A reload failed; the previous material stays in force.
    Failed {
        /// Why.
        error: Arc<Error>,
    },
    /// The certificate in use expires within the configured warning window.
    ExpiringSoon {
        /// Its subject.
        subject: String,
        /// When it expires.
        not_after: SystemTime,
    },
}

/// What is in force now.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ReloadStatus {
    /// Generation of the material in force (1 after the build).
    pub generation: u64,
    /// Subject and not_after of this side's own certificate, when it has one.
    pub identity: Option<(String, SystemTime)>,
    /// Subject and not_after of each configured CA.
    pub cas: Vec<(String, SystemTime)>,
    /// The error of the last reload, if it failed.
    pub last_error: Option<Arc<Error>>,
}

/// What a side reports after swapping in new material.
#[derive(Debug)]
pub(crate) struct Swapped {
    pub(crate) identity: Option<(String, SystemTime)>,
    pub(crate) cas: Vec<(String, SystemTime)>,
    pub(crate) trust_changed: bool,
}

/// A side's reloadable material.
pub(crate) trait Material: Send + Sync + 'static {
    /// Loads and validates everything, then swaps it in under `generation`.
    fn load_and_swap(&self, generation: u64) -> Result<Swapped, Error>;
    /// The files the material is read from.
    fn paths(&self) -> Vec<PathBuf>;
    /// Replaces the policy used by the next load.
    fn set_policy(&self, policy: Policy);
}

pub(crate) struct Reloader {
    material: Box<dyn Material>,
    generation: AtomicU64,
    lock: Mutex<()>,
    events: broadcast::Sender<ReloadEvent>,
    status: ArcSwap<ReloadStatus>,
    expiry_warning: Duration,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("generation", &self.generation.load(Ordering::Relaxed))
            .field("paths", &self.material.paths())
            .finish_non_exhaustive()
    }
}

impl Reloader {
    /// Runs the first load; its error is returned as it is.
    pub(crate) fn start(
        material: Box<dyn Material>,
        expiry_warning: Duration,
    ) -> Result<Arc<Self>, Error> {
        let (events, _) = broadcast::channel(64);
        let this = Arc::new(Self {
            material,
            generation: AtomicU64::new(0),
            lock: Mutex::new(()),
            events,
            status: ArcSwap::from_pointee(ReloadStatus::default()),
            expiry_warning,
        });
        this.reload_inner()?;
        Ok(this)
    }

    fn reload_inner(&self) -> Result<u64, Error> {
        let _serial = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let generation = self.generation.load(Ordering::Acquire) + 1;
        let swapped = self.material.load_and_swap(generation)?;
        self.generation.store(generation, Ordering::Release);
        self.status.store(Arc::new(ReloadStatus {
            generation,
            identity: swapped.identity,
            cas: swapped.cas,
            last_error: None,
        }));
        tracing::info!(
            target: "mtls::reload",
            generation,
            trust_changed = swapped.trust_changed,
            "material loaded"
        );
        let _ = self.events.send(ReloadEvent::Reloaded {
            generation,
            trust_changed: swapped.trust_changed,
        });
        self.check_expiry();
        Ok(generation)
    }

    pub(crate) fn reload(&self) -> Result<u64, Arc<Error>> {
        self.reload_inner().map_err(|e| {
            let e = Arc::new(e);
            tracing::error!(
                target: "mtls::reload",
                error = %e,
                "reload failed; the previous material stays in force"
            );
            let mut status = ReloadStatus::clone(&self.status.load());
            status.last_error = Some(e.clone());
            self.status.store(Arc::new(status));
            let _ = self.events.send(ReloadEvent::Failed { error: e.clone() });
            e
        })
    }

    pub(crate) fn check_expiry(&self) {
        let status = self.status.load();
        if let Some((subject, not_after)) = &status.identity {
            let left = not_after
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            if left <= self.expiry_warning {
                tracing::warn!(
                    target: "mtls::reload",
                    subject = %subject,
                    not_after = %fmt_time(*not_after),
                    "certificate expires soon; rotate it"
                );
                let _ = self.events.send(ReloadEvent::ExpiringSoon {
                    subject: subject.clone(),
                    not_after: *not_after,
                });
            }
        }
    }

    #[cfg(feature = "watch")]
    pub(crate) fn material_paths(&self) -> Vec<PathBuf> {
        self.material.paths()
    }

    /// A digest of every file's contents, to tell whether anything changed.
    #[cfg(feature = "watch")]
    pub(crate) fn content_digest(&self) -> Vec<u8> {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for p in self.material.paths() {
            h.update(p.as_os_str().as_encoded_bytes());
            match std::fs::read(&p) {
                Ok(data) => {
                    h.update([1]);
                    h.update((data.len() as u64).to_be_bytes());
                    h.update(&data);
                }
                Err(_) => h.update([0]),
            }
        }
        h.finalize().to_vec()
    }
}

/// A cheap-to-clone handle to reload a [`Server`](crate::Server)'s or
/// [`Client`](crate::Client)'s material and to follow what happens to it.
#[derive(Debug, Clone)]
pub struct ReloadHandle {
    pub(crate) inner: Arc<Reloader>,
}

impl ReloadHandle {
    /// Reads every file again, validates the whole set and swaps it in. Blocks on file
    /// I/O; from async code prefer [`reload_async`](Self::reload_async).
    ///
    /// # Errors
    /// The reason the new material was refused; the previous material stays in force.
    pub fn reload(&self) -> Result<u64, Arc<Error>> {
        self.inner.reload()
    }

    /// [`reload`](Self::reload) on tokio's blocking pool.
    ///
    /// # Errors
    /// As [`reload`](Self::reload).
    pub async fn reload_async(&self) -> Result<u64, Arc<Error>> {
        let inner = self.inner.clone();
        match tokio::task::spawn_blocking(move || inner.reload()).await {
            Ok(r) => r,
            Err(_) => Err(Arc::new(Error::Incomplete("the reload task was cancelled"))),
        }
    }

    /// Replaces the authorization policy, then reloads (the new policy applies to the next
    /// handshake; sessions from before are not resumed).
    ///
    /// # Errors
    /// As [`reload`](Self::reload); the new policy is then applied by the next successful
    /// reload.
    pub fn set_policy(&self, policy: Policy) -> Result<u64, Arc<Error>> {
        self.inner.material.set_policy(policy);
        self.inner.reload()
    }

    /// The generation in force (1 after the build, +1 per successful reload).
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// What is in force now, and the last reload error.
    pub fn status(&self) -> ReloadStatus {
        ReloadStatus::clone(&self.inner.status.load())
    }

    /// When this side's own certificate expires, if it has one.
    pub fn not_after(&self) -> Option<SystemTime> {
        self.inner.status.load().identity.as_ref().map(|(_, t)| *t)
    }

    /// Subject and not_after of each configured CA.
    pub fn ca_not_after(&self) -> Vec<(String, SystemTime)> {
        self.inner.status.load().cas.clone()
    }

    /// Emits [`ReloadEvent::ExpiringSoon`] now if the certificate is within the window.
    pub fn check_expiry(&self) {
        self.inner.check_expiry();
    }

    /// A stream of [`ReloadEvent`]s from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ReloadEvent> {
        self.inner.events.subscribe()
    }

    /// The files the material is read from (what [`watch`](Self::watch) follows).
    pub fn paths(&self) -> Vec<PathBuf> {
        self.inner.material.paths()
    }

    /// Watches the files (through their parent directories, so that editors' atomic
    /// renames and Kubernetes' `..data` symlink swaps are seen) with default
    /// [`WatchOptions`]. Must be called within a tokio runtime. Watching stops when the
    /// returned guard is dropped.
    ///
    /// # Errors
    /// [`Error::Watch`] when a directory cannot be watched.
    #[cfg(feature = "watch")]
    pub fn watch(&self) -> Result<WatchGuard, Error> {
        self.watch_with(WatchOptions::default())
    }

    /// [`watch`](Self::watch) with options.
    ///
    /// # Errors
    /// [`Error::Watch`] when a directory cannot be watched.
    #[cfg(feature = "watch")]
    pub fn watch_with(&self, options: WatchOptions) -> Result<WatchGuard, Error> {
        crate::watch::start(self.inner.clone(), options)
    }

    /// Reloads on every SIGHUP until the guard is dropped. Must be called within a tokio
    /// runtime.
    ///
    /// # Errors
    /// When the signal handler cannot be installed.
    #[cfg(unix)]
    pub fn reload_on_sighup(&self) -> std::io::Result<SignalGuard> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = signal(SignalKind::hangup())?;
        let handle = self.clone();
        let task = tokio::spawn(async move {
            while hup.recv().await.is_some() {
                tracing::info!(target: "mtls::reload", "SIGHUP: reloading");
                let _ = handle.reload_async().await;
            }
        });
        Ok(SignalGuard { task })
    }
}

/// Stops the SIGHUP listener when dropped.
#[cfg(unix)]
#[derive(Debug)]
pub struct SignalGuard {
    task: tokio::task::JoinHandle<()>,
}

#[cfg(unix)]
impl Drop for SignalGuard {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How [`ReloadHandle::watch_with`] follows the files.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WatchOptions {
    /// Quiet time after the last file event before reloading, so that a certificate and a
    /// key written one after the other load as one pair. Default 500 ms.
    pub debounce: Duration,
    /// Poll the files' contents at this interval instead of using file-system events
    /// (for file systems without notifications, e.g. some network mounts). Default: off.
    pub poll: Option<Duration>,
    /// How often to check the certificate's expiry against the warning window.
    /// Default: one hour.
    pub expiry_check: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            debounce: Duration::from_millis(500),
            poll: None,
            expiry_check: Duration::from_secs(3600),
        }
    }
}

impl WatchOptions {
    /// Sets [`debounce`](Self::debounce).
    #[must_use]
    pub fn debounce(mut self, d: Duration) -> Self {
        self.debounce = d;
        self
    }

    /// Sets [`poll`](Self::poll).
    #[must_use]
    pub fn poll(mut self, interval: Duration) -> Self {
        self.poll = Some(interval);
        self
    }

    /// Sets [`expiry_check`](Self::expiry_check).
    #[must_use]
    pub fn expiry_check(mut self, interval: Duration) -> Self {
        self.expiry_check = interval;
        self
    }
}

/// Stops watching when dropped.
#[derive(Debug)]
pub struct WatchGuard {
    pub(crate) task: tokio::task::JoinHandle<()>,
    #[cfg(feature = "watch")]
    pub(crate) _watcher: Option<notify::RecommendedWatcher>,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.task.abort();
    }
}
