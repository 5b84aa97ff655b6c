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
use std::sync::Arc;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::error::Error;
use crate::reload::{Reloader, WatchGuard, WatchOptions};

pub(crate) fn start(reloader: Arc<Reloader>, options: WatchOptions) -> Result<WatchGuard, Error> {
    let paths = reloader.material_paths();
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
    .map_err(|source| Error::Watch {
        path: PathBuf::new(),
        source,
    })?;
    for dir in dirs {
        watcher
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|source| Error::Watch {
                path: dir.clone(),
                source,
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
    reloader: Arc<Reloader>,
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
        let r = reloader.clone();
        let _ = tokio::task::spawn_blocking(move || r.reload()).await;
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

async fn digest(reloader: &Arc<Reloader>) -> Vec<u8> {
    let r = reloader.clone();
    tokio::task::spawn_blocking(move || r.content_digest())
        .await
        .unwrap_or_default()
}
