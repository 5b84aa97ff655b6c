//! Medians, ratios and the markdown report.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::Command;

use crate::bench::{Case, RunOptions, Variant};
use crate::pki::KeyType;
use crate::serve::ServerKind;

/// One measurement of one server in one case and round.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    /// Completed operations per second (handshake + GET, or keep-alive GET).
    pub(crate) rate: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    /// Server CPU time (user + system) per completed operation.
    pub(crate) cpu_us: f64,
    /// Server CPU time over wall time: ~100 % means the server's core was saturated.
    pub(crate) cpu_pct: f64,
    /// The load client's CPU time over wall time (it has one core too).
    pub(crate) client_cpu_pct: f64,
    /// The server's VmHWM at the end of the measurement.
    pub(crate) peak_rss_mib: f64,
    pub(crate) failed: u64,
    pub(crate) warmup_failed: u64,
    pub(crate) resumed_pct: f64,
    /// The reload counters the server printed last (`RELOADS ok=N failed=M`).
    pub(crate) reloads: Option<String>,
    pub(crate) errors: BTreeMap<String, u64>,
}

/// One measurement of memory per idle connection.
#[derive(Debug, Clone)]
pub(crate) struct IdleSample {
    pub(crate) kib_per_conn: f64,
    pub(crate) rss_before_mib: f64,
    pub(crate) rss_after_mib: f64,
    pub(crate) opened: usize,
    pub(crate) failed: u64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| !x.is_nan());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Medians over the rounds of one (cert type, case, variant).
#[derive(Debug, Clone)]
struct Summary {
    key_type: KeyType,
    case: Case,
    variant: Variant,
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_us: f64,
    cpu_pct: f64,
    client_cpu_pct: f64,
    peak_rss_mib: f64,
    failed: u64,
    warmup_failed: u64,
    resumed_pct: f64,
    reloads: Option<String>,
    errors: BTreeMap<String, u64>,
}

fn summarize(samples: &[(KeyType, Case, Variant, Sample)]) -> Vec<Summary> {
    let mut keys: Vec<(KeyType, Case, Variant)> = Vec::new();
    for (k, c, v, _) in samples {
        if !keys.contains(&(*k, *c, *v)) {
            keys.push((*k, *c, *v));
        }
    }
    keys.into_iter()
        .map(|key| {
            let group: Vec<&Sample> = samples
                .iter()
                .filter(|(k, c, v, _)| (*k, *c, *v) == key)
                .map(|(.., s)| s)
                .collect();
            let m = |f: fn(&Sample) -> f64| median(group.iter().map(|s| f(s)).collect());
            let mut errors = BTreeMap::new();
            for s in &group {
                for (e, n) in &s.errors {
                    *errors.entry(e.clone()).or_default() += n;
                }
            }
            Summary {
                key_type: key.0,
                case: key.1,
                variant: key.2,
                rate: m(|s| s.rate),
                p50_ms: m(|s| s.p50_ms),
                p99_ms: m(|s| s.p99_ms),
                cpu_us: m(|s| s.cpu_us),
                cpu_pct: m(|s| s.cpu_pct),
                client_cpu_pct: m(|s| s.client_cpu_pct),
                peak_rss_mib: m(|s| s.peak_rss_mib),
                failed: group.iter().map(|s| s.failed).sum(),
                warmup_failed: group.iter().map(|s| s.warmup_failed).sum(),
                resumed_pct: m(|s| s.resumed_pct),
                reloads: group.iter().rev().find_map(|s| s.reloads.clone()),
                errors,
            }
        })
        .collect()
}

/// `uptime`'s load average, the core count and the kernel, for the report header.
pub(crate) fn machine_state() -> String {
    let run = |cmd: &str, args: &[&str]| {
        Command::new(cmd)
            .args(args)
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|| "?".to_owned())
    };
    let uptime = run("uptime", &[]);
    let load = uptime
        .split_once("load average:")
        .map_or(uptime.as_str(), |(_, l)| l.trim());
    format!(
        "load average {load} (1/5/15 min); {} cores; Linux {}",
        run("nproc", &["--all"]),
        run("uname", &["-r"])
    )
}

fn f(x: f64, digits: usize) -> String {
    if x.is_finite() {
        format!("{x:.digits$}")
    } else {
        "–".to_owned()
    }
}

fn ratio(a: f64, b: Option<f64>) -> String {
    match b {
        Some(b) if b > 0.0 && a.is_finite() => format!("{:.3}", a / b),
        _ => "–".to_owned(),
    }
}

fn pct_change(new: f64, old: f64) -> String {
    if old > 0.0 && new.is_finite() {
        format!("{:+.0} %", (new / old - 1.0) * 100.0)
    } else {
        "–".to_owned()
    }
}

fn case_label(case: Case, reload: bool, options: &RunOptions) -> String {
    match (case, reload) {
        (Case::Full, _) => "full handshake + GET".to_owned(),
        (Case::Resumed, _) => "resumed handshake + GET".to_owned(),
        (Case::KeepAlive, _) => "keep-alive GET".to_owned(),
        (Case::Reload, false) => "full handshake + GET, no reload (reload case)".to_owned(),
        (Case::Reload, true) => format!(
            "full handshake + GET, reload every {} ms",
            options.reload_every.as_millis()
        ),
        (Case::Idle, _) => "idle connection".to_owned(),
        (Case::GrpcFull, _) => "full handshake + unary RPC".to_owned(),
        (Case::GrpcKeepAlive, _) => "keep-alive unary RPC".to_owned(),
    }
}

/// Renders the whole report.
pub(crate) fn render(
    options: &RunOptions,
    samples: &[(KeyType, Case, Variant, Sample)],
    idle: &[(KeyType, ServerKind, IdleSample)],
    notes: &[String],
    machine_before: &str,
    machine_after: &str,
) -> String {
    let summaries = summarize(samples);
    let find = |k: KeyType, c: Case, v: Variant| {
        summaries
            .iter()
            .find(|s| s.key_type == k && s.case == c && s.variant == v)
    };
    let mut out = String::new();
    let _ = writeln!(out, "## Handshake load bench results\n");
    let _ = writeln!(out, "- machine before the run: {machine_before}");
    let _ = writeln!(out, "- machine after the run: {machine_after}");
    let _ = writeln!(
        out,
        "- {} s per case and round, {} rounds with the servers alternating in each round, \
         {} s warm-up before each measurement, {} concurrent client connections; medians \
         of the rounds (failures summed). Client {}, each server a fresh process {}.",
        options.secs.as_secs_f64(),
        options.rounds,
        options.warmup.as_secs_f64(),
        options.conns,
        if options.pin {
            "pinned to core 0"
        } else {
            "not pinned"
        },
        if options.pin {
            "pinned to core 1"
        } else {
            "(not pinned)"
        },
    );
    let _ = writeln!(
        out,
        "- The client {} the server's chain; it always checks the handshake signature.",
        if options.client_verify {
            "validates"
        } else {
            "does not validate"
        }
    );
    let _ = writeln!(
        out,
        "- Servers: tokio multi-thread runtime with one worker; the accept/serve loop {}.",
        if options.server_spawn {
            "is spawned onto the worker, so one thread does all the work"
        } else {
            "runs on the main thread (`block_on`, as `#[tokio::main]` runs main's body), so \
             two threads share the server's core"
        }
    );
    for n in notes {
        let _ = writeln!(out, "- {n}");
    }

    if !summaries.is_empty() {
        let _ = writeln!(out, "\n### Throughput, latency, CPU, memory\n");
        let _ = writeln!(
            out,
            "Latency: connect + TLS handshake (handshake cases), request round trip \
             (keep-alive). CPU µs/op: the server's utime + stime per operation; \
             CPU/op × raw: that over the baseline's (below 1 = cheaper; 1 / it is the \
             server's capacity on one core relative to the baseline). CPU %: server / load \
             client CPU time over wall time (100 % = that process saturated its core).\n"
        );
        let _ = writeln!(
            out,
            "| server | certs | case | ops/s | × raw | × nginx | p50 ms | p99 ms | CPU µs/op | CPU/op × raw | CPU % server / client | peak RSS MiB | failed | notes |"
        );
        let _ = writeln!(
            out,
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        );
        for s in &summaries {
            let (kind, reload) = s.variant;
            // The baseline: raw for HTTP, plain tonic for gRPC.
            let raw_cpu = find(s.key_type, s.case, (kind.baseline(), false)).map(|r| r.cpu_us);
            let cpu_x_raw = match raw_cpu {
                Some(r) if s.case != Case::Reload => ratio(s.cpu_us, Some(r)),
                _ => "–".to_owned(),
            };
            let (x_raw, x_nginx, mut note) = if s.case == Case::Reload {
                let mut note = String::new();
                if reload {
                    if let Some(base) = find(s.key_type, s.case, (kind, false)) {
                        note = format!(
                            "vs no reload: ops/s ×{}, p50 {}, p99 {}",
                            ratio(s.rate, Some(base.rate)),
                            pct_change(s.p50_ms, base.p50_ms),
                            pct_change(s.p99_ms, base.p99_ms)
                        );
                    }
                    if let Some(r) = &s.reloads {
                        let _ = write!(note, "; server's last count: {r}");
                    }
                }
                ("–".to_owned(), "–".to_owned(), note)
            } else {
                let raw = find(s.key_type, s.case, (kind.baseline(), false)).map(|r| r.rate);
                let nginx = find(s.key_type, s.case, (ServerKind::Nginx, false)).map(|r| r.rate);
                (ratio(s.rate, raw), ratio(s.rate, nginx), String::new())
            };
            if s.case == Case::Resumed {
                note = format!("{:.0} % resumed", s.resumed_pct);
            }
            if s.warmup_failed > 0 {
                let _ = write!(note, "; {} failed in warm-up", s.warmup_failed);
            }
            if let Some((e, n)) = s.errors.iter().max_by_key(|(_, n)| **n) {
                let _ = write!(note, "; {n}× \"{}\"", e.replace('|', "/"));
            }
            let label = if reload {
                format!("{} +reload", kind.name())
            } else {
                kind.name().to_owned()
            };
            let _ = writeln!(
                out,
                "| {label} | {} | {} | {} | {x_raw} | {x_nginx} | {} | {} | {} | {cpu_x_raw} | {} / {} | {} | {} | {} |",
                s.key_type,
                case_label(s.case, reload, options),
                f(s.rate, 0),
                f(s.p50_ms, 2),
                f(s.p99_ms, 2),
                f(s.cpu_us, if s.cpu_us < 100.0 { 1 } else { 0 }),
                f(s.cpu_pct, 0),
                f(s.client_cpu_pct, 0),
                f(s.peak_rss_mib, 1),
                s.failed,
                note.trim_start_matches("; "),
            );
        }
    }

    let idle_rows = idle_summaries(idle);
    if !idle_rows.is_empty() {
        let _ = writeln!(
            out,
            "\n### Memory per idle mTLS connection ({} connections, handshake done, no request)\n",
            options.idle_conns
        );
        let _ = writeln!(
            out,
            "| server | certs | KiB/conn | extra vs raw KiB/conn | RSS before MiB | RSS after MiB | opened | failed |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|");
        for (k, kind, s) in &idle_rows {
            let raw = idle_rows
                .iter()
                .find(|(k2, kind2, _)| k2 == k && *kind2 == ServerKind::Raw)
                .map(|(.., r)| r.kib_per_conn);
            let extra = raw.map_or("–".to_owned(), |r| format!("{:+.2}", s.kib_per_conn - r));
            let _ = writeln!(
                out,
                "| {} | {k} | {} | {extra} | {} | {} | {} | {} |",
                kind.name(),
                f(s.kib_per_conn, 2),
                f(s.rss_before_mib, 1),
                f(s.rss_after_mib, 1),
                s.opened,
                s.failed
            );
        }
    }

    let goals = goals(&summaries, &idle_rows);
    if !goals.is_empty() {
        let _ = writeln!(out, "\n### Goals of issue 9\n");
        let _ = writeln!(
            out,
            "Throughput goals are judged on server CPU per operation (raw ÷ ours = the \
             server's capacity on its core relative to the baseline): measured ops/s also \
             depend on the load client, which has one core too, and on what else runs on \
             the machine (see CPU %). The measured ops/s ratio is shown next to it.\n"
        );
        let _ = writeln!(out, "| server | certs | goal | measured | met |");
        let _ = writeln!(out, "|---|---|---|---|---|");
        for g in goals {
            let _ = writeln!(out, "{g}");
        }
    }
    out
}

fn idle_summaries(
    idle: &[(KeyType, ServerKind, IdleSample)],
) -> Vec<(KeyType, ServerKind, IdleSample)> {
    let mut keys: Vec<(KeyType, ServerKind)> = Vec::new();
    for (k, kind, _) in idle {
        if !keys.contains(&(*k, *kind)) {
            keys.push((*k, *kind));
        }
    }
    keys.into_iter()
        .map(|(k, kind)| {
            let group: Vec<&IdleSample> = idle
                .iter()
                .filter(|(k2, kind2, _)| *k2 == k && *kind2 == kind)
                .map(|(.., s)| s)
                .collect();
            let m = |f: fn(&IdleSample) -> f64| median(group.iter().map(|s| f(s)).collect());
            let s = IdleSample {
                kib_per_conn: m(|s| s.kib_per_conn),
                rss_before_mib: m(|s| s.rss_before_mib),
                rss_after_mib: m(|s| s.rss_after_mib),
                opened: group.iter().map(|s| s.opened).min().unwrap_or(0),
                failed: group.iter().map(|s| s.failed).sum(),
            };
            (k, kind, s)
        })
        .collect()
}

fn goals(summaries: &[Summary], idle: &[(KeyType, ServerKind, IdleSample)]) -> Vec<String> {
    let mut rows = Vec::new();
    let find = |k: KeyType, c: Case, v: Variant| {
        summaries
            .iter()
            .find(|s| s.key_type == k && s.case == c && s.variant == v)
    };
    let mut keys: Vec<KeyType> = Vec::new();
    for k in summaries
        .iter()
        .map(|s| s.key_type)
        .chain(idle.iter().map(|(k, ..)| *k))
    {
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    for k in keys {
        // The PKCS#11 server signs in a token: measured for its cost, not held to the
        // goals of the file-key servers.
        for kind in ServerKind::ALL
            .into_iter()
            .filter(|k| k.is_mtls() && *k != ServerKind::MtlsHyperPkcs11)
        {
            let mut row = |goal: &str, measured: String, met: Option<bool>| {
                let met = match met {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "–",
                };
                rows.push(format!(
                    "| {} | {k} | {goal} | {measured} | {met} |",
                    kind.name()
                ));
            };
            for (case, min, what) in [
                (Case::Full, 0.97, "full handshakes/s ≥ 0.97 × raw"),
                (Case::Resumed, 0.97, "resumed handshakes/s ≥ 0.97 × raw"),
                (Case::KeepAlive, 0.99, "keep-alive req/s ≥ 0.99 × raw"),
                (Case::GrpcFull, 0.97, "new-connection RPCs/s ≥ 0.97 × tonic"),
                (
                    Case::GrpcKeepAlive,
                    0.97,
                    "keep-alive RPCs/s ≥ 0.97 × tonic",
                ),
            ] {
                if let (Some(ours), Some(raw)) = (
                    find(k, case, (kind, false)),
                    find(k, case, (kind.baseline(), false)),
                ) {
                    let r = ours.rate / raw.rate;
                    let capacity = raw.cpu_us / ours.cpu_us;
                    row(
                        what,
                        format!("capacity ×{capacity:.3} (measured ops/s ×{r:.3})"),
                        Some(capacity >= min),
                    );
                }
            }
            if let Some(s) = find(k, Case::Reload, (kind, true)) {
                row(
                    "0 failed handshakes under reload",
                    format!("{} failed", s.failed + s.warmup_failed),
                    Some(s.failed + s.warmup_failed == 0),
                );
            }
            let idle_of = |kind2: ServerKind| {
                idle.iter()
                    .find(|(k2, kind3, _)| *k2 == k && *kind3 == kind2)
                    .map(|(.., s)| s.kib_per_conn)
            };
            if let (Some(ours), Some(raw)) = (idle_of(kind), idle_of(ServerKind::Raw)) {
                let extra = ours - raw;
                row(
                    "≤ 1 KiB extra per idle connection",
                    format!("{extra:+.2} KiB"),
                    Some(extra <= 1.0),
                );
            }
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(vec![]).is_nan());
        assert_eq!(median(vec![f64::NAN, 5.0]), 5.0);
    }
}
