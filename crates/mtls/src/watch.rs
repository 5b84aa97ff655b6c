//! File watching for [`ReloadHandle::watch`](crate::ReloadHandle::watch).
//!
//! The parent directory of every file is watched, not the file: editors replace a file by
//! renaming a new one over it, and Kubernetes updates a mounted secret by swapping the
//! `..data` symlink, and a watch on the old file would see neither. Events for other
//! files in those directories are ignored. After an event the watcher waits for a quiet
//! period (the debounce), then compares the files' contents with what it last loaded and
//! reloads only if they changed.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::error::Error;
use crate::reload::ReloadHandle;

impl ReloadHandle {
    /// Watches the files (through their parent directories, so that editors' atomic
    /// renames and Kubernetes' `..data` symlink swaps are seen) with default
    /// [`WatchOptions`]. Must be called within a tokio runtime. Watching stops when the
    /// returned guard is dropped.
    ///
    /// # Errors
    /// [`Error::Watch`] when a directory cannot be watched.
    pub fn watch(&self) -> Result<WatchGuard, Error> {
        self.watch_with(WatchOptions::default())
    }

    /// [`watch`](Self::watch) with options.
    ///
    /// # Errors
    /// [`Error::Watch`] when a directory cannot be watched.
    pub fn watch_with(&self, options: WatchOptions) -> Result<WatchGuard, Error> {
        start(self.clone(), options)
    }
}

fn start(reloader: ReloadHandle, options: WatchOptions) -> Result<WatchGuard, Error> {
    let paths = reloader.paths();
    let (tx, rx) = mpsc::unbounded_channel::<()>();
    let watcher = match options.poll {
        Some(_) => None,
        None => Some(fs_watcher(&paths, tx)?),
    };
    // The baseline is taken before returning, so a change made right after `watch()`
    // returns is never mistaken for the baseline.
    let last = reloader.content_digest();
    let task = tokio::spawn(run(reloader, options, rx, last));
    Ok(WatchGuard {
        task,
        _watcher: watcher,
    })
}

fn fs_watcher(
    paths: &[PathBuf],
    tx: mpsc::UnboundedSender<()>,
) -> Result<notify::RecommendedWatcher, Error> {
    let names: HashSet<OsString> = paths
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_owned()))
        .collect();
    let dirs: HashSet<PathBuf> = paths.iter().map(|p| parent(p)).collect();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(event) = res else { return };
        if event.kind.is_access() {
            return;
        }
        let relevant = event.paths.iter().any(|p| {
            p.file_name()
                .is_some_and(|n| names.contains(n) || n.as_encoded_bytes().starts_with(b".."))
        });
        if relevant {
            let _ = tx.send(());
        }
    })
    .map_err(|error| Error::Watch {
        path: PathBuf::new(),
        error,
    })?;
    for dir in dirs {
        watcher
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|error| Error::Watch {
                path: dir.clone(),
                error,
            })?;
    }
    Ok(watcher)
}

fn parent(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    }
}

async fn run(
    reloader: ReloadHandle,
    options: WatchOptions,
    mut rx: mpsc::UnboundedReceiver<()>,
    mut last: Vec<u8>,
) {
    let mut expiry = tokio::time::interval(options.expiry_check);
    expiry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    expiry.tick().await;
    let mut poll = options.poll.map(|d| {
        let mut i = tokio::time::interval(d);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    loop {
        tokio::select! {
            ev = rx.recv() => {
                if ev.is_none() && poll.is_none() {
                    return;
                }
                // Debounce: wait until no event has come for `debounce`.
                while let Ok(Some(())) = tokio::time::timeout(options.debounce, rx.recv()).await {}
            }
            _ = tick(&mut poll) => {}
            _ = expiry.tick() => {
                reloader.check_expiry();
                continue;
            }
        }
        let now = digest(&reloader).await;
        if now == last {
            continue;
        }
        // The outcome is reported by the reloader (result, tracing, event stream). After a
        // failure the bad contents are remembered too, so only the next change retries.
        let _ = reloader.reload_async().await;
        last = now;
    }
}

async fn tick(poll: &mut Option<tokio::time::Interval>) {
    match poll {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending::<()>().await,
    }
}

async fn digest(reloader: &ReloadHandle) -> Vec<u8> {
    let r = reloader.clone();
    tokio::task::spawn_blocking(move || r.content_digest())
        .await
        .unwrap_or_default()
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
    pub(crate) _watcher: Option<notify::RecommendedWatcher>,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.task.abort();
    }
}
