//! x509-limbo conformance: every case of the suite through the mtls verifiers, compared
//! with bare rustls-webpki and with the suite's expected result.
//!
//! # What runs
//!
//! The suite (`limbo.json.xz`, ~9,800 cases) is found at `$MTLS_LIMBO` (`.json.xz` or
//! plain `.json`) or else at `<workspace root>/../shared/conformance/limbo.json.xz`, and is
//! decompressed in memory by the `xz` command. The list of known rustls-webpki deviations,
//! `rustls-webpki-exceptions.json`, is read from the same directory. When the suite (or
//! `xz`) is missing the test prints `skipped: limbo suite not found` and passes, unless
//! `MTLS_REQUIRE_PEERS=1`, where it fails.
//!
//! For each case the trusted certificates are written to one CA file (and the CRLs, if
//! any, to one CRL file), reused across cases by each worker thread, and these passes run
//! at the case's `validation_time` (the current time when the case has none):
//!
//! | pass | what | compared with |
//! |---|---|---|
//! | `client/no-policy` | `Client::builder().ca(..).build()`, `server_verifier()` | bare webpki, `KeyUsage::server_auth()` + name |
//! | `client/any` | the same with `server_policy(Policy::any_verified())` | the same |
//! | `client/restrictive` | the same with `server_policy(Policy::common_name(["nobody"]))` | must never admit what webpki rejects |
//! | `server/any` | `Server::builder()..policy(Policy::any_verified())`, `client_verifier()` | bare webpki, `KeyUsage::client_auth()`, no name |
//! | `server/restrictive` | the same with `Policy::dns(["never.invalid"])` | must never admit what webpki rejects |
//!
//! The client passes run for SERVER cases (all of which but one name a peer). The server
//! passes run for every case: for CLIENT cases and for the one SERVER case without an
//! expected name they are the case's primary verdict; for the other SERVER cases they are
//! an extra check of the server-side wrapping (the leaf is judged for clientAuth, so
//! webpki mostly rejects there, and our verdict must match it all the same). The server
//! needs an identity of its own: an `mtls-testing` leaf, with
//! `check_identity_chain(false)` since it is not issued by the case's CAs.
//!
//! "Our" verdict for a case is its primary allow-all pass (`client/any`, or `server/any`).
//!
//! # Details that matter for a fair comparison
//!
//! 1. **Refused at build.** Our builders run preflight checks on the CA and CRL files
//!    before any verification: an entry with `basicConstraints CA:FALSE` is
//!    `Error::NotACa`, a file whose CAs have *all* expired by the wall clock (not by the
//!    case's `validation_time`) is `Error::CaExpired`, and unparsable material is refused.
//!    Such a case is counted as "refused at build" with the error text and treated as a
//!    rejection. A refusal is acceptable where bare webpki also rejects. Where webpki
//!    accepts, the only refusal this test tolerates is `Error::CaExpired`: the suite's
//!    validation times lie in the past, and refusing a CA that has expired *today* is the
//!    builder's documented job. Every such case is printed; any other refusal of material
//!    webpki accepts fails the test.
//! 2. **CRLs.** Our builders default to checking only the end entity's revocation status
//!    and, once any CRL is configured, to denying an unknown status (no CRL from the
//!    leaf's issuer); a CRL past its `nextUpdate` is still used. The bare run is
//!    configured the same way: `RevocationCheckDepth::EndEntity`,
//!    `UnknownStatusPolicy::Deny`, `ExpirationPolicy::Ignore` (webpki's own builder
//!    default depth is the whole chain). The suite's CRL cases are all about a leaf issued
//!    by the root, so the depth makes no difference there; where the suite expects more
//!    than webpki checks (a CRL without a CRL number, a critical CRL number, an issuer
//!    without cRLSign) the difference shows as a deviation from the expected result shared
//!    with bare webpki, not as an mtls/webpki mismatch. (The suite does not tell these
//!    options apart: switching the bare run to whole-chain depth, allowing unknown status
//!    or enforcing CRL expiry changes no verdict.)
//!    Bare webpki also uses exactly the signature algorithms of our default provider
//!    (`mtls::provider::feature_default()`), as the rustls verifiers do.
//! 3. **Policy step.** With the allow-all policy (and with no server policy) every verdict
//!    must equal bare webpki's on every case: the test fails otherwise and prints the
//!    first mismatches with both errors. A restrictive policy must never admit a case
//!    webpki rejects (and, as no certificate in the suite matches it, admits none).
//! 4. **Expected results.** Our verdict is compared with `expected_result`; deviations are
//!    counted and split into those listed in `rustls-webpki-exceptions.json` and the rest.
//!    Deviations that bare webpki shares do not fail the test (they are webpki's, or the
//!    harness limits below); one that only mtls has must be a refusal at build (see 1).
//!    Not modelled, because neither webpki nor our builders have the knob:
//!    `max_chain_depth`, `signature_algorithms`, `key_usage`, and the RFC 822
//!    `expected_peer_names` of CLIENT cases (webpki has no e-mail name check, and treats
//!    rfc822Name constraints as unsupported). A DNS or IP name that is not a valid rustls
//!    `ServerName` cannot even be asked for: such cases count as rejected by both and are
//!    reported as "not comparable". As a guard against a misconfigured bare run (wrong
//!    time, algorithms or CRL options) making every comparison vacuous, bare webpki must
//!    accept at least 95 % of the expected-SUCCESS cases that are not listed exceptions.
//! 5. **Speed.** Everything stays in memory except two small files per case per worker;
//!    cases are split over the available cores (CI: 2). The run time is printed: in a debug
//!    build it takes about 34 s of CPU, i.e. 40-50 s of wall time on 2 cores busy with
//!    other builds (load ~4.5) and roughly half that on idle ones.
//!
//! Run with `cargo test -p mtls-interop --test limbo -- --nocapture` to see the report.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mtls::rustls::pki_types::pem::PemObject;
use mtls::rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, ServerName, SignatureVerificationAlgorithm,
    UnixTime,
};
use mtls::{Client, Policy, Server};
use serde::Deserialize;

// === the suite ===

#[derive(Debug, Deserialize)]
struct Suite {
    testcases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
struct Case {
    id: String,
    validation_kind: String,
    trusted_certs: Vec<String>,
    #[serde(default)]
    untrusted_intermediates: Vec<String>,
    peer_certificate: String,
    #[serde(default)]
    crls: Option<Vec<String>>,
    expected_peer_name: Option<PeerName>,
    expected_result: String,
    validation_time: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PeerName {
    kind: String,
    value: String,
}

#[derive(Debug, Deserialize)]
struct Exception {
    expected: String,
    actual: String,
    reason: String,
}

/// Where the suite should be.
fn suite_path() -> PathBuf {
    match std::env::var_os("MTLS_LIMBO") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..") // the workspace root
            .join("../shared/conformance/limbo.json.xz"),
    }
}

/// Reads and parses the suite; `Err` says why it is not available.
fn load_suite(path: &Path) -> Result<Suite, String> {
    if !path.is_file() {
        return Err(format!("{} does not exist", path.display()));
    }
    let json = if path.extension().is_some_and(|e| e == "xz") {
        let out = Command::new("xz")
            .arg("-dc")
            .arg(path)
            .output()
            .map_err(|e| format!("cannot run `xz -dc {}`: {e}", path.display()))?;
        if !out.status.success() {
            return Err(format!(
                "`xz -dc {}` failed: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        out.stdout
    } else {
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?
    };
    serde_json::from_slice(&json)
        .map_err(|e| format!("{} is not a limbo suite: {e}", path.display()))
}

fn load_exceptions(suite: &Path) -> Result<HashMap<String, Exception>, String> {
    let path = suite.with_file_name("rustls-webpki-exceptions.json");
    let text = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn peers_required() -> bool {
    std::env::var("MTLS_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

// === one case ===

/// A case's material, decoded.
struct Material {
    trusted: Vec<CertificateDer<'static>>,
    intermediates: Vec<CertificateDer<'static>>,
    peer: CertificateDer<'static>,
    crls: Vec<CertificateRevocationListDer<'static>>,
    time: UnixTime,
}

fn decode(case: &Case) -> Result<Material, String> {
    let cert = |pem: &String, what: &str| {
        CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| format!("{what}: {e}"))
    };
    let crls = case.crls.as_deref().unwrap_or_default();
    Ok(Material {
        trusted: case
            .trusted_certs
            .iter()
            .map(|p| cert(p, "trusted cert"))
            .collect::<Result<_, _>>()?,
        intermediates: case
            .untrusted_intermediates
            .iter()
            .map(|p| cert(p, "intermediate"))
            .collect::<Result<_, _>>()?,
        peer: cert(&case.peer_certificate, "peer certificate")?,
        crls: crls
            .iter()
            .map(|p| {
                CertificateRevocationListDer::from_pem_slice(p.as_bytes())
                    .map_err(|e| format!("crl: {e}"))
            })
            .collect::<Result<_, _>>()?,
        time: match &case.validation_time {
            None => UnixTime::now(),
            Some(t) => {
                let t =
                    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                        .map_err(|e| format!("validation_time {t}: {e}"))?;
                UnixTime::since_unix_epoch(Duration::from_secs(
                    u64::try_from(t.unix_timestamp()).unwrap_or(0),
                ))
            }
        },
    })
}

fn server_name(name: &PeerName) -> Result<ServerName<'static>, String> {
    match name.kind.as_str() {
        "DNS" => ServerName::try_from(name.value.clone())
            .map_err(|e| format!("DNS name {:?}: {e}", name.value)),
        "IP" => name
            .value
            .parse::<IpAddr>()
            .map(|ip| ServerName::IpAddress(ip.into()))
            .map_err(|e| format!("IP {:?}: {e}", name.value)),
        other => Err(format!("{other} name {:?}", name.value)),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Usage {
    Server,
    Client,
}

/// Bare rustls-webpki, configured like our builders' defaults.
fn bare(
    m: &Material,
    usage: Usage,
    name: Option<&ServerName<'_>>,
    algs: &[&dyn SignatureVerificationAlgorithm],
) -> Result<(), String> {
    use webpki::{
        CertRevocationList, ExpirationPolicy, KeyUsage, OwnedCertRevocationList,
        RevocationCheckDepth, RevocationOptionsBuilder, UnknownStatusPolicy,
    };
    let anchors = m
        .trusted
        .iter()
        .map(|c| webpki::anchor_from_trusted_cert(c).map_err(|e| format!("trust anchor: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let ee = webpki::EndEntityCert::try_from(&m.peer).map_err(|e| format!("end entity: {e}"))?;
    let crls = m
        .crls
        .iter()
        .map(|c| OwnedCertRevocationList::from_der(c.as_ref()).map(CertRevocationList::from))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("crl: {e}"))?;
    let crl_refs = crls.iter().collect::<Vec<_>>();
    let revocation = match RevocationOptionsBuilder::new(&crl_refs) {
        Ok(b) => Some(
            b.with_depth(RevocationCheckDepth::EndEntity)
                .with_status_policy(UnknownStatusPolicy::Deny)
                .with_expiration_policy(ExpirationPolicy::Ignore)
                .build(),
        ),
        Err(_) => None, // no CRLs
    };
    let key_usage = match usage {
        Usage::Server => KeyUsage::server_auth(),
        Usage::Client => KeyUsage::client_auth(),
    };
    ee.verify_for_usage(
        algs,
        &anchors,
        &m.intermediates,
        m.time,
        key_usage,
        revocation,
        None,
    )
    .map_err(|e| format!("{e}"))?;
    if let Some(name) = name {
        ee.verify_is_valid_for_subject_name(name)
            .map_err(|e| format!("name: {e}"))?;
    }
    Ok(())
}

/// What an mtls pass did.
#[derive(Debug, Clone)]
enum Ours {
    /// The builder refused the case's material.
    Refused {
        error: String,
        /// `Error::CaExpired`: every CA expired by the wall clock.
        ca_expired: bool,
    },
    /// The verifier ran.
    Ran(Result<(), String>),
}

impl Ours {
    fn refused(e: &mtls::Error) -> Self {
        Self::Refused {
            error: e.to_string(),
            ca_expired: matches!(e, mtls::Error::CaExpired { .. }),
        }
    }

    fn accepted(&self) -> bool {
        matches!(self, Self::Ran(Ok(())))
    }

    fn describe(&self) -> String {
        match self {
            Self::Refused { error, .. } => format!("refused at build: {error}"),
            Self::Ran(Ok(())) => "accepted".to_owned(),
            Self::Ran(Err(e)) => format!("rejected: {e}"),
        }
    }
}

/// One mtls pass next to the bare webpki verdict it is judged against.
#[derive(Debug)]
struct Pass {
    name: &'static str,
    restrictive: bool,
    bare: Result<(), String>,
    ours: Ours,
}

#[derive(Debug)]
struct Report {
    id: String,
    expected_success: bool,
    /// Why the case could not be put to the verifiers (both count it as a rejection).
    not_comparable: Option<String>,
    /// Bare webpki's verdict for the case as the suite means it.
    bare: Result<(), String>,
    /// Index in `passes` of our verdict for the case.
    primary: Option<usize>,
    passes: Vec<Pass>,
}

impl Report {
    fn ours_accepted(&self) -> bool {
        self.primary.is_some_and(|i| self.passes[i].ours.accepted())
    }
}

/// Per-worker files and shared inputs.
struct Worker<'a> {
    ca_file: PathBuf,
    crl_file: PathBuf,
    identity: &'a mtls_testing::LeafFiles,
    algs: &'static [&'static dyn SignatureVerificationAlgorithm],
}

impl Worker<'_> {
    fn evaluate(&self, case: &Case) -> Report {
        let mut report = Report {
            id: case.id.clone(),
            expected_success: case.expected_result == "SUCCESS",
            not_comparable: None,
            bare: Err(String::new()),
            primary: None,
            passes: Vec::new(),
        };
        let m = match decode(case) {
            Ok(m) => m,
            Err(e) => {
                report.not_comparable = Some(format!("undecodable: {e}"));
                report.bare = Err(e);
                return report;
            }
        };
        let name = match (&case.expected_peer_name, case.validation_kind.as_str()) {
            (Some(n), "SERVER") => match server_name(n) {
                Ok(n) => Some(n),
                Err(e) => {
                    let e = format!("not a rustls ServerName: {e}");
                    report.not_comparable = Some(e.clone());
                    report.bare = Err(e);
                    return report;
                }
            },
            _ => None,
        };
        if let Err(e) = self.write_files(case) {
            panic!("{}: cannot write the case's files: {e}", case.id);
        }
        let crl = (!m.crls.is_empty()).then_some(self.crl_file.as_path());

        if let Some(name) = &name {
            let b = bare(&m, Usage::Server, Some(name), self.algs);
            let policies: [(&'static str, Option<Policy>); 3] = [
                ("client/no-policy", None),
                ("client/any", Some(Policy::any_verified())),
                ("client/restrictive", Some(Policy::common_name(["nobody"]))),
            ];
            for (pass, policy) in policies {
                let restrictive = policy.as_ref().is_some_and(|p| !p.is_any_verified());
                let ours = self.client_pass(crl, policy, &m, name);
                report.passes.push(Pass {
                    name: pass,
                    restrictive,
                    bare: b.clone(),
                    ours,
                });
            }
            report.bare = b;
            report.primary = Some(1);
        }

        let b = bare(&m, Usage::Client, None, self.algs);
        for (pass, policy, restrictive) in [
            ("server/any", Policy::any_verified(), false),
            ("server/restrictive", Policy::dns(["never.invalid"]), true),
        ] {
            let ours = self.server_pass(crl, policy, &m);
            report.passes.push(Pass {
                name: pass,
                restrictive,
                bare: b.clone(),
                ours,
            });
        }
        if name.is_none() {
            report.bare = b;
            report.primary = Some(report.passes.len() - 2);
        }
        report
    }

    fn write_files(&self, case: &Case) -> std::io::Result<()> {
        std::fs::write(&self.ca_file, case.trusted_certs.concat())?;
        if let Some(crls) = case.crls.as_deref().filter(|c| !c.is_empty()) {
            std::fs::write(&self.crl_file, crls.concat())?;
        }
        Ok(())
    }

    fn client_pass(
        &self,
        crl: Option<&Path>,
        policy: Option<Policy>,
        m: &Material,
        name: &ServerName<'static>,
    ) -> Ours {
        let mut b = Client::builder().ca(&self.ca_file);
        if let Some(crl) = crl {
            b = b.crl(crl);
        }
        if let Some(p) = policy {
            b = b.server_policy(p);
        }
        match b.build() {
            Err(e) => Ours::refused(&e),
            Ok(client) => Ours::Ran(
                client
                    .server_verifier()
                    .verify_server_cert(&m.peer, &m.intermediates, name, &[], m.time)
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
            ),
        }
    }

    fn server_pass(&self, crl: Option<&Path>, policy: Policy, m: &Material) -> Ours {
        let mut b = Server::builder()
            .identity(&self.identity.cert, &self.identity.key)
            .check_identity_chain(false)
            .client_ca(&self.ca_file)
            .policy(policy);
        if let Some(crl) = crl {
            b = b.crl(crl);
        }
        match b.build() {
            Err(e) => Ours::refused(&e),
            Ok(server) => Ours::Ran(
                server
                    .client_verifier()
                    .verify_client_cert(&m.peer, &m.intermediates, m.time)
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
            ),
        }
    }
}

/// Passes of one case that a builder refused with the same error.
#[derive(Debug)]
struct Refusal {
    id: String,
    passes: Vec<&'static str>,
    detail: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} [{}]: {}",
            self.id,
            self.passes.join(", "),
            self.detail
        )
    }
}

fn lines<T: ToString>(items: &[T]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "non-string panic".to_owned())
}

fn err_text(r: &Result<(), String>) -> &str {
    match r {
        Ok(()) => "accepted",
        Err(e) => e,
    }
}

/// Prints up to `max` lines of a list, then how many were left out.
fn print_some(title: &str, lines: &[String], max: usize) {
    if lines.is_empty() {
        return;
    }
    println!("{title} ({}):", lines.len());
    for l in lines.iter().take(max) {
        println!("  {l}");
    }
    if lines.len() > max {
        println!("  ... and {} more", lines.len() - max);
    }
}

#[test]
fn limbo() {
    let started = Instant::now();
    let path = suite_path();
    let suite = match load_suite(&path) {
        Ok(s) => s,
        Err(why) => {
            assert!(
                !peers_required(),
                "limbo suite required (MTLS_REQUIRE_PEERS=1) but not usable: {why}"
            );
            println!("skipped: limbo suite not found ({why})");
            return;
        }
    };
    let exceptions = match load_exceptions(&path) {
        Ok(e) => e,
        Err(why) => {
            assert!(!peers_required(), "rustls-webpki exceptions missing: {why}");
            println!("note: no exceptions list ({why}); every deviation counts as unlisted");
            HashMap::new()
        }
    };
    let cases = suite.testcases;
    assert!(!cases.is_empty(), "{}: no test cases", path.display());
    let loaded = started.elapsed();

    let algs = mtls::provider::feature_default()
        .expect("the aws-lc-rs feature is enabled")
        .signature_verification_algorithms
        .all;
    let pki = mtls_testing::TestPki::new();
    let (_, identity) = pki.server("limbo-server.test");
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    let chunk = cases.len().div_ceil(workers);

    let mut reports: Vec<Report> = Vec::with_capacity(cases.len());
    let mut panics: Vec<String> = Vec::new();
    std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .chunks(chunk)
            .enumerate()
            .map(|(i, part)| {
                let worker = Worker {
                    ca_file: pki.path(&format!("w{i}-ca.pem")),
                    crl_file: pki.path(&format!("w{i}-crl.pem")),
                    identity: &identity,
                    algs,
                };
                s.spawn(move || {
                    let mut out = Vec::with_capacity(part.len());
                    let mut panicked = Vec::new();
                    for case in part {
                        match catch_unwind(AssertUnwindSafe(|| worker.evaluate(case))) {
                            Ok(r) => out.push(r),
                            Err(p) => panicked.push(format!("{}: {}", case.id, panic_text(&*p))),
                        }
                    }
                    (out, panicked)
                })
            })
            .collect();
        for h in handles {
            let (out, panicked) = h.join().expect("worker thread");
            reports.extend(out);
            panics.extend(panicked);
        }
    });

    // === tally ===
    let total = cases.len();
    let mut agree_cases = 0usize;
    let mut refused_cases = 0usize;
    let mut not_comparable: Vec<String> = Vec::new();
    let mut mismatches: Vec<String> = Vec::new();
    let mut leaks: Vec<String> = Vec::new();
    let mut refusals_webpki_rejects: Vec<Refusal> = Vec::new();
    let mut refusals_ca_expired: Vec<Refusal> = Vec::new();
    let mut refusals_unexplained: Vec<Refusal> = Vec::new();
    let mut restrictive_admitted = 0usize;
    let (mut expected_agree, mut dev_listed, mut dev_unlisted) = (0usize, 0usize, 0usize);
    let mut unlisted: Vec<String> = Vec::new();
    let mut mtls_only_dev: Vec<String> = Vec::new();
    let (mut bare_dev_listed, mut bare_dev_unlisted) = (0usize, 0usize);
    let mut listed_but_agree: Vec<String> = Vec::new();
    let mut listed_lines: Vec<String> = Vec::new();
    let mut listed_other: Vec<String> = Vec::new();
    let mut passes_run = 0usize;
    // pass -> (accepted, rejected, refused at build)
    let mut per_pass: BTreeMap<&'static str, (usize, usize, usize)> = BTreeMap::new();
    // expected-SUCCESS cases not listed as webpki exceptions, and how many webpki accepts
    let (mut plain_success, mut plain_success_bare_ok) = (0usize, 0usize);

    for r in &reports {
        if let Some(why) = &r.not_comparable {
            not_comparable.push(format!("{}: {why}", r.id));
        }
        let mut refused = false;
        let mut all_agree = r.not_comparable.is_none();
        if r.expected_success && !exceptions.contains_key(&r.id) {
            plain_success += 1;
            plain_success_bare_ok += usize::from(r.bare.is_ok());
        }
        for p in &r.passes {
            passes_run += 1;
            let tally = per_pass.entry(p.name).or_default();
            match &p.ours {
                Ours::Ran(Ok(())) => tally.0 += 1,
                Ours::Ran(Err(_)) => tally.1 += 1,
                Ours::Refused { .. } => tally.2 += 1,
            }
            if let Ours::Refused { error, ca_expired } = &p.ours {
                refused = true;
                all_agree = false;
                let list = if p.bare.is_err() {
                    &mut refusals_webpki_rejects
                } else if *ca_expired {
                    &mut refusals_ca_expired
                } else {
                    &mut refusals_unexplained
                };
                let detail = format!("{error} (webpki: {})", err_text(&p.bare));
                match list.last_mut() {
                    Some(last) if last.id == r.id && last.detail == detail => {
                        last.passes.push(p.name);
                    }
                    _ => list.push(Refusal {
                        id: r.id.clone(),
                        passes: vec![p.name],
                        detail,
                    }),
                }
                continue;
            }
            if p.restrictive {
                if p.ours.accepted() {
                    restrictive_admitted += 1;
                    if p.bare.is_err() {
                        leaks.push(format!(
                            "{} [{}]: admitted; webpki: {}",
                            r.id,
                            p.name,
                            err_text(&p.bare)
                        ));
                    }
                }
            } else if p.ours.accepted() != p.bare.is_ok() {
                all_agree = false;
                mismatches.push(format!(
                    "{} [{}]: mtls {}; webpki {}",
                    r.id,
                    p.name,
                    p.ours.describe(),
                    if p.bare.is_ok() {
                        "accepted".to_owned()
                    } else {
                        format!("rejected: {}", err_text(&p.bare))
                    }
                ));
            }
        }
        if refused {
            refused_cases += 1;
        }
        if all_agree {
            agree_cases += 1;
        }

        let listed = exceptions.contains_key(&r.id);
        if r.ours_accepted() == r.expected_success {
            expected_agree += 1;
            if listed {
                listed_but_agree.push(r.id.clone());
            }
        } else {
            if let Some(ex) = exceptions.get(&r.id) {
                dev_listed += 1;
                let ours = if r.ours_accepted() {
                    "SUCCESS"
                } else {
                    "FAILURE"
                };
                let line = format!(
                    "{}: expected {}, mtls {ours}: {}",
                    r.id, ex.expected, ex.reason
                );
                if ex.actual == ours && ex.expected != ours {
                    listed_lines.push(line);
                } else {
                    listed_other.push(format!("{line} (list says actual {})", ex.actual));
                }
            } else {
                dev_unlisted += 1;
                let ours = r.primary.map_or_else(
                    || r.not_comparable.clone().unwrap_or_default(),
                    |i| r.passes[i].ours.describe(),
                );
                unlisted.push(format!(
                    "{}: expected {}, mtls {ours}",
                    r.id,
                    if r.expected_success {
                        "SUCCESS"
                    } else {
                        "FAILURE"
                    },
                ));
            }
            if r.bare.is_ok() == r.expected_success {
                mtls_only_dev.push(r.id.clone());
            }
        }
        if r.bare.is_ok() != r.expected_success {
            if listed {
                bare_dev_listed += 1;
            } else {
                bare_dev_unlisted += 1;
            }
        }
    }
    let elapsed = started.elapsed();

    // === report ===
    println!(
        "limbo suite {} ({} cases, loaded in {:.1} s); {} mtls passes on {workers} threads",
        path.display(),
        total,
        loaded.as_secs_f64(),
        passes_run
    );
    print_some(
        "refused at build, webpki also rejects",
        &lines(&refusals_webpki_rejects),
        20,
    );
    print_some(
        "refused at build with CaExpired (CA expired by the wall clock), webpki accepts at the case's validation_time",
        &lines(&refusals_ca_expired),
        40,
    );
    print_some(
        "REFUSED AT BUILD although webpki accepts",
        &lines(&refusals_unexplained),
        40,
    );
    print_some(
        "not comparable (counted as rejected by both)",
        &not_comparable,
        20,
    );
    print_some("deviations listed in the exceptions", &listed_lines, 100);
    print_some(
        "listed deviations whose direction differs from the list",
        &listed_other,
        20,
    );
    print_some(
        "deviations from the expected result not listed in the exceptions",
        &unlisted,
        60,
    );
    print_some(
        "deviations only mtls has (webpki meets the expected result)",
        &mtls_only_dev,
        40,
    );
    print_some(
        "listed exceptions where mtls meets the expected result",
        &listed_but_agree,
        20,
    );
    println!(
        "bare webpki vs expected: deviations {} (listed: {bare_dev_listed}, unlisted: {bare_dev_unlisted}); \
         restrictive policy admitted {restrictive_admitted} (of which webpki rejects: {})",
        bare_dev_listed + bare_dev_unlisted,
        leaks.len()
    );
    for (pass, (ok, rejected, refused)) in &per_pass {
        println!("pass {pass}: accepted {ok}, rejected {rejected}, refused at build {refused}");
    }
    println!(
        "not comparable: {}; bare webpki accepts {plain_success_bare_ok} of the {plain_success} \
         expected-SUCCESS cases that are not listed exceptions",
        not_comparable.len()
    );
    print_some("MTLS != WEBPKI", &mismatches, 10);
    print_some(
        "RESTRICTIVE POLICY ADMITTED WHAT WEBPKI REJECTS",
        &leaks,
        10,
    );
    print_some("PANICS", &panics, 10);
    println!("run time: {:.1} s", elapsed.as_secs_f64());
    println!(
        "limbo: {total} cases; mtls==webpki: {agree_cases}; refused at build: {refused_cases}; \
         expected-result agreement: {expected_agree}; deviations: {} (listed: {dev_listed}, unlisted: {dev_unlisted})",
        dev_listed + dev_unlisted
    );

    // === assertions ===
    assert!(
        panics.is_empty(),
        "{} cases panicked: {:?}",
        panics.len(),
        &panics[..panics.len().min(5)]
    );
    assert_eq!(reports.len(), total, "every case was evaluated");
    assert!(
        mismatches.is_empty(),
        "mtls verdicts differ from bare webpki's in {} passes; first: {:#?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(5)]
    );
    assert!(
        leaks.is_empty(),
        "a restrictive policy admitted {} cases webpki rejects: {:#?}",
        leaks.len(),
        &leaks[..leaks.len().min(5)]
    );
    assert!(
        refusals_unexplained.is_empty(),
        "the builders refused material webpki accepts in {} passes (only wall-clock CA expiry is \
         expected): {:#?}",
        refusals_unexplained.len(),
        lines(&refusals_unexplained[..refusals_unexplained.len().min(5)])
    );
    assert_eq!(
        restrictive_admitted, 0,
        "the restrictive policies (CN `nobody`, DNS `never.invalid`) match no certificate of the suite"
    );
    // Harness sanity: a misconfigured bare run (time, algorithms, CRL options) would reject
    // nearly everything and make the comparison above vacuous.
    assert!(
        plain_success_bare_ok * 100 >= plain_success * 95,
        "bare webpki accepts only {plain_success_bare_ok} of {plain_success} expected-SUCCESS cases"
    );
    assert_eq!(
        agree_cases + refused_cases + not_comparable.len(),
        total,
        "every case either agrees, was refused at build or was not comparable"
    );
    // Every deviation from the expected result is webpki's own or a refusal at build.
    assert!(
        mtls_only_dev
            .iter()
            .all(|id| reports.iter().any(|r| &r.id == id
                && r.passes
                    .iter()
                    .any(|p| matches!(p.ours, Ours::Refused { .. })))),
        "deviations only mtls has that are not refusals at build: {mtls_only_dev:?}"
    );
}
