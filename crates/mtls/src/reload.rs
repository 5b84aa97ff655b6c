//! Hot reload: load a whole new snapshot, validate it, then publish it in one store.
//!
//! Each side ([`Server`](crate::Server), [`Client`](crate::Client)) keeps its trust state
//! as one immutable snapshot (certified key, WebPki verifier, policy, generation, trust
//! epoch and the rustls config bound to them) behind one [`ArcSwap`]. A reload reads every
//! file again and runs every check a build runs (the key matches the certificate,
//! extended key usage, the chain leads to a configured CA, CRLs come from a configured CA,
//! nothing has expired), builds a complete new snapshot, and only then stores it. A
//! handshake reads one snapshot from start to end, so it never sees half of a reload, and
//! connections in flight are untouched.
//!
//! When anything is wrong the old snapshot stays in force and the error is reported three
//! ways: as the [`ReloadHandle::reload`] result, as a `tracing` event at `ERROR` level on
//! target `mtls::reload`, and as [`ReloadEvent::Failed`] on the
//! [`ReloadHandle::subscribe`] stream. Each successful reload gets the next generation
//! number; each connection's [`PeerIdentity::generation`](crate::PeerIdentity::generation)
//! records the generation that verified it.
//!
//! Triggers: [`ReloadHandle::reload`] (or its async twin), file watching with
//! `ReloadHandle::watch` (feature `watch`), polling with `WatchOptions::poll`, and SIGHUP
//! with [`ReloadHandle::reload_on_sighup`] (Unix).
//!
//! Resumption: a session can only be resumed under the trust (CAs, CRLs, policy) that
//! verified it, and the listener authorizes every resumed connection against the
//! snapshot in force when the handshake completes; see the crate docs' *Resumption*
//! section.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::broadcast;

use crate::error::{Error, fmt_time};
use crate::observe::{self, CertificateInForce, CrlInForce, MaterialReport, ReloadReport, Side};
use crate::policy::Policy;
use crate::spec::Spec;

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
    /// A configured CRL is past its nextUpdate (`expired`), or close to it: publish a
    /// fresh one. Reported at each load and at each expiry check.
    CrlStale {
        /// The CRL's issuer.
        issuer: String,
        /// Its nextUpdate.
        next_update: SystemTime,
        /// Whether it is already past.
        expired: bool,
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
    /// Subject and not_after of this side's own certificate, when it has one (of a
    /// server with SNI identities, the one that expires first).
    pub identity: Option<(String, SystemTime)>,
    /// Subject and not_after of each configured CA.
    pub cas: Vec<(String, SystemTime)>,
    /// Issuer and nextUpdate of each configured CRL.
    pub crls: Vec<(String, Option<SystemTime>)>,
    /// The error of the last reload, if it failed.
    pub last_error: Option<Arc<Error>>,
    /// Every certificate in force: this side's own chain, then its CAs, with serials.
    pub certificates: Vec<CertificateInForce>,
    /// Each CRL in force, with its file and its issuer in RFC 4514.
    pub crl_files: Vec<CrlInForce>,
    /// When the material in force was loaded (the build, or the last successful reload).
    pub last_success: Option<SystemTime>,
    /// When a reload last failed, if one has.
    pub last_failure: Option<SystemTime>,
}

/// The health of a side's material, for an application's health endpoint; see
/// [`ReloadHandle::health`]. Serialises (feature `serde`) with RFC 3339 timestamps.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Health {
    /// `false` when an operator is needed: the last reload failed (files on disk are not
    /// in force), a certificate in force has expired, or a CRL is past its nextUpdate.
    pub ok: bool,
    /// The generation in force.
    pub generation: u64,
    /// When the material in force was loaded (the build, or the last successful reload).
    #[cfg_attr(feature = "serde", serde(serialize_with = "observe::ser::opt_time"))]
    pub last_success: Option<SystemTime>,
    /// When a reload last failed, if one has.
    #[cfg_attr(feature = "serde", serde(serialize_with = "observe::ser::opt_time"))]
    pub last_failure: Option<SystemTime>,
    /// Why the last reload failed, when it did (cleared by the next success).
    pub last_error: Option<HealthError>,
    /// The certificate in force that expires first (own chain or CA).
    pub earliest_expiry: Option<CertificateInForce>,
    /// Certificates in force that have expired.
    pub expired: Vec<CertificateInForce>,
    /// CRLs in force past their nextUpdate.
    pub stale_crls: Vec<CrlInForce>,
}

/// A failed reload, in a [`Health`].
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct HealthError {
    /// The error's message (with its fix).
    pub message: String,
    /// The file it is about, when there is one.
    pub file: Option<PathBuf>,
}

/// What a loader reports beside the snapshot it built.
#[derive(Debug)]
pub(crate) struct Loaded<S> {
    pub(crate) snapshot: S,
    pub(crate) identity: Option<(String, SystemTime)>,
    pub(crate) cas: Vec<(String, SystemTime)>,
    pub(crate) crls: Vec<crate::material::CrlInfo>,
    pub(crate) certificates: Vec<CertificateInForce>,
    pub(crate) trust_changed: bool,
}

fn crl_status(crls: &[crate::material::CrlInfo]) -> Vec<(String, Option<SystemTime>)> {
    crls.iter()
        .map(|c| (c.issuer.clone(), c.next_update))
        .collect()
}

/// A side's pure loader: spec in, complete snapshot out. It reads files but changes
/// nothing; publishing is the reloader's job.
pub(crate) trait Load: Send + Sync + 'static {
    type Snapshot: Send + Sync + 'static;

    /// Which side it loads, for observers.
    const SIDE: Side;

    /// Builds the snapshot for `generation` from `spec`; `previous` is the snapshot in
    /// force (none at the first load), to tell whether trust changed.
    fn load(
        &self,
        spec: &Spec,
        previous: Option<&Self::Snapshot>,
        generation: u64,
    ) -> Result<Loaded<Self::Snapshot>, Error>;
}

/// Loads a side's spec and publishes each new snapshot with one store.
pub(crate) struct Reloader<L: Load> {
    loader: L,
    /// Held for a whole reload, so reloads (and `set_policy`) are serialized.
    spec: Mutex<Spec>,
    current: Arc<ArcSwap<L::Snapshot>>,
    generation: AtomicU64,
    events: broadcast::Sender<ReloadEvent>,
    status: ArcSwap<ReloadStatus>,
    expiry_warning: Duration,
    observer: observe::Slot,
    /// Unique within the process, for observers.
    instance: u64,
}

/// The next [`Reloader::instance`].
static INSTANCES: AtomicU64 = AtomicU64::new(1);

impl<L: Load> fmt::Debug for Reloader<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reloader")
            .field("generation", &self.generation.load(Ordering::Relaxed))
            .field("paths", &self.lock_spec().paths())
            .finish_non_exhaustive()
    }
}

impl<L: Load> Reloader<L> {
    /// Runs the first load; its error is returned as it is.
    pub(crate) fn start(loader: L, spec: Spec) -> Result<Arc<Self>, Error> {
        let first = loader.load(&spec, None, 1)?;
        let (events, _) = broadcast::channel(64);
        let this = Arc::new(Self {
            loader,
            expiry_warning: spec.expiry_warning,
            observer: spec.observer.clone(),
            instance: INSTANCES.fetch_add(1, Ordering::Relaxed),
            spec: Mutex::new(spec),
            current: Arc::new(ArcSwap::from_pointee(first.snapshot)),
            generation: AtomicU64::new(1),
            events,
            status: ArcSwap::from_pointee(ReloadStatus {
                generation: 1,
                identity: first.identity,
                cas: first.cas,
                crls: crl_status(&first.crls),
                last_error: None,
                certificates: first.certificates,
                crl_files: crate::material::crls_in_force(&first.crls),
                last_success: Some(SystemTime::now()),
                last_failure: None,
            }),
        });
        this.report_material();
        this.check_expiry();
        Ok(this)
    }

    /// Tells the observer what is in force now.
    fn report_material(&self) {
        let Some(observer) = &self.observer.0 else {
            return;
        };
        let status = self.status.load();
        observer.material(&MaterialReport {
            side: L::SIDE,
            instance: self.instance,
            generation: status.generation,
            certificates: &status.certificates,
            crls: &status.crl_files,
            loaded_at: status.last_success.unwrap_or_else(SystemTime::now),
        });
    }

    /// Tells the observer about a reload.
    fn report_reload(&self, generation: u64, result: Result<bool, &Error>, at: SystemTime) {
        if let Some(observer) = &self.observer.0 {
            observer.reload(&ReloadReport {
                side: L::SIDE,
                generation,
                result,
                at,
            });
        }
    }

    /// The published snapshot, for the side's resolver, verifier and acceptor to read.
    pub(crate) fn current(&self) -> &Arc<ArcSwap<L::Snapshot>> {
        &self.current
    }

    /// The side's loader.
    pub(crate) fn loader(&self) -> &L {
        &self.loader
    }

    fn lock_spec(&self) -> MutexGuard<'_, Spec> {
        self.spec.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn load_and_publish(&self, spec: &Spec) -> Result<u64, Error> {
        let generation = self.generation.load(Ordering::Acquire) + 1;
        let loaded = self
            .loader
            .load(spec, Some(&self.current.load()), generation)?;
        self.current.store(Arc::new(loaded.snapshot));
        self.generation.store(generation, Ordering::Release);
        let at = SystemTime::now();
        let last_failure = self.status.load().last_failure;
        self.status.store(Arc::new(ReloadStatus {
            generation,
            identity: loaded.identity,
            cas: loaded.cas,
            crls: crl_status(&loaded.crls),
            last_error: None,
            certificates: loaded.certificates,
            crl_files: crate::material::crls_in_force(&loaded.crls),
            last_success: Some(at),
            last_failure,
        }));
        tracing::info!(
            target: "mtls::reload",
            generation,
            trust_changed = loaded.trust_changed,
            "material loaded"
        );
        let _ = self.events.send(ReloadEvent::Reloaded {
            generation,
            trust_changed: loaded.trust_changed,
        });
        self.report_reload(generation, Ok(loaded.trust_changed), at);
        self.report_material();
        self.check_expiry();
        Ok(generation)
    }

    fn report(&self, e: Error) -> Arc<Error> {
        let e = Arc::new(e);
        tracing::error!(
            target: "mtls::reload",
            error = %e,
            "reload failed; the previous material stays in force"
        );
        let at = SystemTime::now();
        let mut status = ReloadStatus::clone(&self.status.load());
        status.last_error = Some(e.clone());
        status.last_failure = Some(at);
        let generation = status.generation;
        self.status.store(Arc::new(status));
        let _ = self.events.send(ReloadEvent::Failed { error: e.clone() });
        self.report_reload(generation, Err(&e), at);
        e
    }
}

/// What a [`ReloadHandle`] can do with a side's reloader, whatever the side.
trait Control: Send + Sync + fmt::Debug {
    fn reload(&self) -> Result<u64, Arc<Error>>;
    fn set_policy(&self, policy: Policy) -> Result<u64, Arc<Error>>;
    fn generation(&self) -> u64;
    fn status(&self) -> Arc<ReloadStatus>;
    fn check_expiry(&self);
    fn subscribe(&self) -> broadcast::Receiver<ReloadEvent>;
    fn paths(&self) -> Vec<PathBuf>;
}

impl<L: Load> Control for Reloader<L> {
    fn reload(&self) -> Result<u64, Arc<Error>> {
        let spec = self.lock_spec();
        self.load_and_publish(&spec).map_err(|e| self.report(e))
    }

    fn set_policy(&self, policy: Policy) -> Result<u64, Arc<Error>> {
        let mut spec = self.lock_spec();
        spec.policy = Some(policy);
        spec.policy_version += 1;
        self.load_and_publish(&spec).map_err(|e| self.report(e))
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn status(&self) -> Arc<ReloadStatus> {
        self.status.load_full()
    }

    fn check_expiry(&self) {
        let status = self.status.load();
        let now = SystemTime::now();
        for (issuer, next) in &status.crls {
            let Some(next) = *next else { continue };
            // Soon: within the warning window, or a quarter of a day, whichever is less
            // (CRLs often live a week, certificates a year).
            let soon = self.expiry_warning.min(Duration::from_secs(6 * 3600));
            let left = next.duration_since(now).unwrap_or_default();
            if left <= soon {
                let expired = next <= now;
                tracing::warn!(
                    target: "mtls::reload",
                    issuer = %issuer,
                    next_update = %fmt_time(next),
                    expired,
                    "a configured CRL is stale or about to be; publish a fresh one"
                );
                let _ = self.events.send(ReloadEvent::CrlStale {
                    issuer: issuer.clone(),
                    next_update: next,
                    expired,
                });
            }
        }
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

    fn subscribe(&self) -> broadcast::Receiver<ReloadEvent> {
        self.events.subscribe()
    }

    fn paths(&self) -> Vec<PathBuf> {
        self.lock_spec().paths()
    }
}

/// A cheap-to-clone handle to reload a [`Server`](crate::Server)'s or
/// [`Client`](crate::Client)'s material and to follow what happens to it.
#[derive(Debug, Clone)]
pub struct ReloadHandle {
    inner: Arc<dyn Control>,
}

/// A [`ReloadHandle`] that does not keep its side alive (for background tasks that
/// end with it).
#[derive(Debug, Clone)]
#[allow(dead_code)]
pub(crate) struct WeakHandle(std::sync::Weak<dyn Control>);

#[allow(dead_code)]
impl WeakHandle {
    pub(crate) fn upgrade(&self) -> Option<ReloadHandle> {
        self.0.upgrade().map(|inner| ReloadHandle { inner })
    }
}

impl ReloadHandle {
    pub(crate) fn new<L: Load>(reloader: Arc<Reloader<L>>) -> Self {
        Self { inner: reloader }
    }

    #[allow(dead_code)]
    pub(crate) fn downgrade(&self) -> WeakHandle {
        WeakHandle(Arc::downgrade(&self.inner))
    }

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
    /// As [`reload`](Self::reload); [`Error::ReloadCancelled`] when the runtime shut down
    /// before the task ran, [`Error::ReloadPanicked`] when it panicked.
    pub async fn reload_async(&self) -> Result<u64, Arc<Error>> {
        let inner = self.inner.clone();
        match tokio::task::spawn_blocking(move || inner.reload()).await {
            Ok(r) => r,
            Err(e) => Err(Arc::new(match e.try_into_panic() {
                Ok(payload) => Error::ReloadPanicked {
                    message: panic_message(payload.as_ref()),
                },
                Err(_) => Error::ReloadCancelled,
            })),
        }
    }

    /// Replaces the authorization policy (the server's client policy, or the client's
    /// server policy), then reloads. Every call counts as a trust change, even with an
    /// equal-looking policy: sessions from before are not resumed.
    ///
    /// # Errors
    /// As [`reload`](Self::reload); the new policy is then applied by the next successful
    /// reload.
    pub fn set_policy(&self, policy: Policy) -> Result<u64, Arc<Error>> {
        self.inner.set_policy(policy)
    }

    /// The generation in force (1 after the build, +1 per successful reload).
    pub fn generation(&self) -> u64 {
        self.inner.generation()
    }

    /// What is in force now, and the last reload error.
    pub fn status(&self) -> ReloadStatus {
        ReloadStatus::clone(&self.inner.status())
    }

    /// The health of the material in force: the last reload's result and error (with the
    /// file), the earliest expiry, what has expired or gone stale. Cheap: it reads what
    /// the last load recorded.
    ///
    /// ```no_run
    /// # fn run(server: &mtls::Server) {
    /// let health = server.handle().health();
    /// if !health.ok {
    ///     eprintln!("mtls needs attention: {health:?}");
    /// }
    /// # }
    /// ```
    pub fn health(&self) -> Health {
        let status = self.inner.status();
        let now = SystemTime::now();
        let expired: Vec<_> = status
            .certificates
            .iter()
            .filter(|c| c.not_after <= now)
            .cloned()
            .collect();
        let stale_crls: Vec<_> = status
            .crl_files
            .iter()
            .filter(|c| c.next_update.is_some_and(|t| t <= now))
            .cloned()
            .collect();
        let last_error = status.last_error.as_ref().map(|e| HealthError {
            message: e.to_string(),
            file: e.path().map(std::path::Path::to_path_buf),
        });
        Health {
            ok: last_error.is_none() && expired.is_empty() && stale_crls.is_empty(),
            generation: status.generation,
            last_success: status.last_success,
            last_failure: status.last_failure,
            last_error,
            earliest_expiry: status
                .certificates
                .iter()
                .min_by_key(|c| c.not_after)
                .cloned(),
            expired,
            stale_crls,
        }
    }

    /// When this side's own certificate expires, if it has one.
    pub fn not_after(&self) -> Option<SystemTime> {
        self.inner.status().identity.as_ref().map(|(_, t)| *t)
    }

    /// Subject and not_after of each configured CA.
    pub fn ca_not_after(&self) -> Vec<(String, SystemTime)> {
        self.inner.status().cas.clone()
    }

    /// Emits [`ReloadEvent::ExpiringSoon`] now if the certificate is within the window.
    pub fn check_expiry(&self) {
        self.inner.check_expiry();
    }

    /// A stream of [`ReloadEvent`]s from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ReloadEvent> {
        self.inner.subscribe()
    }

    /// The files the material is read from (what file watching follows).
    pub fn paths(&self) -> Vec<PathBuf> {
        self.inner.paths()
    }

    /// A digest of every file's contents, to tell whether anything changed.
    #[cfg(feature = "watch")]
    pub(crate) fn content_digest(&self) -> Vec<u8> {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for p in self.paths() {
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

/// The message of a panic payload (`panic!` with a literal or with format arguments).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "no message".to_owned()
    }
}
