//! `loadbench`: the mTLS handshake load bench (issue 9).
//!
//! Compares, in one run and on the same certificates, a baseline of plain tokio-rustls +
//! hyper, the same with an axum Router, our `mtls-hyper` and `mtls-axum` servers, and
//! nginx (`ssl_verify_client on`) when installed (and, for gRPC, plain tonic with its own
//! TLS against mtls-tonic): full and resumed mTLS handshakes per
//! second (new connection + one small GET), keep-alive requests per second, p50/p99
//! latency, server CPU time per operation, peak RSS, failed handshakes while the server
//! reloads its certificate every 10 ms, and memory per idle mTLS connection.
//!
//! Each server runs as a child process (this binary's `serve` subcommand, or nginx)
//! pinned to core 1 with `taskset`; the load client runs in this process, pinned to core
//! 0. Servers are measured in alternation, round after round, and the table reports the
//! medians. See `benches/README.md` for the flags and the latest results.
//!
//! ```text
//! cargo run --release -p mtls-bench --bin loadbench -- --secs 5 --rounds 3 --out results.md
//! ```

mod bench;
mod load;
mod pki;
mod procfs;
mod report;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bench::{Case, RunOptions};
use pki::KeyType;
use serve::{ServeOptions, ServerKind};

/// The error type of the tool: every failure ends the run with its message.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

const USAGE: &str = "\
usage: loadbench [options]                 run the bench (client on core 0, servers on core 1)
       loadbench serve --kind KIND --certs DIR [--reload-every-ms N] [--spawn]
                                           run one server under test (used by the bench)
       loadbench certs --out ROOT [--certs LIST]
                                           write the bench's PKIs into ROOT/p256 and
                                           ROOT/rsa2048 (for `serve` and `--connect`)

options:
  --secs S              measured seconds per case and round (default 5)
  --warmup-secs S       warm-up before each measurement (default 1)
  --rounds N            alternating rounds; medians are reported (default 3)
  --conns N             concurrent client connections (default 16)
  --certs LIST          p256,rsa2048 (default both)
  --servers LIST        raw,raw-axum,mtls-hyper,mtls-axum,mtls-axum-hyper,nginx,
                        mtls-hyper-metrics,tonic,mtls-tonic,mtls-hyper-pkcs11
                        (default all but mtls-hyper-metrics and mtls-hyper-pkcs11,
                        which needs softhsm2; nginx is skipped with a note when not
                        installed); the HTTP cases drive the HTTP servers, the grpc-*
                        cases tonic and mtls-tonic
  --cases LIST          full,resumed,keepalive,reload,idle,grpc-full,grpc-keepalive
                        (default all)
  --idle-conns N        idle connections for the memory case (default 1000)
  --reload-every-ms N   reload period of the reload case (default 10)
  --client-verify       validate the server chain in the client too (default: check the
                        handshake signature only, to keep the client cheaper than the server)
  --server-main-thread  run each server's accept/serve loop on the main thread with
                        block_on, as #[tokio::main] runs main's body, so two threads take
                        turns on the server's core (default: spawn it onto the worker)
  --no-pin              do not pin the client and servers to cores 0 and 1
  --out FILE            also write the markdown report to FILE
  --connect ADDR DIR    only drive a server already listening on ADDR (e.g. one run under
                        perf or valgrind with `loadbench serve`), with the client
                        certificate in DIR; prints what the client saw
  -h, --help            this text
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let result = match args.first().map(String::as_str) {
        Some("serve") => parse_serve(&args[1..]).and_then(serve::run),
        Some("certs") => write_certs(&args[1..]),
        _ => parse_run(&args).and_then(bench::run),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadbench: {e}");
            ExitCode::from(2)
        }
    }
}

/// Walks `--flag value` pairs.
struct Flags<'a> {
    args: std::slice::Iter<'a, String>,
}

impl<'a> Flags<'a> {
    fn next(&mut self) -> Option<&'a str> {
        self.args.next().map(String::as_str)
    }

    fn value(&mut self, flag: &str) -> Result<&'a str, BoxError> {
        self.next()
            .ok_or_else(|| format!("{flag} needs a value (see --help)").into())
    }

    fn parsed<T: std::str::FromStr>(&mut self, flag: &str) -> Result<T, BoxError> {
        let v = self.value(flag)?;
        v.parse()
            .map_err(|_| format!("{flag}: cannot parse {v:?} (see --help)").into())
    }

    fn list<T>(
        &mut self,
        flag: &str,
        parse: impl Fn(&str) -> Result<T, BoxError>,
    ) -> Result<Vec<T>, BoxError> {
        let v = self.value(flag)?;
        let items = v
            .split(',')
            .filter(|s| !s.is_empty())
            .map(parse)
            .collect::<Result<Vec<_>, _>>()?;
        if items.is_empty() {
            return Err(format!("{flag}: empty list").into());
        }
        Ok(items)
    }
}

fn secs(flag: &str, s: f64) -> Result<Duration, BoxError> {
    Duration::try_from_secs_f64(s).map_err(|_| format!("{flag}: {s} is not a duration").into())
}

fn parse_run(args: &[String]) -> Result<RunOptions, BoxError> {
    let mut o = RunOptions::default();
    let mut flags = Flags { args: args.iter() };
    while let Some(flag) = flags.next() {
        match flag {
            "--secs" => o.secs = secs(flag, flags.parsed(flag)?)?,
            "--warmup-secs" => o.warmup = secs(flag, flags.parsed(flag)?)?,
            "--rounds" => o.rounds = flags.parsed(flag)?,
            "--conns" => o.conns = flags.parsed(flag)?,
            "--certs" => o.certs = flags.list(flag, KeyType::parse)?,
            "--servers" => o.servers = flags.list(flag, ServerKind::parse)?,
            "--cases" => o.cases = flags.list(flag, Case::parse)?,
            "--idle-conns" => o.idle_conns = flags.parsed(flag)?,
            "--reload-every-ms" => {
                o.reload_every = Duration::from_millis(flags.parsed(flag)?);
            }
            "--client-verify" => o.client_verify = true,
            "--server-main-thread" => o.server_spawn = false,
            "--no-pin" => o.pin = false,
            "--out" => o.out = Some(PathBuf::from(flags.value(flag)?)),
            "--connect" => {
                let addr = flags.parsed(flag)?;
                o.connect = Some((addr, PathBuf::from(flags.value(flag)?)));
            }
            _ => return Err(format!("unknown option {flag:?} (see --help)").into()),
        }
    }
    if o.rounds == 0 || o.conns == 0 || o.idle_conns == 0 || o.reload_every.is_zero() {
        return Err("--rounds, --conns, --idle-conns and --reload-every-ms must be > 0".into());
    }
    Ok(o)
}

fn parse_serve(args: &[String]) -> Result<ServeOptions, BoxError> {
    let (mut kind, mut certs, mut reload_every) = (None, None, None);
    let mut spawn = false;
    let mut flags = Flags { args: args.iter() };
    while let Some(flag) = flags.next() {
        match flag {
            "--kind" => kind = Some(ServerKind::parse(flags.value(flag)?)?),
            "--certs" => certs = Some(PathBuf::from(flags.value(flag)?)),
            "--reload-every-ms" => {
                reload_every = Some(Duration::from_millis(flags.parsed(flag)?));
            }
            "--spawn" => spawn = true,
            _ => return Err(format!("serve: unknown option {flag:?} (see --help)").into()),
        }
    }
    Ok(ServeOptions {
        kind: kind.ok_or("serve: --kind is required")?,
        certs: certs.ok_or("serve: --certs is required")?,
        reload_every: reload_every.filter(|d| !d.is_zero()),
        spawn,
    })
}

/// `loadbench certs --out ROOT [--certs LIST]`.
fn write_certs(args: &[String]) -> Result<(), BoxError> {
    let mut root = None;
    let mut key_types = vec![KeyType::P256, KeyType::Rsa2048];
    let mut flags = Flags { args: args.iter() };
    while let Some(flag) = flags.next() {
        match flag {
            "--out" => root = Some(PathBuf::from(flags.value(flag)?)),
            "--certs" => key_types = flags.list(flag, KeyType::parse)?,
            _ => return Err(format!("certs: unknown option {flag:?} (see --help)").into()),
        }
    }
    let root = root.ok_or("certs: --out is required")?;
    for key_type in key_types {
        let dir = pki::generate(&root, key_type)?;
        println!("{key_type}: {}", dir.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The servers and the load client in every mode, over real TLS on loopback. The
    //! servers run in this process (the test binary cannot re-execute itself as
    //! `loadbench serve`); the child-process path is exercised by running the bench.

    use std::net::SocketAddr;
    use std::path::Path;

    use super::*;
    use crate::load::Mode;

    /// Stops its server when dropped.
    struct Stop(#[allow(dead_code)] tokio::sync::oneshot::Sender<()>);

    fn start(kind: ServerKind, certs: &Path, reload_every: Option<Duration>) -> (SocketAddr, Stop) {
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let options = ServeOptions {
            kind,
            certs: certs.to_owned(),
            reload_every,
            spawn: false,
        };
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let listening = move |addr| tx.send(addr).map_err(|e| e.to_string().into());
            rt.block_on(async {
                tokio::select! {
                    served = serve::serve(options, listening) => served.unwrap(),
                    _ = stop_rx => {}
                }
            });
        });
        (
            rx.recv_timeout(Duration::from_secs(30)).unwrap(),
            Stop(stop_tx),
        )
    }

    fn load(addr: SocketAddr, certs: &Path, mode: Mode, ms: u64) -> load::LoadStats {
        let config = load::client_config(certs, true).unwrap();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(load::run(addr, &config, mode, 2, Duration::from_millis(ms)))
    }

    #[test]
    fn every_server_in_every_mode() {
        let work = tempfile::tempdir().unwrap();
        let certs = pki::generate(work.path(), KeyType::P256).unwrap();
        // Every kind this binary serves (nginx runs itself).
        // (mtls-hyper-pkcs11 needs SOFTHSM2_CONF in its own process: tested by running it.)
        for kind in ServerKind::ALL
            .into_iter()
            .filter(|&k| k != ServerKind::Nginx && k != ServerKind::MtlsHyperPkcs11)
        {
            let (addr, _stop) = start(kind, &certs, None);
            let modes: &[Mode] = if kind.is_grpc() {
                &[Mode::GrpcFull, Mode::GrpcKeepAlive]
            } else {
                &[Mode::Full, Mode::Resumed, Mode::KeepAlive]
            };
            for &mode in modes {
                let mut stats = load(addr, &certs, mode, 300);
                assert!(
                    stats.ok > 0 && stats.failed == 0,
                    "{kind:?} {mode:?}: {stats:?}"
                );
                assert_eq!(stats.latencies_us.len() as u64, stats.ok);
                assert!(stats.quantile_ms(0.99) >= stats.quantile_ms(0.5));
                if mode == Mode::Resumed {
                    // Only each loop's first connection is a full handshake.
                    assert!(stats.resumed + 2 >= stats.ok, "{kind:?}: {stats:?}");
                } else {
                    assert_eq!(stats.resumed, 0, "{kind:?} {mode:?}: {stats:?}");
                }
            }
            if kind == ServerKind::MtlsHyperMetrics {
                // The observer really reported to the installed recorder.
                let text = serve::recorded_metrics();
                assert!(
                    text.contains("mtls_handshakes_total{side=\"server\",result=\"accepted\""),
                    "{text}"
                );
            }
        }
    }

    #[test]
    fn no_failed_handshake_while_reloading_every_10_ms() {
        let work = tempfile::tempdir().unwrap();
        let certs = pki::generate(work.path(), KeyType::P256).unwrap();
        let (addr, _stop) = start(
            ServerKind::MtlsHyper,
            &certs,
            Some(Duration::from_millis(10)),
        );
        let stats = load(addr, &certs, Mode::Full, 800);
        assert!(stats.ok > 0 && stats.failed == 0, "{stats:?}");
    }

    #[test]
    fn rsa_chain_from_openssl_and_failures_are_counted() {
        let work = tempfile::tempdir().unwrap();
        let rsa = pki::generate(work.path(), KeyType::Rsa2048).unwrap();
        let p256 = pki::generate(work.path(), KeyType::P256).unwrap();
        for kind in [ServerKind::Raw, ServerKind::MtlsAxum] {
            let (addr, _stop) = start(kind, &rsa, None);
            let stats = load(addr, &rsa, Mode::Full, 300);
            assert!(stats.ok > 0 && stats.failed == 0, "{kind:?}: {stats:?}");
            // A client certificate from another CA is refused: every attempt fails.
            let stats = load(addr, &p256, Mode::Full, 200);
            assert!(stats.ok == 0 && stats.failed > 0, "{kind:?}: {stats:?}");
            assert!(!stats.errors.is_empty());
        }
    }

    #[test]
    fn flags() {
        let args = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        let o = parse_run(&args(
            "--secs 2 --rounds 1 --certs rsa2048 --servers raw,mtls-axum --cases idle --no-pin",
        ))
        .unwrap();
        assert_eq!(o.secs, Duration::from_secs(2));
        assert_eq!(o.certs, [KeyType::Rsa2048]);
        assert_eq!(o.servers, [ServerKind::Raw, ServerKind::MtlsAxum]);
        assert!(!o.pin);
        for bad in [
            "--secs",
            "--rounds 0",
            "--certs dsa",
            "--servers iis",
            "--what 1",
        ] {
            assert!(parse_run(&args(bad)).is_err(), "{bad}");
        }
        let s = parse_serve(&args("--kind mtls-hyper --certs /x --reload-every-ms 10")).unwrap();
        assert_eq!(s.kind, ServerKind::MtlsHyper);
        assert_eq!(s.reload_every, Some(Duration::from_millis(10)));
        assert!(parse_serve(&args("--certs /x")).is_err());
    }
}
