//! The background task that fetches CRLs, caches them on disk and reloads the server
//! (see the [module docs](super)).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::Sources;
use super::http::Fetcher;
use crate::error::{Error, Result};
use crate::reload::WeakHandle;

/// How long one CRL download may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// The cache file of `url` in `dir`.
pub(crate) fn cache_path(dir: &Path, url: &str) -> PathBuf {
    let digest = Sha256::digest(url.as_bytes());
    let name = data_encoding::HEXLOWER.encode(&digest[..12]);
    dir.join(format!("{name}.crl"))
}

/// Checks the sources and starts the fetcher for the server behind `handle`.
pub(crate) fn start(sources: &Sources, handle: WeakHandle) -> Result<()> {
    let dir = sources.cache_dir.clone().ok_or_else(|| Error::Revocation {
        reason: "CRL URLs or distribution points are configured without a cache \
                     directory; call crl_cache_dir(\"/var/lib/myservice/crls\") so the last \
                     good CRLs survive a restart"
            .into(),
    })?;
    std::fs::create_dir_all(&dir).map_err(|error| Error::Io {
        path: dir.clone(),
        error,
    })?;
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::Revocation {
        reason: "fetching CRLs needs a tokio runtime: build the server inside one \
                 (e.g. from async fn main under #[tokio::main])"
            .into(),
    })?;
    let task = Task {
        explicit: sources.crl_urls.clone(),
        discovered: sources.discovered.clone(),
        refresh: sources.refresh,
        dir,
        handle,
        fetcher: Fetcher::default(),
        state: HashMap::new(),
    };
    runtime.spawn(task.run());
    Ok(())
}

#[derive(Debug)]
struct UrlState {
    due: Instant,
    failures: u32,
}

struct Task {
    explicit: Vec<String>,
    discovered: Arc<super::config::Discovered>,
    refresh: (Duration, Duration),
    dir: PathBuf,
    handle: WeakHandle,
    fetcher: Fetcher,
    state: HashMap<String, UrlState>,
}

impl Task {
    async fn run(mut self) {
        loop {
            let mut urls = self.explicit.clone();
            for url in self.discovered.urls() {
                if !urls.contains(&url) {
                    urls.push(url);
                }
            }
            for url in &urls {
                let now = Instant::now();
                let state = self.state.entry(url.clone()).or_insert(UrlState {
                    due: now,
                    failures: 0,
                });
                if state.due > now {
                    continue;
                }
                // The server is gone: so is its fetcher.
                let Some(handle) = self.handle.upgrade() else {
                    return;
                };
                let outcome = refresh(&self.fetcher, &handle, &self.dir, url).await;
                let state = self.state.entry(url.clone()).or_insert(UrlState {
                    due: now,
                    failures: 0,
                });
                match outcome {
                    Ok(next_update) => {
                        state.failures = 0;
                        state.due = Instant::now() + schedule(next_update, self.refresh);
                    }
                    Err(reason) => {
                        tracing::warn!(
                            target: "mtls::revocation",
                            url = %url,
                            error = %reason,
                            "CRL refresh failed; the CRL in force (if any) stays"
                        );
                        state.failures = state.failures.saturating_add(1);
                        state.due = Instant::now() + backoff(state.failures, self.refresh);
                        // Stale CRLs are reported (event, log, health, metrics).
                        handle.check_expiry();
                    }
                }
            }
            let next = self
                .state
                .values()
                .map(|s| s.due)
                .min()
                .unwrap_or_else(|| Instant::now() + self.refresh.1);
            tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                () = self.discovered.notify.notified() => {}
            }
        }
    }
}

/// When to fetch again after a success: half the time left to nextUpdate, bounded.
pub(crate) fn schedule(
    next_update: Option<SystemTime>,
    (min, max): (Duration, Duration),
) -> Duration {
    let left = next_update
        .and_then(|n| n.duration_since(SystemTime::now()).ok())
        .unwrap_or(Duration::ZERO);
    (left / 2).clamp(min, max)
}

/// When to retry after `failures` failures in a row: min, doubling, up to max.
pub(crate) fn backoff(failures: u32, (min, max): (Duration, Duration)) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    min.saturating_mul(factor).min(max)
}

/// Fetches `url`; installs its CRL through a reload when it changed. Returns the
/// nextUpdate of the CRL now cached.
async fn refresh(
    fetcher: &Fetcher,
    handle: &crate::ReloadHandle,
    dir: &Path,
    url: &str,
) -> std::result::Result<Option<SystemTime>, String> {
    let body = fetcher
        .get(url, FETCH_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    let origin = Path::new(url);
    let crls = crate::pem::parse_crls(&body, origin).map_err(|e| e.to_string())?;
    let [crl] = crls.as_slice() else {
        return Err(format!("{url} serves {} CRLs; expected one", crls.len()));
    };
    let der = crl.as_ref();
    let next_update = x509_parser::parse_x509_crl(der)
        .map_err(|e| format!("{url}: not a CRL ({e})"))?
        .1
        .next_update()
        .map(|t| crate::material::to_system_time(t.timestamp()));
    let path = cache_path(dir, url);
    let old = std::fs::read(&path).ok();
    if old.as_deref() == Some(der) {
        return Ok(next_update);
    }
    write_atomically(&path, der).map_err(|e| format!("{}: {e}", path.display()))?;
    let reloaded = handle.reload_async().await.map_err(|e| e.to_string());
    // A CRL from an issuer that is not a configured CA is skipped by the load: it was
    // not installed either.
    let reloaded = reloaded.and_then(|generation| {
        if handle.status().crl_files.iter().any(|c| c.path == path) {
            Ok(generation)
        } else {
            Err("its issuer is not one of the configured CAs".to_owned())
        }
    });
    match reloaded {
        Ok(generation) => {
            tracing::info!(
                target: "mtls::revocation",
                url = %url,
                file = %path.display(),
                generation,
                "fetched CRL installed"
            );
            Ok(next_update)
        }
        Err(e) => {
            // Put back what was in force, so the next start loads it.
            let restored = match &old {
                Some(old) => write_atomically(&path, old),
                None => std::fs::remove_file(&path),
            };
            if let Err(r) = restored {
                tracing::error!(
                    target: "mtls::revocation",
                    file = %path.display(),
                    error = %r,
                    "could not restore the cached CRL after a refused reload"
                );
            }
            Err(format!("the CRL fetched from {url} was refused: {e}"))
        }
    }
}

fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("crl.tmp");
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_half_the_time_left_within_bounds() {
        let bounds = (Duration::from_secs(60), Duration::from_secs(3600));
        let in_hours = |h: u64| Some(SystemTime::now() + Duration::from_secs(h * 3600));
        assert_eq!(schedule(in_hours(100), bounds), Duration::from_secs(3600));
        let one_hour = schedule(in_hours(1), bounds);
        assert!(one_hour <= Duration::from_secs(1800) && one_hour > Duration::from_secs(1790));
        assert_eq!(schedule(None, bounds), Duration::from_secs(60));
        assert_eq!(
            schedule(Some(SystemTime::UNIX_EPOCH), bounds),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn retries_double_up_to_the_bound() {
        let bounds = (Duration::from_secs(60), Duration::from_secs(300));
        assert_eq!(backoff(1, bounds), Duration::from_secs(60));
        assert_eq!(backoff(2, bounds), Duration::from_secs(120));
        assert_eq!(backoff(3, bounds), Duration::from_secs(240));
        assert_eq!(backoff(40, bounds), Duration::from_secs(300));
    }

    #[test]
    fn each_url_has_its_own_cache_file() {
        let dir = Path::new("/c");
        assert_ne!(
            cache_path(dir, "http://a/x.crl"),
            cache_path(dir, "http://b/x.crl")
        );
        assert_eq!(
            cache_path(dir, "http://a/x.crl").extension().unwrap(),
            "crl"
        );
    }
}
