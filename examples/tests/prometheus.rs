//! The Prometheus alerting rules in `deploy/prometheus`: checked and unit-tested with
//! promtool, then loaded by a real Prometheus server that scrapes the `axum_server`
//! example's `--metrics-listen` endpoint.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mtls_testing::TestPki;
use serde_json::Value;
use support::{curl, curl_ok, free_port, require, start};

const RULES: &str = "deploy/prometheus/mtls-alerts.yml";
const RULE_TESTS: &str = "deploy/prometheus/mtls-alerts.test.yml";

/// The alerts in [`RULES`].
const ALERTS: [&str; 6] = [
    "MtlsCertificateExpiringSoon",
    "MtlsCertificateExpiryCritical",
    "MtlsCertificateExpired",
    "MtlsCrlStale",
    "MtlsReloadFailing",
    "MtlsHandshakeRefusalsHigh",
];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn promtool_checks_and_tests_the_shipped_rules() {
    if !require("promtool") {
        return;
    }
    for args in [["check", "rules", RULES], ["test", "rules", RULE_TESTS]] {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(workspace_root())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "promtool {}: {text}", args.join(" "));
        assert!(
            text.contains("SUCCESS"),
            "promtool {}: {text}",
            args.join(" ")
        );
    }
}

/// A Prometheus server in the foreground, killed on drop.
struct Prometheus {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Prometheus {
    /// Starts `prometheus` on 127.0.0.1 with `config`, its data in `dir`, and waits
    /// (30 s at most) until `/-/ready` answers 200.
    fn start(config: &Path, dir: &Path) -> Self {
        let port = free_port();
        let log = dir.join("prometheus.log");
        let out = File::create(&log).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("cannot start prometheus");
        let mut prometheus = Self { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = prometheus.child.try_wait() {
                panic!("prometheus exited ({status}): {}", prometheus.log_text());
            }
            if prometheus.get("/-/ready", &[]).0 == 200 {
                return prometheus;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready within 30 s: {}",
                prometheus.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// (HTTP status, body) of `GET path` with the URL-encoded `params`; status 0 when
    /// curl could not connect.
    fn get(&self, path: &str, params: &[(&str, &str)]) -> (u16, String) {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "5", "-G", "-w", "\n%{http_code}"]);
        for (name, value) in params {
            cmd.arg("--data-urlencode").arg(format!("{name}={value}"));
        }
        let out = cmd
            .arg(format!("http://127.0.0.1:{}{path}", self.port))
            .stdin(Stdio::null())
            .output()
            .expect("curl is needed for this test");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", "0"));
        (code.parse().unwrap_or(0), body.to_owned())
    }

    /// `data` of an API answer with `"status": "success"`.
    fn api(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let (status, body) = self.get(path, params);
        assert_eq!(status, 200, "GET {path} {params:?}: {body}");
        let mut json: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["status"], "success", "GET {path} {params:?}: {body}");
        json["data"].take()
    }

    /// The series of the instant query `query`: (labels, value).
    fn query(&self, query: &str) -> Vec<(Value, f64)> {
        let data = self.api("/api/v1/query", &[("query", query)]);
        assert_eq!(data["resultType"], "vector", "{query}: {data}");
        data["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|sample| {
                let value = sample["value"][1].as_str().unwrap().parse().unwrap();
                (sample["metric"].clone(), value)
            })
            .collect()
    }

    /// The value of a query that yields at most one series.
    fn scalar(&self, query: &str) -> Option<f64> {
        let series = self.query(query);
        assert!(series.len() <= 1, "{query}: several series {series:?}");
        series.first().map(|(_, v)| *v)
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Hex digits only, upper case, without leading zeros: serials compare alike whether
/// written `00:AB:..`, `ab..` or `AB..`.
fn normal_hex(text: &str) -> String {
    let hex: String = text
        .chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_uppercase())
        .collect();
    hex.trim_start_matches('0').to_owned()
}

/// An alert Prometheus should show (pending or firing): its name, one of its labels and
/// text its description contains.
struct Alert {
    name: &'static str,
    label: (&'static str, &'static str),
    text: &'static str,
}

/// What the scrape of the server should show.
struct Want {
    /// notAfter of the server's certificate, Unix seconds.
    not_after: f64,
    /// Its serial, as [`normal_hex`] writes it.
    serial: String,
    /// nextUpdate of its CRL, Unix seconds.
    crl_next_update: f64,
    /// Whether a reload has failed.
    reload_failed: bool,
    /// Exactly the alerts Prometheus should show.
    alerts: Vec<Alert>,
}

/// What is still missing from what the scrape should show; empty once it is all there.
fn missing(prometheus: &Prometheus, want: &Want) -> Vec<String> {
    let mut missing = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            missing.push(what);
        }
    };
    let accepted = r#"sum(mtls_handshakes_total{side="server",result="accepted"})"#;
    let got = prometheus.scalar(accepted);
    check(got >= Some(1.0), format!("{accepted} >= 1 (got {got:?})"));
    let refused =
        r#"sum(mtls_handshakes_total{side="server",result="refused",reason="no_certificate"})"#;
    let got = prometheus.scalar(refused);
    check(got >= Some(1.0), format!("{refused} >= 1 (got {got:?})"));

    // `> 0` leaves out series set to NaN (certificates no longer in force).
    let identity =
        r#"mtls_certificate_expiry_timestamp_seconds{side="server",role="identity"} > 0"#;
    let series = prometheus.query(identity);
    check(
        matches!(&series[..], [(_, v)] if *v == want.not_after),
        format!("one {identity} = {} (got {series:?})", want.not_after),
    );
    if let [(labels, _)] = &series[..] {
        let (subject, serial) = (labels["subject"].as_str(), labels["serial"].as_str());
        check(
            subject.is_some_and(|s| s.contains("localhost")),
            format!("{identity}: subject naming localhost (got {labels})"),
        );
        check(
            serial.map(normal_hex).as_deref() == Some(&want.serial),
            format!("{identity}: serial {} (got {labels})", want.serial),
        );
    }
    for role in ["chain", "ca"] {
        let query = format!(
            r#"count(mtls_certificate_expiry_timestamp_seconds{{side="server",role="{role}"}} > 0)"#
        );
        let got = prometheus.scalar(&query);
        check(got >= Some(1.0), format!("{query} >= 1 (got {got:?})"));
    }
    let crl = r#"mtls_crl_next_update_timestamp_seconds{side="server"} > 0"#;
    let series = prometheus.query(crl);
    check(
        matches!(&series[..], [(labels, v)] if *v == want.crl_next_update
            && labels["issuer"].as_str().is_some_and(|i| i.contains("mtls-testing intermediate"))),
        format!(
            "one {crl} = {} from the intermediate (got {series:?})",
            want.crl_next_update
        ),
    );
    // What the rules rely on besides the above.
    for query in [
        r#"mtls_reload_last_success_timestamp_seconds{side="server"} > 0"#,
        r#"mtls_reload_generation{side="server"}"#,
        r#"count(mtls_handshake_duration_seconds_bucket{side="server",result="accepted"})"#,
        r#"mtls_handshakes_in_flight{side="server"}"#,
    ] {
        let got = prometheus.scalar(query);
        check(got.is_some(), format!("{query} (no series)"));
    }
    let failure = r#"mtls_reload_last_failure_timestamp_seconds{side="server"}"#;
    let got = prometheus.scalar(failure);
    if want.reload_failed {
        let newer = r#"mtls_reload_last_failure_timestamp_seconds{side="server"}
            > mtls_reload_last_success_timestamp_seconds"#;
        let got = prometheus.scalar(newer);
        check(got.is_some(), format!("{newer} (got {got:?})"));
    } else {
        check(
            got.is_none(),
            format!("no {failure} before a failure (got {got:?})"),
        );
    }

    // The rules loaded and evaluate without errors.
    let groups = prometheus.api("/api/v1/rules", &[]);
    let rules: Vec<&Value> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["name"] == "mtls")
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    let names: Vec<&str> = rules.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ALERTS, "the rules Prometheus loaded from {RULES}");
    for rule in &rules {
        assert_ne!(rule["health"], "err", "a rule fails to evaluate: {rule}");
        check(
            rule["health"] == "ok",
            format!(
                "rule {} evaluated (health {})",
                rule["name"], rule["health"]
            ),
        );
    }
    // The alerts they raise on what the server exports, and no others.
    let alerts = prometheus.api("/api/v1/alerts", &[]);
    let alerts = alerts["alerts"].as_array().unwrap();
    for alert in &want.alerts {
        let found: Vec<&Value> = alerts
            .iter()
            .filter(|a| a["labels"]["alertname"] == alert.name)
            .collect();
        let (label, value) = alert.label;
        check(
            matches!(&found[..], [a] if a["labels"][label] == value
                && a["annotations"]["description"]
                    .as_str()
                    .is_some_and(|d| d.contains(alert.text))),
            format!(
                "one {} with {label}={value} and {:?} in its description (got {found:?})",
                alert.name, alert.text
            ),
        );
    }
    let unexpected: Vec<&Value> = alerts
        .iter()
        .filter(|a| {
            !want
                .alerts
                .iter()
                .any(|w| a["labels"]["alertname"] == w.name)
        })
        .collect();
    assert!(unexpected.is_empty(), "unexpected alerts: {unexpected:?}");
    missing
}

/// Polls Prometheus (30 s at most) until the scrape shows everything `want` expects.
fn wait_for(prometheus: &Prometheus, want: &Want) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let missing = missing(prometheus, want);
        if missing.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            let targets = prometheus.api("/api/v1/targets", &[]);
            panic!(
                "after 30 s, still missing:\n  {}\ntargets: {targets}\nprometheus log:\n{}",
                missing.join("\n  "),
                prometheus.log_text()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn prometheus_scrapes_the_axum_server_example_and_loads_the_rules() {
    if !require("prometheus") {
        return;
    }
    let pki = TestPki::new();
    let now = time::OffsetDateTime::now_utc();
    // Valid for two more days: inside the critical window of the expiry rule.
    let leaf = pki
        .intermediate
        .leaf("localhost")
        .server()
        .dns("localhost")
        .ip(IpAddr::V4(Ipv4Addr::LOCALHOST))
        .validity(
            now - time::Duration::hours(1),
            now + time::Duration::days(2),
        )
        .build();
    let server = leaf.write(pki.dir.path(), "localhost");
    let ca = pki.ca_file();
    let (_, alice) = pki.client("alice");
    // Past its nextUpdate: in force (with a warning), and stale for the CRL rule.
    let next_update = now - time::Duration::hours(1);
    let crl = pki
        .intermediate
        .crl_with(&[], now - time::Duration::hours(2), next_update, 1)
        .write(pki.dir.path(), "intermediate.crl");
    let running = start(
        "axum_server",
        &[
            "--cert",
            s(&server.cert),
            "--key",
            s(&server.key),
            "--client-ca",
            s(&ca),
            "--crl",
            s(&crl),
            "--allow-any",
            "--watch",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    );
    let line = running.next_line();
    let metrics_addr = line
        .strip_prefix("metrics on ")
        .unwrap_or_else(|| panic!("expected `metrics on ADDR`, got {line:?}"))
        .to_owned();

    // One accepted handshake, and one refused for want of a client certificate.
    let (status, body) = curl_ok(
        running.port,
        "/whoami",
        &ca,
        Some((&alice.cert, &alice.key)),
    );
    assert_eq!(status, 200, "{body}");
    let out = curl(running.port, "/whoami", &ca, None);
    assert!(
        !out.status.success(),
        "curl without a certificate succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    let dir = pki.path("prometheus");
    std::fs::create_dir(&dir).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {rules}\n\
             scrape_configs:\n  - job_name: axum_server\n    static_configs:\n      \
             - targets: ['{metrics_addr}']\n",
            rules = workspace_root().join(RULES).display(),
        ),
    )
    .unwrap();
    let prometheus = Prometheus::start(&config, &dir);

    let serial: String = leaf.serial().iter().map(|b| format!("{b:02X}")).collect();
    let mut want = Want {
        not_after: leaf.not_after().unix_timestamp() as f64,
        serial: normal_hex(&serial),
        crl_next_update: next_update.unix_timestamp() as f64,
        reload_failed: false,
        alerts: vec![
            Alert {
                name: "MtlsCertificateExpiryCritical",
                label: ("role", "identity"),
                text: "CN=localhost\" (serial",
            },
            Alert {
                name: "MtlsCrlStale",
                label: ("side", "server"),
                text: "mtls-testing intermediate",
            },
        ],
    };
    wait_for(&prometheus, &want);

    // A reload that fails (the certificate file replaced by garbage): the last failure
    // is newer than the last success, the previous material stays in force.
    let garbage = pki.path("localhost.crt.new");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    std::fs::rename(&garbage, &server.cert).unwrap();
    want.reload_failed = true;
    want.alerts.push(Alert {
        name: "MtlsReloadFailing",
        label: ("side", "server"),
        text: "still in force",
    });
    wait_for(&prometheus, &want);
}
