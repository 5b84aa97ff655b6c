//! The bench run: certificates, server processes, alternating rounds, measurements.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use crate::BoxError;
use crate::load::{self, Mode};
use crate::pki::{self, KeyType};
use crate::procfs;
use crate::report::{self, IdleSample, Sample};
use crate::serve::ServerKind;

/// A measured case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Case {
    /// New connection, full handshake, one GET.
    Full,
    /// New connection, resumed handshake, one GET.
    Resumed,
    /// GETs on open connections.
    KeepAlive,
    /// Full handshakes while the server reloads its certificate.
    Reload,
    /// Memory per idle connection.
    Idle,
    /// gRPC: new connection, full handshake, one unary call.
    GrpcFull,
    /// gRPC: unary calls on open HTTP/2 connections.
    GrpcKeepAlive,
}

impl Case {
    const ALL: [Self; 7] = [
        Self::Full,
        Self::Resumed,
        Self::KeepAlive,
        Self::Reload,
        Self::Idle,
        Self::GrpcFull,
        Self::GrpcKeepAlive,
    ];

    pub(crate) fn parse(s: &str) -> Result<Self, BoxError> {
        Self::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown case {s:?}: expected full, resumed, keepalive, reload, idle, \
                     grpc-full or grpc-keepalive"
                )
                .into()
            })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Resumed => "resumed",
            Self::KeepAlive => "keepalive",
            Self::Reload => "reload",
            Self::Idle => "idle",
            Self::GrpcFull => "grpc-full",
            Self::GrpcKeepAlive => "grpc-keepalive",
        }
    }

    /// Whether the case drives the gRPC servers.
    pub(crate) fn is_grpc(self) -> bool {
        matches!(self, Self::GrpcFull | Self::GrpcKeepAlive)
    }

    /// The load mode, for the cases that have one.
    fn mode(self) -> Option<Mode> {
        match self {
            Self::Full | Self::Reload => Some(Mode::Full),
            Self::Resumed => Some(Mode::Resumed),
            Self::KeepAlive => Some(Mode::KeepAlive),
            Self::GrpcFull => Some(Mode::GrpcFull),
            Self::GrpcKeepAlive => Some(Mode::GrpcKeepAlive),
            Self::Idle => None,
        }
    }
}

/// Options of a bench run.
#[derive(Debug)]
pub(crate) struct RunOptions {
    pub(crate) secs: Duration,
    pub(crate) warmup: Duration,
    pub(crate) rounds: usize,
    pub(crate) conns: usize,
    pub(crate) certs: Vec<KeyType>,
    pub(crate) servers: Vec<ServerKind>,
    pub(crate) cases: Vec<Case>,
    pub(crate) idle_conns: usize,
    pub(crate) reload_every: Duration,
    pub(crate) client_verify: bool,
    pub(crate) server_spawn: bool,
    pub(crate) pin: bool,
    pub(crate) out: Option<PathBuf>,
    /// Drive a server that is already running (e.g. under a profiler) instead of
    /// starting the servers: `(address, directory with client.crt/client.key/ca.crt)`.
    pub(crate) connect: Option<(SocketAddr, PathBuf)>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            secs: Duration::from_secs(5),
            warmup: Duration::from_secs(1),
            rounds: 3,
            conns: 16,
            certs: vec![KeyType::P256, KeyType::Rsa2048],
            servers: ServerKind::DEFAULT.to_vec(),
            cases: Case::ALL.to_vec(),
            idle_conns: 1000,
            reload_every: Duration::from_millis(10),
            client_verify: false,
            server_spawn: true,
            pin: true,
            out: None,
            connect: None,
        }
    }
}

/// One server variant of a case: the kind and, for the reload case, whether it reloads.
pub(crate) type Variant = (ServerKind, bool);

/// Runs the whole bench and prints (and writes) the report.
pub(crate) fn run(mut options: RunOptions) -> Result<(), BoxError> {
    let mut notes = Vec::new();
    if options.pin {
        pin_self(&mut notes);
    }
    if let Some((addr, certs)) = options.connect.clone() {
        return drive(addr, &certs, &options);
    }
    if options.servers.contains(&ServerKind::Nginx) && !nginx_installed() {
        options.servers.retain(|k| *k != ServerKind::Nginx);
        notes.push("nginx is not installed: its rows are missing.".to_owned());
    }
    let machine_before = report::machine_state();
    eprintln!("machine: {machine_before}");
    let work = tempfile::Builder::new()
        .prefix("mtls-loadbench-")
        .tempdir()?;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let ticks = procfs::clock_ticks();
    let mut samples: Vec<(KeyType, Case, Variant, Sample)> = Vec::new();
    let mut idle: Vec<(KeyType, ServerKind, IdleSample)> = Vec::new();
    for &key_type in &options.certs {
        let certs = pki::generate(work.path(), key_type)?;
        for &case in &options.cases {
            let variants = variants(case, &options.servers);
            if variants.is_empty() {
                continue;
            }
            for round in 1..=options.rounds {
                for &variant in &variants {
                    let label = format!(
                        "{key_type} {} {}{} round {round}/{}",
                        case.name(),
                        variant.0.name(),
                        if variant.1 { " +reload" } else { "" },
                        options.rounds
                    );
                    if case == Case::Idle {
                        let s =
                            rt.block_on(measure_idle(variant.0, &certs, work.path(), &options))?;
                        eprintln!("{label}: {:.2} KiB/conn", s.kib_per_conn);
                        idle.push((key_type, variant.0, s));
                    } else {
                        let s = rt.block_on(measure(
                            variant,
                            case,
                            &certs,
                            work.path(),
                            &options,
                            ticks,
                        ))?;
                        eprintln!(
                            "{label}: {:.0}/s p50 {:.2} ms p99 {:.2} ms cpu {:.0} µs/op, {} failed",
                            s.rate, s.p50_ms, s.p99_ms, s.cpu_us, s.failed
                        );
                        samples.push((key_type, case, variant, s));
                    }
                }
            }
        }
    }
    let machine_after = report::machine_state();
    let text = report::render(
        &options,
        &samples,
        &idle,
        &notes,
        &machine_before,
        &machine_after,
    );
    print!("{text}");
    if let Some(out) = &options.out {
        std::fs::write(out, &text).map_err(|e| format!("writing {}: {e}", out.display()))?;
    }
    Ok(())
}

/// Drives an external server with each load case once and prints what the client saw.
fn drive(addr: SocketAddr, certs: &Path, options: &RunOptions) -> Result<(), BoxError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let config = load::client_config(certs, options.client_verify)?;
    for &case in &options.cases {
        let Some(mode) = case.mode().filter(|_| case != Case::Reload) else {
            eprintln!("--connect: skipping the {} case", case.name());
            continue;
        };
        let mut stats = rt.block_on(load::run(addr, &config, mode, options.conns, options.secs));
        let (p50, p99) = (stats.quantile_ms(0.5), stats.quantile_ms(0.99));
        println!(
            "{}: {} ok ({:.0}/s), {} failed, {} resumed, p50 {p50:.2} ms, p99 {p99:.2} ms",
            case.name(),
            stats.ok,
            stats.rate(),
            stats.failed,
            stats.resumed,
        );
    }
    Ok(())
}

/// The server variants measured in `case`, in the order they alternate.
fn variants(case: Case, servers: &[ServerKind]) -> Vec<Variant> {
    match case {
        // The reload case compares each of our servers with itself without reloads.
        Case::Reload => servers
            .iter()
            .filter(|k| k.is_mtls() && !k.is_grpc() && **k != ServerKind::MtlsHyperPkcs11)
            .flat_map(|&k| [(k, false), (k, true)])
            .collect(),
        // Each case drives the servers that speak its protocol.
        _ => servers
            .iter()
            .filter(|k| k.is_grpc() == case.is_grpc())
            .map(|&k| (k, false))
            .collect(),
    }
}

/// Pins this process (all its threads) to core 0; the servers go to core 1.
fn pin_self(notes: &mut Vec<String>) {
    let pid = std::process::id().to_string();
    let ok = Command::new("taskset")
        .args(["-a", "-p", "-c", "0", &pid])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        notes.push("could not pin the load client to core 0 (taskset failed).".to_owned());
    }
}

fn nginx_installed() -> bool {
    Command::new("nginx")
        .arg("-v")
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

// === measurements ===

async fn measure(
    (kind, reload): Variant,
    case: Case,
    certs: &Path,
    work: &Path,
    options: &RunOptions,
    ticks: u64,
) -> Result<Sample, BoxError> {
    let mut server = ServerProc::start(
        kind,
        certs,
        work,
        reload.then_some(options.reload_every),
        options,
    )?;
    let mode = case.mode().unwrap_or(Mode::Full);
    let config = load::client_config(certs, options.client_verify)?;
    let warm = load::run(server.addr, &config, mode, options.conns, options.warmup).await;
    let me = std::process::id();
    let (cpu0, client0) = (procfs::cpu_ticks(server.pid)?, procfs::cpu_ticks(me)?);
    let mut stats = load::run(server.addr, &config, mode, options.conns, options.secs).await;
    let (cpu1, client1) = (procfs::cpu_ticks(server.pid)?, procfs::cpu_ticks(me)?);
    let hwm = procfs::status_kib(server.pid, "VmHWM")?;
    let reloads = server.last_line();
    server.check_alive()?;
    drop(server);

    let cpu_s = cpu1.saturating_sub(cpu0) as f64 / ticks as f64;
    let client_s = client1.saturating_sub(client0) as f64 / ticks as f64;
    let wall = stats.elapsed.as_secs_f64().max(1e-9);
    Ok(Sample {
        rate: stats.rate(),
        p50_ms: stats.quantile_ms(0.50),
        p99_ms: stats.quantile_ms(0.99),
        cpu_us: cpu_s * 1e6 / stats.ok.max(1) as f64,
        cpu_pct: cpu_s * 100.0 / wall,
        client_cpu_pct: client_s * 100.0 / wall,
        peak_rss_mib: hwm as f64 / 1024.0,
        failed: stats.failed,
        warmup_failed: warm.failed,
        resumed_pct: stats.resumed as f64 * 100.0 / stats.ok.max(1) as f64,
        reloads,
        errors: std::mem::take(&mut stats.errors),
    })
}

async fn measure_idle(
    kind: ServerKind,
    certs: &Path,
    work: &Path,
    options: &RunOptions,
) -> Result<IdleSample, BoxError> {
    let mut server = ServerProc::start(kind, certs, work, None, options)?;
    let config = load::client_config(certs, options.client_verify)?;
    // Warm the server's allocator and lazy state with some short connections first.
    let warm = load::run(
        server.addr,
        &config,
        Mode::Full,
        options.conns,
        Duration::from_millis(500),
    )
    .await;
    if warm.ok == 0 {
        return Err(format!("{}: no connection succeeded during warm-up", kind.name()).into());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = procfs::status_kib(server.pid, "VmRSS")?;

    let connector = load::connector(&config, false);
    let workers = options.conns.min(options.idle_conns).max(1);
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..workers {
        let n = options.idle_conns / workers + usize::from(w < options.idle_conns % workers);
        let (connector, addr) = (connector.clone(), server.addr);
        tasks.spawn(async move {
            let mut open = Vec::with_capacity(n);
            let mut failed = 0u64;
            for _ in 0..n {
                match tokio::time::timeout(Duration::from_secs(10), load::connect(addr, &connector))
                    .await
                {
                    Ok(Ok(c)) => open.push(c),
                    _ => failed += 1,
                }
            }
            (open, failed)
        });
    }
    let mut open = Vec::with_capacity(options.idle_conns);
    let mut failed = 0;
    while let Some(done) = tasks.join_next().await {
        let (mut o, f) = done?;
        open.append(&mut o);
        failed += f;
    }
    // Let the server finish its side of the last handshakes (TLS 1.3: the client is done
    // before the server has checked the client's certificate).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = procfs::status_kib(server.pid, "VmRSS")?;
    server.check_alive()?;
    let opened = open.len();
    drop(open);
    drop(server);
    Ok(IdleSample {
        kib_per_conn: (after as f64 - before as f64) / opened.max(1) as f64,
        rss_before_mib: before as f64 / 1024.0,
        rss_after_mib: after as f64 / 1024.0,
        opened,
        failed,
    })
}

// === server processes ===

/// A server under test, killed on drop.
struct ServerProc {
    child: Child,
    pid: u32,
    addr: SocketAddr,
    last_line: Arc<Mutex<Option<String>>>,
    what: &'static str,
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProc {
    fn start(
        kind: ServerKind,
        certs: &Path,
        work: &Path,
        reload: Option<Duration>,
        options: &RunOptions,
    ) -> Result<Self, BoxError> {
        match kind {
            ServerKind::Nginx => Self::start_nginx(certs, work, options.pin),
            _ => Self::start_ours(kind, certs, reload, options),
        }
    }

    fn command(pin: bool, program: impl AsRef<std::ffi::OsStr>) -> Command {
        if pin {
            let mut c = Command::new("taskset");
            c.args(["-c", "1"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    fn start_ours(
        kind: ServerKind,
        certs: &Path,
        reload: Option<Duration>,
        options: &RunOptions,
    ) -> Result<Self, BoxError> {
        let exe = std::env::current_exe()?;
        let mut cmd = Self::command(options.pin, exe);
        cmd.args(["serve", "--kind", kind.name(), "--certs"])
            .arg(certs)
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        if let Some(every) = reload {
            cmd.args(["--reload-every-ms", &every.as_millis().to_string()]);
        }
        if options.server_spawn {
            cmd.arg("--spawn");
        }
        if kind == ServerKind::MtlsHyperPkcs11 {
            cmd.env("SOFTHSM2_CONF", crate::serve::pkcs11_token(certs)?);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("starting the {} server: {e}", kind.name()))?;
        let pid = child.id();
        let stdout = child
            .stdout
            .take()
            .ok_or("the server's stdout is not piped")?;
        let last_line = Arc::new(Mutex::new(None));
        let (tx, rx) = mpsc::channel();
        let last = last_line.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                match (line.strip_prefix("LISTENING "), tx.take()) {
                    (Some(addr), Some(tx)) => {
                        let _ = tx.send(addr.to_owned());
                    }
                    (_, t) => {
                        tx = t;
                        *last.lock().unwrap_or_else(|p| p.into_inner()) = Some(line);
                    }
                }
            }
        });
        let mut proc = Self {
            child,
            pid,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            last_line,
            what: kind.name(),
        };
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| format!("the {} server did not start (see its stderr)", kind.name()))?;
        proc.addr = addr.parse().map_err(|_| {
            format!(
                "the {} server announced a bad address {addr:?}",
                kind.name()
            )
        })?;
        Ok(proc)
    }

    fn start_nginx(certs: &Path, work: &Path, pin: bool) -> Result<Self, BoxError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let dir = work.join(format!("nginx-{port}"));
        std::fs::create_dir_all(dir.join("tmp"))?;
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, nginx_conf(&dir, certs, port))?;
        let mut cmd = Self::command(pin, "nginx");
        cmd.arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().map_err(|e| format!("starting nginx: {e}"))?;
        let mut proc = Self {
            pid: child.id(),
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            last_line: Arc::default(),
            what: "nginx",
        };
        for _ in 0..250 {
            if std::net::TcpStream::connect(proc.addr).is_ok() {
                return Ok(proc);
            }
            if let Ok(Some(status)) = proc.child.try_wait() {
                let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
                return Err(format!("nginx exited ({status}): {}", log.trim()).into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err("nginx did not start listening within 5 s".into())
    }

    fn last_line(&self) -> Option<String> {
        self.last_line
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Fails when the server exited during the measurement.
    fn check_alive(&mut self) -> Result<(), BoxError> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => Err(format!("the {} server exited: {status}", self.what).into()),
        }
    }
}

/// nginx as close to ours as it goes: one process (`master_process off`, so its CPU time
/// and memory are those of one pid), TLS 1.2/1.3, the same key-exchange groups, client
/// certificates required, a stateful session cache (tickets off, as our servers keep
/// sessions server-side), `return 200 "ok\n"`.
fn nginx_conf(dir: &Path, certs: &Path, port: u16) -> String {
    let d = dir.display();
    let c = certs.display();
    format!(
        "master_process off;
worker_processes 1;
worker_rlimit_nofile 8192;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_header_timeout 300s;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {c}/server.crt;
        ssl_certificate_key {c}/server.key;
        ssl_client_certificate {c}/ca.crt;
        ssl_verify_client on;
        ssl_verify_depth 3;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ecdh_curve X25519:prime256v1:secp384r1;
        ssl_session_cache shared:bench:4m;
        ssl_session_tickets off;
        location / {{
            default_type text/plain;
            return 200 \"ok\\n\";
        }}
    }}
}}
"
    )
}
