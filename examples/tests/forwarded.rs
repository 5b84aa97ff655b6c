//! The `axum_server` example behind real TLS-terminating proxies (issue 17). nginx,
//! HAProxy and Apache httpd terminate the client's mutual TLS, forward its certificate in
//! a header, and connect to our server with their own client certificate
//! (`CN=edge-proxy`). curl is the client. The proxy configurations and our server's
//! flags are the snippets of `docs/forwarded-recipes.md`, read from that file, so the
//! recipes are what runs here. The PKI is made with the openssl CLI
//! (`tests/scripts/proxy-pki.sh`).
//!
//! Each proxy runs three times in one process: as the recipe says (client certificate
//! required), with the client certificate optional, and with verification not enforced
//! (a certificate from an unknown CA let through). For each proxy:
//!
//! 1. alice through the proxy has the same identity as alice connecting directly, with
//!    `forwarded_by` naming the proxy (`null` when direct);
//! 2. `/admin` (policy `cn:admin`) is 403 for alice and 200 for admin through the proxy;
//! 3. an `X-SSL-Client-Cert` that the client adds itself (admin's) does not get through the
//!    proxy: alice stays alice, and a client without a certificate stays anonymous;
//! 4. bob (revoked), and a client without a certificate where one is required, are
//!    refused by the proxy itself (recorded, not asserted word for word);
//! 5. a certificate that the proxy let through unverified is refused by our server (403),
//!    from the proxy's verification header.
//!
//! `direct_clients_cannot_forge_a_forwarded_certificate` runs our server with each
//! `--forwarded` format and sends it, directly, a forged header of every format.
//!
//! Run with `--nocapture` to see the matrix lines (`MATRIX | path | server | case |
//! what was seen`). A missing peer fails the test under `MTLS_REQUIRE_PEERS=1` and is
//! otherwise reported as `skipped: <peer> not installed`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use mtls::forwarded::{HeaderFormat, encode_rfc9440, encode_xfcc};
use mtls::rustls::pki_types::CertificateDer;
use mtls::rustls::pki_types::pem::PemObject;
use serde_json::Value;
use support::peers::{Daemon, Reply, https, record};
use support::{Running, free_port, require, start};

/// The recipes, whose snippets the proxies and our server run.
const RECIPES: &str = include_str!("../../docs/forwarded-recipes.md");

// === the PKI ===

/// The directory of one test run, `target/tmp/mtls-forwarded-<pid>`; those of earlier
/// runs whose process has ended are removed first.
fn run_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
        if let Ok(entries) = std::fs::read_dir(base) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let pid = name
                    .to_str()
                    .and_then(|n| n.strip_prefix("mtls-forwarded-"))
                    .and_then(|p| p.parse::<u32>().ok());
                if pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = base.join(format!("mtls-forwarded-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

/// A fresh directory for one proxy.
fn proxy_dir(name: &str) -> PathBuf {
    let dir = run_dir().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The files of `tests/scripts/proxy-pki.sh`.
#[derive(Debug)]
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The CA of the client certificates and of the server certificate.
    fn ca(&self) -> PathBuf {
        self.file("ca.crt")
    }

    /// `NAME.crt` and `NAME.key`.
    fn client(&self, name: &str) -> (PathBuf, PathBuf) {
        (
            self.file(&format!("{name}.crt")),
            self.file(&format!("{name}.key")),
        )
    }
}

/// Runs `tests/scripts/proxy-pki.sh` once per test binary (needs openssl).
fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let dir = run_dir().join("pki");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/proxy-pki.sh");
        let out = Command::new("sh")
            .arg(&script)
            .arg(&dir)
            .output()
            .expect("run sh tests/scripts/proxy-pki.sh");
        assert!(
            out.status.success(),
            "proxy-pki.sh failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        Pki { dir }
    })
}

// === the recipes ===

/// The one ```` ```lang ```` block of the recipes, with the PKI's directory in place of
/// `/etc/mtls/`.
fn recipe(lang: &str) -> String {
    let fence = format!("```{lang}\n");
    let mut blocks = RECIPES.split(&fence).skip(1);
    let block = blocks
        .next()
        .unwrap_or_else(|| panic!("no ```{lang} block in docs/forwarded-recipes.md"));
    assert!(
        blocks.next().is_none(),
        "several ```{lang} blocks in docs/forwarded-recipes.md"
    );
    let (body, _) = block.split_once("```").unwrap();
    body.replace("/etc/mtls/", &format!("{}/", pki().dir.display()))
}

/// `text` with `from` replaced; `from` must be there (the recipe changed otherwise).
fn replace(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "the recipe no longer has {from:?}: {text}"
    );
    text.replace(from, to)
}

/// Our server's flags from the recipe's `sh` block, without `--listen` (the test's
/// server listens on port 0) and with `--forwarded FORMAT`.
fn our_args(format: &str) -> Vec<String> {
    let sh = recipe("sh").replace("\\\n", " ");
    let words: Vec<&str> = sh.split_whitespace().collect();
    let from = words.iter().position(|w| *w == "--").unwrap() + 1;
    let mut args = Vec::new();
    let mut words = words[from..].iter();
    let mut forwarded = false;
    while let Some(word) = words.next() {
        match *word {
            "--listen" => {
                words.next();
            }
            "--forwarded" => {
                words.next();
                args.extend(["--forwarded".to_owned(), format.to_owned()]);
                forwarded = true;
            }
            other => args.push(other.to_owned()),
        }
    }
    assert!(forwarded, "the recipe's server has no --forwarded: {sh}");
    args
}

/// Starts `axum_server` with `args`.
fn ours(args: &[String]) -> Running {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    start("axum_server", &args)
}

// === the proxies ===

/// A proxy running the recipe three times: on `daemon.port` as the recipe says (client
/// certificate required), on `optional` with the client certificate optional, and on
/// `unverified` with a certificate that fails verification let through (nginx
/// `optional_no_ca`, HAProxy `crt-ignore-err all ca-ignore-err all`, Apache
/// `optional_no_ca`), which the verification header must then tell our server.
struct Proxy {
    name: &'static str,
    format: HeaderFormat,
    daemon: Daemon,
    optional: u16,
    unverified: u16,
}

/// nginx with the recipe's `server` block, to our server on `upstream`.
fn nginx(upstream: u16) -> Proxy {
    let dir = proxy_dir("nginx");
    let server = replace(
        &recipe("nginx"),
        "proxy_pass https://127.0.0.1:8443;",
        &format!("proxy_pass https://127.0.0.1:{upstream};"),
    );
    let (required, optional, unverified) = (free_port(), free_port(), free_port());
    let at = |port: u16, verify: &str| {
        replace(
            &replace(
                &server,
                "listen 443 ssl;",
                &format!("listen 127.0.0.1:{port} ssl;"),
            ),
            "ssl_verify_client on;",
            &format!("ssl_verify_client {verify};"),
        )
    };
    let servers = [
        at(required, "on"),
        at(optional, "optional"),
        at(unverified, "optional_no_ca"),
    ]
    .join("\n");
    let d = dir.display();
    let conf = format!(
        "daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log stderr info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
{servers}
}}
"
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let mut cmd = Command::new("nginx");
    cmd.args(["-e", "stderr", "-p"])
        .arg(&dir)
        .arg("-c")
        .arg(&path);
    Proxy {
        name: "nginx",
        format: HeaderFormat::Nginx,
        daemon: Daemon::start("nginx", cmd, required, &dir),
        optional,
        unverified,
    }
}

/// HAProxy in the foreground (`-db`) with the recipe's sections, to our server on
/// `upstream`.
fn haproxy(upstream: u16) -> Proxy {
    let dir = proxy_dir("haproxy");
    let cfg = replace(
        &recipe("haproxy"),
        "server ours 127.0.0.1:8443 ",
        &format!("server ours 127.0.0.1:{upstream} "),
    );
    let (required, optional, unverified) = (free_port(), free_port(), free_port());
    let bind = cfg
        .lines()
        .find(|l| l.trim_start().starts_with("bind :443 "))
        .expect("the recipe's frontend binds :443")
        .to_owned();
    let at = |port: u16, verify: &str| {
        replace(
            &bind.replace("bind :443 ", &format!("bind 127.0.0.1:{port} ")),
            "verify required",
            verify,
        )
    };
    let binds = [
        at(required, "verify required"),
        at(optional, "verify optional"),
        at(
            unverified,
            "verify optional crt-ignore-err all ca-ignore-err all",
        ),
    ]
    .join("\n");
    let cfg = replace(&cfg, &bind, &binds);
    // Test-only: log to stderr (the daemon's log file).
    let cfg = replace(
        &cfg,
        "defaults\n",
        "defaults\n    log global\n    option httplog\n",
    );
    let cfg = format!("global\n    log stderr format raw local0 info\n\n{cfg}");
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, cfg).unwrap();
    let mut cmd = Command::new("haproxy");
    cmd.arg("-db").arg("-f").arg(&path);
    Proxy {
        name: "haproxy",
        format: HeaderFormat::Haproxy,
        daemon: Daemon::start("haproxy", cmd, required, &dir),
        optional,
        unverified,
    }
}

/// Where Debian's apache2 keeps its modules, if it has mod_ssl.
const APACHE_MODULES: &str = "/usr/lib/apache2/modules";

/// Apache httpd as one process in the foreground (`-X`) with the recipe's virtual host,
/// to our server on `upstream`.
fn apache(upstream: u16) -> Proxy {
    let dir = proxy_dir("apache");
    let vhost = replace(
        &recipe("apache"),
        "ProxyPass / https://localhost:8443/",
        &format!("ProxyPass / https://localhost:{upstream}/"),
    );
    let (required, optional, unverified) = (free_port(), free_port(), free_port());
    let at = |port: u16, verify: &str| {
        let vhost = replace(
            &vhost,
            "Listen 443\n",
            &format!("Listen 127.0.0.1:{port}\n"),
        );
        let vhost = replace(
            &vhost,
            "<VirtualHost *:443>",
            &format!("<VirtualHost 127.0.0.1:{port}>"),
        );
        replace(
            &vhost,
            "SSLVerifyClient require",
            &format!("SSLVerifyClient {verify}"),
        )
    };
    // Apache refuses a certificate from an unknown CA for want of its CRL ("unable to
    // get certificate CRL") even under optional_no_ca, so that host checks no CRL.
    let unverified_vhost = replace(
        &at(unverified, "optional_no_ca"),
        "SSLCARevocationCheck chain",
        "SSLCARevocationCheck none",
    );
    let vhosts = [
        at(required, "require"),
        at(optional, "optional"),
        unverified_vhost,
    ]
    .join("\n");
    let d = dir.display();
    let modules: String = [
        ("mpm_event", "mod_mpm_event"),
        ("authz_core", "mod_authz_core"),
        ("headers", "mod_headers"),
        ("proxy", "mod_proxy"),
        ("proxy_http", "mod_proxy_http"),
        ("ssl", "mod_ssl"),
    ]
    .iter()
    .map(|(name, file)| format!("LoadModule {name}_module {APACHE_MODULES}/{file}.so\n"))
    .collect();
    let conf = format!(
        "ServerRoot {d}
PidFile {d}/httpd.pid
DefaultRuntimeDir {d}
ErrorLog /dev/stderr
LogLevel info
ServerName localhost
{modules}
{vhosts}
"
    );
    let path = dir.join("httpd.conf");
    std::fs::write(&path, conf).unwrap();
    let mut cmd = Command::new("apache2");
    cmd.arg("-X").arg("-f").arg(&path);
    Proxy {
        name: "apache httpd",
        format: HeaderFormat::Apache,
        daemon: Daemon::start("apache2", cmd, required, &dir),
        optional,
        unverified,
    }
}

// === forged headers ===

/// The `-----BEGIN CERTIFICATE-----` PEM of `NAME.crt`, and its DER.
fn cert(name: &str) -> (String, CertificateDer<'static>) {
    let path = pki().file(&format!("{name}.crt"));
    let pem = std::fs::read_to_string(&path).unwrap();
    (pem, CertificateDer::from_pem_file(&path).unwrap())
}

/// What `$ssl_client_escaped_cert` does to a PEM.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// The headers that a proxy speaking `format` would send for the certificate `name`,
/// with the verification result it sends for a verified one.
fn forged(format: HeaderFormat, name: &str) -> Vec<(String, String)> {
    let (pem, der) = cert(name);
    let h = |name: &str, value: String| (name.to_owned(), value);
    match format {
        HeaderFormat::Rfc9440 => {
            let (cert, _) = encode_rfc9440(&[der]);
            vec![h("Client-Cert", cert)]
        }
        HeaderFormat::Xfcc => vec![h(
            "X-Forwarded-Client-Cert",
            encode_xfcc(&[der], Some("spiffe://example.org/edge-proxy")),
        )],
        HeaderFormat::Nginx => vec![
            h("X-SSL-Client-Cert", url_encode(&pem)),
            h("X-SSL-Client-Verify", "SUCCESS".to_owned()),
        ],
        HeaderFormat::Haproxy => {
            let hex: String = der.iter().map(|b| format!("{b:02X}")).collect();
            vec![
                h("X-SSL-Client-Cert", format!("\"{hex}\"")),
                h("X-SSL-Client-Verify", "0".to_owned()),
            ]
        }
        HeaderFormat::Apache => vec![
            h("X-SSL-Client-Cert", pem.trim().replace('\n', " ")),
            h("X-SSL-Client-Verify", "SUCCESS".to_owned()),
        ],
        HeaderFormat::Traefik => {
            let base64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            vec![h("X-Forwarded-Tls-Client-Cert", base64)]
        }
        HeaderFormat::Alb => vec![h("X-Amzn-Mtls-Clientcert", url_encode(&pem))],
        other => panic!("no forged header for {other}"),
    }
}

// === the checks ===

/// curl to `port` as `client` (`None`: no certificate).
fn get(port: u16, path: &str, client: Option<&str>, headers: &[(String, String)]) -> Reply {
    let files = client.map(|name| pki().client(name));
    let files = files.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
    https(port, path, &pki().ca(), files, headers)
}

/// Asserts that `reply` is a 200 from `/whoami` for `cn`; returns the JSON.
fn whoami(who: &str, reply: &Reply, cn: &str) -> Value {
    let json = reply.json(who);
    assert_eq!(json["common_name"], cn, "{who}: {json}");
    json
}

/// Asserts an HTTP answer with `status`.
fn status(who: &str, reply: &Reply, status: u16) -> String {
    assert_eq!(reply.status(), status, "{who}: {}", reply.describe());
    reply.describe()
}

/// Asserts that the proxy refused the request itself: no HTTP answer (a failed
/// handshake) or a 4xx that is not ours (no identity in it).
fn refused_by_proxy(who: &str, reply: &Reply) -> String {
    match reply {
        Reply::Failed { .. } => {}
        Reply::Http { status, body } => assert!(
            (400..500).contains(status) && !body.contains("common_name"),
            "{who}: expected the proxy to refuse, got {}",
            reply.describe()
        ),
    }
    reply.describe()
}

/// The fields of `/whoami` that must be the same through the proxy as directly: all but
/// `forwarded_by` and `generation` (the reload generation of the material that verified
/// the client, which a forwarded identity does not have: 0).
fn same_client(who: &str, direct: &Value, forwarded: &Value) {
    let direct = direct.as_object().unwrap();
    for (key, value) in direct {
        if key != "forwarded_by" && key != "generation" {
            assert_eq!(
                &forwarded[key], value,
                "{who}: `{key}` differs: {forwarded}"
            );
        }
    }
    for key in ["subject", "serial", "fingerprint_sha256"] {
        assert!(
            direct[key].as_str().is_some_and(|s| !s.is_empty()),
            "{key} in {direct:?}"
        );
    }
    assert_eq!(
        forwarded["dns_names"],
        serde_json::json!(["alice.example.com"])
    );
    assert_eq!(
        forwarded["uris"],
        serde_json::json!(["spiffe://example.org/user/alice"])
    );
}

/// Asserts that `forwarded_by` names the edge proxy speaking `format`.
fn by_edge_proxy(who: &str, json: &Value, format: HeaderFormat) {
    let by = &json["forwarded_by"];
    assert_eq!(by["format"], format.name(), "{who}: {json}");
    assert!(
        by["subject"]
            .as_str()
            .is_some_and(|s| s.starts_with("CN=edge-proxy,")),
        "{who}: {by}"
    );
    assert!(
        by["addr"]
            .as_str()
            .is_some_and(|a| a.starts_with("127.0.0.1:")),
        "{who}: {by}"
    );
}

/// The cases of the module docs through `proxy`, in front of `ours`.
fn behind(proxy: &Proxy, ours: &Running) {
    let server = format!("axum_server --forwarded {}", proxy.format);
    let required = format!("curl -> {}", proxy.name);
    let optional = format!("curl -> {} (client certificate optional)", proxy.name);
    let direct = "curl -> axum_server directly";
    let ports = [
        (proxy.daemon.port, required.as_str()),
        (proxy.optional, optional.as_str()),
    ];
    let log = || proxy.daemon.log_text();

    // 1. The same identity as directly, with the proxy named.
    let alice_direct = whoami(
        direct,
        &get(ours.port, "/whoami", Some("alice"), &[]),
        "alice",
    );
    assert_eq!(alice_direct["forwarded_by"], Value::Null, "{alice_direct}");
    record(direct, &server, "alice", "200 alice, forwarded_by null");
    for (port, path) in ports {
        let reply = get(port, "/whoami", Some("alice"), &[]);
        let alice = match reply {
            Reply::Http { status: 200, .. } => whoami(path, &reply, "alice"),
            _ => panic!("{path}: {}\n{}", reply.describe(), log()),
        };
        same_client(path, &alice_direct, &alice);
        by_edge_proxy(path, &alice, proxy.format);
        record(
            path,
            &server,
            "alice",
            &format!(
                "200 alice, same identity as direct, forwarded_by {}",
                alice["forwarded_by"]
            ),
        );
    }

    // 2. Route policy on the forwarded client.
    for (port, path) in ports {
        let seen = status(path, &get(port, "/admin", Some("alice"), &[]), 403);
        record(path, &server, "alice GET /admin", &seen);
        let reply = get(port, "/admin", Some("admin"), &[]);
        let json = reply.json(path);
        assert_eq!(json["common_name"], "admin", "{path}: {json}");
        record(path, &server, "admin GET /admin", &reply.describe());
    }

    // 3. The headers that the client adds itself (every one that our server reads:
    // admin's certificate, a "verified" result, and a chain where the format has one)
    // are replaced by the proxy.
    let mut forged_admin = forged(proxy.format, "admin");
    if let Some(chain) = proxy.format.default_chain_header() {
        forged_admin.push((chain.to_owned(), "not-a-chain".to_owned()));
    }
    for (port, path) in ports {
        let json = whoami(
            path,
            &get(port, "/whoami", Some("alice"), &forged_admin),
            "alice",
        );
        by_edge_proxy(path, &json, proxy.format);
        status(
            path,
            &get(port, "/admin", Some("alice"), &forged_admin),
            403,
        );
        record(
            path,
            &server,
            "alice + forged admin header",
            "200 alice (the proxy replaced the header); /admin 403",
        );
    }
    let seen = status(
        &optional,
        &get(proxy.optional, "/whoami", None, &forged_admin),
        401,
    );
    status(
        &optional,
        &get(proxy.optional, "/admin", None, &forged_admin),
        401,
    );
    record(
        &optional,
        &server,
        "no certificate + forged admin header",
        &format!("{seen}; /admin 401"),
    );
    let seen = status(&optional, &get(proxy.optional, "/whoami", None, &[]), 401);
    record(
        &optional,
        &server,
        "no certificate",
        &format!("anonymous, not the proxy: {seen}"),
    );

    // 4. Refused by the proxy itself.
    let seen = refused_by_proxy(&required, &get(proxy.daemon.port, "/whoami", None, &[]));
    record(&required, &server, "no certificate", &seen);
    for (port, path) in ports {
        let seen = refused_by_proxy(path, &get(port, "/whoami", Some("bob"), &[]));
        record(path, &server, "bob (revoked)", &seen);
    }
    // 5. A certificate that the proxy let through unverified: the verification header
    // says so, and our server refuses it (403); a verified one still passes.
    let unverified = format!("curl -> {} (verification not enforced)", proxy.name);
    whoami(
        &unverified,
        &get(proxy.unverified, "/whoami", Some("alice"), &[]),
        "alice",
    );
    record(&unverified, &server, "alice", "200 alice");
    let reply = get(proxy.unverified, "/whoami", Some("mallory"), &[]);
    let seen = status(&unverified, &reply, 403);
    assert!(seen.contains("refused"), "{unverified}: {seen}");
    record(&unverified, &server, "mallory (unknown CA)", &seen);

    // Our server has the CRL too.
    let reply = get(ours.port, "/whoami", Some("bob"), &[]);
    assert!(
        matches!(reply, Reply::Failed { .. }),
        "{direct}: bob must be refused in the handshake: {}",
        reply.describe()
    );
    record(direct, &server, "bob (revoked)", &reply.describe());
}

#[test]
fn nginx_in_front_of_axum_server() {
    if require("nginx") && require("curl") && require("openssl") {
        let ours = ours(&our_args("nginx"));
        behind(&nginx(ours.port), &ours);
    }
}

#[test]
fn haproxy_in_front_of_axum_server() {
    if require("haproxy") && require("curl") && require("openssl") {
        let ours = ours(&our_args("haproxy"));
        behind(&haproxy(ours.port), &ours);
    }
}

#[test]
fn apache_httpd_in_front_of_axum_server() {
    if !(require("apache2") && require("curl") && require("openssl")) {
        return;
    }
    if !Path::new(APACHE_MODULES).join("mod_ssl.so").exists() {
        assert!(
            !support::peers_required(),
            "apache2's mod_ssl is required (MTLS_REQUIRE_PEERS=1) but not in {APACHE_MODULES}"
        );
        println!("skipped: apache2 mod_ssl not installed");
        return;
    }
    let ours = ours(&our_args("apache"));
    behind(&apache(ours.port), &ours);
}

/// The SHA-256 fingerprint of `NAME.crt`, as `openssl x509 -fingerprint -sha256` prints
/// it (`AB:CD:…`).
fn fingerprint(name: &str) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(pki().file(&format!("{name}.crt")))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (_, hex) = text
        .trim()
        .split_once('=')
        .unwrap_or_else(|| panic!("openssl x509 -fingerprint printed {text:?}"));
    hex.to_owned()
}

/// The recipe's hardened variants: our server admits only the proxy (`--allow
/// cn:edge-proxy`, a certificate required), so clients reach it only through the proxy,
/// and it pins the proxy by its fingerprint (`--trusted-proxy sha256:…`). `--allow`
/// applies to the connection (the proxy), not to the clients it forwards.
#[test]
fn nginx_in_front_of_a_server_that_admits_only_the_proxy() {
    if !(require("nginx") && require("curl") && require("openssl")) {
        return;
    }
    let pin = format!("sha256:{}", fingerprint("edge-proxy"));
    let mut args = Vec::new();
    let mut recipe = our_args("nginx").into_iter();
    while let Some(arg) = recipe.next() {
        match arg.as_str() {
            "--optional-client-auth" => {}
            "--allow-any" => args.extend(["--allow".to_owned(), "cn:edge-proxy".to_owned()]),
            "--trusted-proxy" => {
                recipe.next();
                args.extend([arg, pin.clone()]);
            }
            _ => args.push(arg),
        }
    }
    let ours = ours(&args);
    let proxy = nginx(ours.port);
    let server = "axum_server --allow cn:edge-proxy --trusted-proxy sha256:EDGE --forwarded nginx";
    let path = "curl -> nginx";
    let direct = "curl -> axum_server directly";

    let json = whoami(
        path,
        &get(proxy.daemon.port, "/whoami", Some("alice"), &[]),
        "alice",
    );
    by_edge_proxy(path, &json, HeaderFormat::Nginx);
    record(path, server, "alice", "200 alice");
    let reply = get(proxy.daemon.port, "/admin", Some("admin"), &[]);
    assert_eq!(reply.json(path)["common_name"], "admin");
    record(path, server, "admin GET /admin", &reply.describe());
    for (client, case) in [(Some("alice"), "alice"), (None, "no certificate")] {
        let reply = get(
            ours.port,
            "/whoami",
            client,
            &forged(HeaderFormat::Nginx, "admin"),
        );
        let seen = match &reply {
            Reply::Failed { .. } => reply.describe(),
            other => panic!("{direct}: {case} must be refused: {}", other.describe()),
        };
        record(direct, server, case, &seen);
    }
}

/// Our server with each `--forwarded` format, `--trusted-proxy cn:edge-proxy`: a forged
/// header of every format, sent directly, never makes a client admin. As a control, the
/// same header sent by the trusted proxy's certificate is believed, so the forged
/// values are what that format's proxy sends.
#[test]
fn direct_clients_cannot_forge_a_forwarded_certificate() {
    if !(require("curl") && require("openssl")) {
        return;
    }
    let path = "curl -> axum_server directly";
    for format in HeaderFormat::ALL {
        let ours = ours(&our_args(format.name()));
        let server = format!("axum_server --forwarded {format}");
        let real = forged(format, "admin");

        // The control: from the proxy's connection, the header is the client.
        let proxy = "curl as edge-proxy";
        let json = whoami(
            proxy,
            &get(ours.port, "/whoami", Some("edge-proxy"), &real),
            "admin",
        );
        by_edge_proxy(proxy, &json, format);
        let reply = get(ours.port, "/admin", Some("edge-proxy"), &real);
        assert_eq!(reply.json(proxy)["common_name"], "admin", "{format}");
        record(
            proxy,
            &server,
            &format!("{format} header (admin)"),
            "200 admin (control)",
        );
        // The proxy must replace the header, not add a copy: two are refused.
        if format != HeaderFormat::Xfcc {
            let mut twice = real.clone();
            twice.insert(1, real[0].clone());
            let seen = status(
                proxy,
                &get(ours.port, "/whoami", Some("edge-proxy"), &twice),
                400,
            );
            record(proxy, &server, &format!("{format} header twice"), &seen);
        }

        for forged_format in HeaderFormat::ALL {
            let headers = forged(forged_format, "admin");
            let case = format!("forged {forged_format} header (admin)");
            let who = format!("{path}, {server}, {case}");
            status(
                &format!("{who}, no certificate"),
                &get(ours.port, "/whoami", None, &headers),
                401,
            );
            let json = whoami(
                &who,
                &get(ours.port, "/whoami", Some("alice"), &headers),
                "alice",
            );
            assert_eq!(json["forwarded_by"], Value::Null, "{who}: {json}");
            if forged_format == format {
                status(&who, &get(ours.port, "/admin", None, &headers), 401);
                status(
                    &who,
                    &get(ours.port, "/admin", Some("alice"), &headers),
                    403,
                );
                record(
                    path,
                    &server,
                    &case,
                    "no certificate: 401 (/admin 401); alice: 200 alice, forwarded_by null \
                     (/admin 403)",
                );
            }
        }
        record(
            path,
            &server,
            "the other 6 forged formats",
            "no certificate: 401; alice: 200 alice",
        );
    }
}
