//! [`MetricsObserver`]: what a side reports, as metrics on the [`metrics`] facade
//! (feature `metrics`), for any exporter the application installs
//! (`metrics-exporter-prometheus`, StatsD, OpenTelemetry bridges, …).
//!
//! Names and labels follow Prometheus conventions. Every label value comes from a fixed
//! set, except the certificate and CRL labels of the expiry gauges, which name the
//! material *configured* on this side (its own chain and CAs), never a peer's.
//!
//! | metric | type | labels | what it is for |
//! |---|---|---|---|
//! | `mtls_handshakes_total` | counter | `side`, `result`, `reason`, `resumed`, `version` | handshakes by outcome; `rate(...{result="refused"})` by `reason` answers "how many refused, and why" |
//! | `mtls_handshake_duration_seconds` | histogram | `side`, `result` | handshake latency (first byte to admission on a server) |
//! | `mtls_handshakes_in_flight` | gauge | `side` | handshakes in progress now |
//! | `mtls_listener_evictions_total` | counter | `reason` (`silent`, `handshaking`, `per_source`) | connections a listener closed to keep its caps: a flood or a slow client |
//! | `mtls_reloads_total` | counter | `side`, `result` (`success`, `failure`), `trust` (`changed`, `unchanged`) | reloads; failures mean files on disk are not in force |
//! | `mtls_reload_generation` | gauge | `side` | the generation in force |
//! | `mtls_reload_last_success_timestamp_seconds` | gauge | `side` | when the material in force was loaded (build or reload) |
//! | `mtls_reload_last_failure_timestamp_seconds` | gauge | `side` | when a reload last failed (absent until one fails) |
//! | `mtls_certificate_expiry_timestamp_seconds` | gauge | `side`, `role` (`identity`, `chain`, `ca`), `subject`, `serial` | notAfter of each certificate in force, as a Unix timestamp |
//! | `mtls_crl_next_update_timestamp_seconds` | gauge | `side`, `issuer` | nextUpdate of each CRL in force |
//!
//! `result` is `accepted`, `refused`, `failed` or `timeout`; `reason` is `none` for
//! accepted handshakes and otherwise one of the classes listed on
//! [`HandshakeResult`](crate::observe::HandshakeResult) (the refusal classes are [`Rejection::class`](crate::Rejection::class),
//! as in the `reason` field of the refusal log lines). `version` is `TLSv1.3`, `TLSv1.2` or
//! `none`; `resumed` is `true` or `false`.
//!
//! Timestamps, not seconds left: the values stay constant between reloads, and a query
//! computes the rest (`mtls_certificate_expiry_timestamp_seconds - time() < 14 * 86400`).
//! When a certificate or CRL leaves the material (rotation), its series is set to NaN,
//! since the facade cannot remove a series: comparisons with NaN are false, so alerts on
//! it stop. The repository's `deploy/prometheus/mtls-alerts.yml` holds alert rules on
//! these metrics.
//!
//! With `metrics-exporter-prometheus`, give the duration buckets
//! (`PrometheusBuilder::set_buckets_for_metric`), or it renders a summary that
//! `histogram_quantile` cannot use; and do not let its `idle_timeout` cover gauges: the
//! expiry gauges are set at build and at each reload only.
//!
//! ```no_run
//! # fn main() -> Result<(), mtls::Error> {
//! // Install a recorder (an exporter) first, then:
//! let metrics = std::sync::Arc::new(mtls::metrics::MetricsObserver::new());
//! let server = mtls::Server::builder()
//!     .identity("server.crt", "server.key")
//!     .client_ca("ca.crt")
//!     .policy(mtls::Policy::any_verified())
//!     .observer(metrics.clone())
//!     .build()?;
//! # let _ = server; Ok(()) }
//! ```

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use metrics::{Label, counter, gauge, histogram};

use crate::observe::{Eviction, HandshakeEvent, MaterialReport, Observer, ReloadReport, Side};

const HANDSHAKES: &str = "mtls_handshakes_total";
const DURATION: &str = "mtls_handshake_duration_seconds";
const IN_FLIGHT: &str = "mtls_handshakes_in_flight";
const EVICTIONS: &str = "mtls_listener_evictions_total";
const RELOADS: &str = "mtls_reloads_total";
const GENERATION: &str = "mtls_reload_generation";
const LAST_SUCCESS: &str = "mtls_reload_last_success_timestamp_seconds";
const LAST_FAILURE: &str = "mtls_reload_last_failure_timestamp_seconds";
const CERT_EXPIRY: &str = "mtls_certificate_expiry_timestamp_seconds";
const CRL_NEXT_UPDATE: &str = "mtls_crl_next_update_timestamp_seconds";

/// An [`Observer`] that records metrics on the `metrics` facade; see the module docs.
///
/// One can be shared (`Arc`) by a process's servers and clients: their series differ by
/// `side`, and each one's expiry series are its own (a rotation on one server retires only
/// that server's old certificate). The per-side gauges (`mtls_reload_generation`, the
/// reload timestamps) and the counters of two servers sharing one observer add up or
/// overwrite each other, though: give each server its own with
/// [`named`](Self::named), which adds a `name` label to every series it records.
#[derive(Debug, Default)]
pub struct MetricsObserver {
    /// Added to every series as label `name`, when set.
    name: Option<metrics::SharedString>,
    /// The label sets of the expiry gauges each server or client published last, to
    /// retire those that leave its material.
    published: Mutex<HashMap<u64, Published>>,
}

#[derive(Debug, Default)]
struct Published {
    certificates: Vec<Vec<Label>>,
    crls: Vec<Vec<Label>>,
}

impl MetricsObserver {
    /// A new observer. Describes the metrics to the recorder installed now (their help
    /// texts), so install the recorder first.
    pub fn new() -> Self {
        describe();
        Self::default()
    }

    /// An observer whose series all carry the label `name="<name>"`, to tell several
    /// servers (or clients) of one process apart.
    pub fn named(name: &str) -> Self {
        describe();
        Self {
            name: Some(name.to_owned().into()),
            ..Self::default()
        }
    }

    /// `labels`, with the `name` label when set.
    fn labels(&self, mut labels: Vec<Label>) -> Vec<Label> {
        if let Some(name) = &self.name {
            labels.push(Label::new("name", name.clone()));
        }
        labels
    }
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        HANDSHAKES,
        "mTLS handshakes by side, result and reason class"
    );
    describe_histogram!(DURATION, Unit::Seconds, "mTLS handshake duration");
    describe_gauge!(IN_FLIGHT, "mTLS handshakes in progress");
    describe_counter!(EVICTIONS, "connections a listener closed to keep its caps");
    describe_counter!(
        RELOADS,
        "reloads of certificates, keys, CAs, CRLs and policy"
    );
    describe_gauge!(GENERATION, "generation of the material in force");
    describe_gauge!(
        LAST_SUCCESS,
        Unit::Seconds,
        "Unix time the material in force was loaded"
    );
    describe_gauge!(
        LAST_FAILURE,
        Unit::Seconds,
        "Unix time a reload last failed"
    );
    describe_gauge!(
        CERT_EXPIRY,
        Unit::Seconds,
        "notAfter of each certificate in force (Unix time)"
    );
    describe_gauge!(
        CRL_NEXT_UPDATE,
        Unit::Seconds,
        "nextUpdate of each CRL in force (Unix time)"
    );
}

fn unix(t: SystemTime) -> f64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

fn bool_str(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

impl Observer for MetricsObserver {
    fn handshake_started(&self, side: Side) {
        let labels = self.labels(vec![Label::from_static_parts("side", side.as_str())]);
        gauge!(IN_FLIGHT, labels).increment(1.0);
    }

    fn handshake(&self, e: &HandshakeEvent) {
        let side = Label::from_static_parts("side", e.side.as_str());
        let result = Label::from_static_parts("result", e.result.as_str());
        let labels = self.labels(vec![
            side.clone(),
            result.clone(),
            Label::from_static_parts("reason", e.reason),
            Label::from_static_parts("resumed", bool_str(e.resumed)),
            Label::from_static_parts("version", e.version_str()),
        ]);
        counter!(HANDSHAKES, labels).increment(1);
        histogram!(DURATION, self.labels(vec![side.clone(), result]))
            .record(e.duration.as_secs_f64());
        gauge!(IN_FLIGHT, self.labels(vec![side])).decrement(1.0);
    }

    fn handshake_abandoned(&self, side: Side) {
        let labels = self.labels(vec![Label::from_static_parts("side", side.as_str())]);
        gauge!(IN_FLIGHT, labels).decrement(1.0);
    }

    fn eviction(&self, reason: Eviction) {
        let labels = self.labels(vec![Label::from_static_parts("reason", reason.as_str())]);
        counter!(EVICTIONS, labels).increment(1);
    }

    fn reload(&self, r: &ReloadReport<'_>) {
        let side = r.side.as_str();
        let (result, trust) = match r.result {
            Ok(changed) => ("success", if changed { "changed" } else { "unchanged" }),
            Err(_) => ("failure", "unchanged"),
        };
        counter!(RELOADS, self.reload_labels(side, result, trust)).increment(1);
        if r.result.is_err() {
            let labels = self.labels(vec![Label::from_static_parts("side", side)]);
            gauge!(LAST_FAILURE, labels).set(unix(r.at));
        }
    }

    fn material(&self, m: &MaterialReport<'_>) {
        let side = m.side.as_str();
        let side_labels = self.labels(vec![Label::from_static_parts("side", side)]);
        #[allow(clippy::cast_precision_loss)] // generations stay far below 2^53
        gauge!(GENERATION, side_labels.clone()).set(m.generation as f64);
        gauge!(LAST_SUCCESS, side_labels).set(unix(m.loaded_at));
        if m.generation == 1 {
            // The reload counters exist from the start, so that `increase()` sees the
            // first failure of a process.
            for (result, trust) in [
                ("success", "unchanged"),
                ("success", "changed"),
                ("failure", "unchanged"),
            ] {
                counter!(RELOADS, self.reload_labels(side, result, trust)).increment(0);
            }
        }

        let certificates: Vec<(Vec<Label>, f64)> = m
            .certificates
            .iter()
            .map(|c| {
                let labels = self.labels(vec![
                    Label::from_static_parts("side", side),
                    Label::from_static_parts("role", c.role.as_str()),
                    Label::new("subject", c.subject.clone()),
                    Label::new("serial", c.serial.clone()),
                ]);
                (labels, unix(c.not_after))
            })
            .collect();
        let crls: Vec<(Vec<Label>, f64)> = m
            .crls
            .iter()
            .map(|c| {
                let labels = self.labels(vec![
                    Label::from_static_parts("side", side),
                    Label::new("issuer", c.issuer.clone()),
                ]);
                (labels, c.next_update.map_or(f64::NAN, unix))
            })
            .collect();

        let mut published = self.published.lock().unwrap_or_else(|p| p.into_inner());
        let mut mine = published.remove(&m.instance).unwrap_or_default();
        // A series another server or client of this observer still has in force (the
        // same CA, say) is not retired.
        let others: Vec<&Vec<Label>> = published
            .values()
            .flat_map(|p| p.certificates.iter().chain(&p.crls))
            .collect();
        publish(CERT_EXPIRY, &mut mine.certificates, certificates, &others);
        publish(CRL_NEXT_UPDATE, &mut mine.crls, crls, &others);
        published.insert(m.instance, mine);
    }
}

impl MetricsObserver {
    fn reload_labels(
        &self,
        side: &'static str,
        result: &'static str,
        trust: &'static str,
    ) -> Vec<Label> {
        self.labels(vec![
            Label::from_static_parts("side", side),
            Label::from_static_parts("result", result),
            Label::from_static_parts("trust", trust),
        ])
    }
}

/// Sets each series of `now`, and NaN on those of `before` that are gone (unless
/// `others` still have them).
fn publish(
    name: &'static str,
    before: &mut Vec<Vec<Label>>,
    now: Vec<(Vec<Label>, f64)>,
    others: &[&Vec<Label>],
) {
    for old in before.iter() {
        if !now.iter().any(|(labels, _)| labels == old) && !others.contains(&old) {
            gauge!(name, old.clone()).set(f64::NAN);
        }
    }
    before.clear();
    for (labels, value) in now {
        gauge!(name, labels.clone()).set(value);
        before.push(labels);
    }
}
