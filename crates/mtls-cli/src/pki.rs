//! `mtls pki`: a small file-based PKI (a root CA, optionally an intermediate, server and
//! client leaves, revocations and CRLs) whose files are plain PEM that nginx, HAProxy,
//! curl, Python and Go accept unchanged.
//!
//! Layout of DIR:
//!
//! | file | what |
//! |---|---|
//! | `ca.crt`, `ca.key` | the root CA (the file to trust: `ssl_client_certificate`, `--cacert`, `--client-ca`) |
//! | `intermediate.crt`, `intermediate.key` | the issuing CA, with `init --intermediate` |
//! | `NAME.crt`, `NAME.key` | a leaf: its certificate followed by the intermediate (a full chain), its key |
//! | `crl.pem` | the CRLs of every CA of the PKI (`ssl_crl`, `--crl`), written by `mtls pki crl` |
//! | `mtls-pki.json` | the state: issued serials, revocations, CRL number |
//!
//! Keys are written with mode 0600 (created so, never widened).

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevocationReason, RevokedCertParams, SanType, SerialNumber,
};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::{CliError, Result};

/// The state file's name inside DIR.
pub(crate) const STATE_FILE: &str = "mtls-pki.json";

/// Key algorithms of `--key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum KeyKind {
    /// ECDSA P-256 with SHA-256 (the default).
    Ec,
    /// RSA 2048 with SHA-256 (PKCS#1 v1.5 signatures).
    Rsa,
    /// Ed25519.
    Ed25519,
}

impl KeyKind {
    fn generate(self) -> Result<KeyPair> {
        let alg = match self {
            Self::Ec => &rcgen::PKCS_ECDSA_P256_SHA256,
            Self::Rsa => &rcgen::PKCS_RSA_SHA256,
            Self::Ed25519 => &rcgen::PKCS_ED25519,
        };
        KeyPair::generate_for(alg).map_err(|e| CliError::msg(format!("cannot generate a key: {e}")))
    }
}

/// One issued leaf in the state file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Issued {
    /// The serial as `openssl x509 -serial` prints it (uppercase hex).
    pub(crate) serial: String,
    /// The DER content octets of the serial, lowercase hex (what the CRL lists).
    pub(crate) serial_der: String,
    /// The leaf's name (its file stem).
    pub(crate) name: String,
    /// `server` or `client`.
    pub(crate) role: String,
    /// Which CA signed it: `root` or `intermediate`.
    pub(crate) issuer: String,
    /// RFC 3339.
    pub(crate) not_after: String,
    /// RFC 3339, when revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) revoked_at: Option<String>,
}

/// `DIR/mtls-pki.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct State {
    /// Format version (1).
    pub(crate) version: u32,
    /// Whether leaves are issued by `intermediate.crt`.
    pub(crate) intermediate: bool,
    /// The number of the last CRL written (0: none yet).
    pub(crate) crl_number: u64,
    /// Every leaf issued, in order.
    pub(crate) issued: Vec<Issued>,
}

impl State {
    fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(STATE_FILE);
        let text = fs::read_to_string(&path).map_err(|e| {
            CliError::msg(format!(
                "cannot read {}: {e}; is {} a PKI made by `mtls pki init`?",
                path.display(),
                dir.display()
            ))
        })?;
        serde_json::from_str(&text).map_err(|e| {
            CliError::msg(format!(
                "{} is not a valid state file: {e}; it is written by `mtls pki`, do not edit it by hand",
                path.display()
            ))
        })
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| CliError::msg(format!("cannot encode the state: {e}")))?;
        write_atomic(&dir.join(STATE_FILE), text.as_bytes(), false)
    }
}

/// `mtls pki init`.
#[derive(Debug, clap::Args)]
pub(crate) struct InitArgs {
    /// The directory to create the PKI in (created if missing; must not hold one already).
    pub(crate) dir: PathBuf,
    /// Also make an intermediate CA, which then issues every leaf.
    #[arg(long)]
    pub(crate) intermediate: bool,
    /// The root CA's common name.
    #[arg(long, default_value = "mtls root CA", value_name = "CN")]
    pub(crate) name: String,
    /// The CA keys' algorithm.
    #[arg(long, value_enum, default_value = "ec")]
    pub(crate) key: KeyKind,
    /// The root CA's validity in days (the intermediate gets half).
    #[arg(long, default_value_t = 3650, value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub(crate) days: u32,
}

/// `mtls pki issue`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("role").required(true).args(["server", "client"])))]
pub(crate) struct IssueArgs {
    /// The PKI's directory (made by `mtls pki init`).
    pub(crate) dir: PathBuf,
    /// A server certificate for these host names or IP addresses (the first is the file
    /// name and the common name; each becomes a DNS or IP SAN).
    #[arg(long, num_args = 1.., value_name = "NAME")]
    pub(crate) server: Vec<String>,
    /// A client certificate with this common name (also the file name).
    #[arg(long, value_name = "NAME")]
    pub(crate) client: Option<String>,
    /// Another DNS name SAN (repeatable).
    #[arg(long, value_name = "NAME")]
    pub(crate) dns: Vec<String>,
    /// An IP address SAN (repeatable).
    #[arg(long, value_name = "ADDR")]
    pub(crate) ip: Vec<IpAddr>,
    /// A URI SAN (repeatable).
    #[arg(long, value_name = "URI")]
    pub(crate) uri: Vec<String>,
    /// An email address SAN (repeatable).
    #[arg(long, value_name = "ADDR")]
    pub(crate) email: Vec<String>,
    /// A SPIFFE ID (`spiffe://trust-domain/path`) as the URI SAN.
    #[arg(long, value_name = "ID")]
    pub(crate) spiffe: Option<String>,
    /// An organizational unit in the subject (repeatable).
    #[arg(long, value_name = "OU")]
    pub(crate) ou: Vec<String>,
    /// Validity in days.
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub(crate) days: u32,
    /// The key's algorithm.
    #[arg(long, value_enum, default_value = "ec")]
    pub(crate) key: KeyKind,
    /// Also write NAME.p12 (key and chain), encrypted with the password in --password-file.
    #[arg(long, requires = "password_file")]
    pub(crate) p12: bool,
    /// The .p12 password: the file's first line.
    #[arg(long, value_name = "FILE")]
    pub(crate) password_file: Option<PathBuf>,
    /// Replace the files of an earlier leaf of this name.
    #[arg(long)]
    pub(crate) force: bool,
}

/// `mtls pki revoke`.
#[derive(Debug, clap::Args)]
pub(crate) struct RevokeArgs {
    /// The PKI's directory.
    pub(crate) dir: PathBuf,
    /// The serial (hex as `mtls inspect` or `openssl x509 -serial` print it, colons
    /// allowed) or the name of an issued leaf.
    pub(crate) serial: String,
}

/// `mtls pki crl`.
#[derive(Debug, clap::Args)]
pub(crate) struct CrlArgs {
    /// The PKI's directory.
    pub(crate) dir: PathBuf,
    /// Days until the CRL's next update.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub(crate) days: u32,
}

fn ca_params(cn: &str, days: u32, path_len: Option<u8>) -> Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())
        .map_err(|e| CliError::msg(format!("cannot make the CA's parameters: {e}")))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(match path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.key_identifier_method = KeyIdMethod::Sha256;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + Duration::days(i64::from(days));
    Ok(params)
}

/// `mtls pki init DIR`.
pub(crate) fn init(args: &InitArgs) -> Result<()> {
    let dir = &args.dir;
    if dir.join(STATE_FILE).exists() || dir.join("ca.key").exists() {
        return Err(CliError::msg(format!(
            "{} already holds a PKI; pick another directory (a new CA would orphan every certificate issued from it)",
            dir.display()
        )));
    }
    fs::create_dir_all(dir)
        .map_err(|e| CliError::msg(format!("cannot create {}: {e}", dir.display())))?;
    let root_key = args.key.generate()?;
    let root_params = ca_params(&args.name, args.days, Some(u8::from(args.intermediate)))?;
    let root = root_params
        .self_signed(&root_key)
        .map_err(|e| CliError::msg(format!("cannot sign the root CA: {e}")))?;
    write_atomic(&dir.join("ca.key"), key_pem(&root_key).as_bytes(), true)?;
    write_atomic(&dir.join("ca.crt"), root.pem().as_bytes(), false)?;
    println!("root CA: {}", dir.join("ca.crt").display());
    if args.intermediate {
        let key = args.key.generate()?;
        let mut params = ca_params(
            &format!("{} intermediate", args.name),
            (args.days / 2).max(1),
            Some(0),
        )?;
        params.use_authority_key_identifier_extension = true;
        let issuer = Issuer::from_params(&root_params, &root_key);
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|e| CliError::msg(format!("cannot sign the intermediate CA: {e}")))?;
        write_atomic(
            &dir.join("intermediate.key"),
            key_pem(&key).as_bytes(),
            true,
        )?;
        write_atomic(&dir.join("intermediate.crt"), cert.pem().as_bytes(), false)?;
        println!(
            "intermediate CA: {}",
            dir.join("intermediate.crt").display()
        );
    }
    let state = State {
        version: 1,
        intermediate: args.intermediate,
        crl_number: 0,
        issued: Vec::new(),
    };
    state.save(dir)?;
    // An empty CRL from the start, so that a server configured with `ssl_crl` works
    // before the first revocation.
    write_crl(dir, &state, 1)?;
    let mut state = state;
    state.crl_number = 1;
    state.save(dir)?;
    println!("CRL: {}", dir.join("crl.pem").display());
    println!(
        "trust {} to verify the PKI's servers and clients",
        dir.join("ca.crt").display()
    );
    Ok(())
}

fn read_text(path: &Path) -> Result<String> {
    fs::read_to_string(path)
        .map_err(|e| CliError::msg(format!("cannot read {}: {e}", path.display())))
}

/// The issuing CA of DIR: its certificate PEM and key.
fn issuing_ca(dir: &Path, intermediate: bool) -> Result<(String, KeyPair)> {
    let stem = if intermediate { "intermediate" } else { "ca" };
    ca_files(dir, stem)
}

fn ca_files(dir: &Path, stem: &str) -> Result<(String, KeyPair)> {
    let cert = read_text(&dir.join(format!("{stem}.crt")))?;
    let key_path = dir.join(format!("{stem}.key"));
    let key = KeyPair::from_pem(&read_text(&key_path)?)
        .map_err(|e| CliError::msg(format!("cannot read the key {}: {e}", key_path.display())))?;
    Ok((cert, key))
}

fn valid_file_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@' | '*' | ':'));
    if ok {
        Ok(())
    } else {
        Err(CliError::usage(format!(
            "{name:?} cannot be a file name; use letters, digits, '.', '-', '_' and '@'"
        )))
    }
}

fn ia5(value: &str, what: &str) -> Result<rcgen::string::Ia5String> {
    value
        .try_into()
        .map_err(|e| CliError::usage(format!("{what} {value:?} is not ASCII: {e}")))
}

fn looks_like_dns(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').enumerate().all(|(i, label)| {
            (i == 0 && label == "*")
                || (!label.is_empty()
                    && label.len() <= 63
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !label.starts_with('-')
                    && !label.ends_with('-'))
        })
}

/// `mtls pki issue DIR --server NAME… | --client NAME`.
pub(crate) fn issue(args: &IssueArgs) -> Result<()> {
    let dir = &args.dir;
    let mut state = State::load(dir)?;
    let (name, role, hosts) = match (&args.client, args.server.first()) {
        (Some(name), None) => (name.clone(), "client", Vec::new()),
        (None, Some(first)) => (first.clone(), "server", args.server.clone()),
        _ => {
            return Err(CliError::usage(
                "give either --server NAME… or --client NAME".to_owned(),
            ));
        }
    };
    valid_file_name(&name)?;
    let file_stem = name.replace('*', "wildcard").replace(':', "_");
    let cert_path = dir.join(format!("{file_stem}.crt"));
    if cert_path.exists() && !args.force {
        return Err(CliError::msg(format!(
            "{} exists; pass --force to issue a new certificate for {name} (revoke the old one with `mtls pki revoke`)",
            cert_path.display()
        )));
    }

    let mut sans = Vec::new();
    for host in &hosts {
        if let Ok(ip) = host.parse::<IpAddr>() {
            sans.push(SanType::IpAddress(ip));
        } else if looks_like_dns(host) {
            sans.push(SanType::DnsName(ia5(host, "the host name")?));
        } else {
            return Err(CliError::usage(format!(
                "--server {host:?} is neither a DNS name nor an IP address"
            )));
        }
    }
    for dns in &args.dns {
        if !looks_like_dns(dns) {
            return Err(CliError::usage(format!("--dns {dns:?} is not a DNS name")));
        }
        sans.push(SanType::DnsName(ia5(dns, "--dns")?));
    }
    sans.extend(args.ip.iter().map(|ip| SanType::IpAddress(*ip)));
    for uri in &args.uri {
        if !uri.contains(':') {
            return Err(CliError::usage(format!(
                "--uri {uri:?} is not a URI (no scheme)"
            )));
        }
        sans.push(SanType::URI(ia5(uri, "--uri")?));
    }
    if let Some(id) = &args.spiffe {
        id.parse::<mtls::SpiffeId>()
            .map_err(|e| CliError::usage(format!("--spiffe {id:?}: {e}")))?;
        sans.push(SanType::URI(ia5(id, "--spiffe")?));
    }
    for email in &args.email {
        if !email.contains('@') {
            return Err(CliError::usage(format!(
                "--email {email:?} is not an email address"
            )));
        }
        sans.push(SanType::Rfc822Name(ia5(email, "--email")?));
    }
    if sans.is_empty() {
        // A client named like a host gets that DNS name; RFC 5280 clients are matched
        // on SANs by most policies, and a certificate without one is refused by ours.
        if looks_like_dns(&name) {
            sans.push(SanType::DnsName(ia5(&name, "the client name")?));
        } else {
            return Err(CliError::usage(format!(
                "the client {name:?} needs a SAN: give --dns, --uri, --spiffe or --email"
            )));
        }
    }

    let mut params = CertificateParams::new(Vec::<String>::new())
        .map_err(|e| CliError::msg(format!("cannot make the leaf's parameters: {e}")))?;
    let mut dn = DistinguishedName::new();
    for ou in &args.ou {
        dn.push(DnType::OrganizationalUnitName, ou.as_str());
    }
    dn.push(DnType::CommonName, name.as_str());
    params.distinguished_name = dn;
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if args.key == KeyKind::Rsa && role == "server" {
        params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
    }
    params.extended_key_usages = vec![if role == "server" {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    params.use_authority_key_identifier_extension = true;
    params.key_identifier_method = KeyIdMethod::Sha256;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + Duration::days(i64::from(args.days));

    let (ca_pem, ca_key) = issuing_ca(dir, state.intermediate)?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, &ca_key)
        .map_err(|e| CliError::msg(format!("cannot read the issuing CA: {e}")))?;
    let key = args.key.generate()?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|e| CliError::msg(format!("cannot sign the certificate: {e}")))?;

    let parsed = x509_parser::parse_x509_certificate(cert.der())
        .map_err(|e| CliError::msg(format!("cannot read back the new certificate: {e}")))?
        .1;
    let identity = mtls::PeerIdentity::from_chain(std::slice::from_ref(cert.der()))
        .map_err(|e| CliError::msg(format!("cannot read back the new certificate: {e}")))?;
    let serial = identity.serial().to_owned();
    let serial_der = hex(parsed.raw_serial());

    let key_path = dir.join(format!("{file_stem}.key"));
    let mut chain = cert.pem();
    if state.intermediate {
        chain.push_str(&ca_pem);
    }
    write_atomic(&key_path, key_pem(&key).as_bytes(), true)?;
    write_atomic(&cert_path, chain.as_bytes(), false)?;
    if args.p12 {
        let password = match &args.password_file {
            Some(path) => crate::p12::read_password(path)?,
            None => {
                return Err(CliError::usage(
                    "--p12 needs --password-file FILE".to_owned(),
                ));
            }
        };
        let mut der_chain = vec![cert.der().to_vec()];
        if state.intermediate {
            let (_, ca) = x509_parser::pem::parse_x509_pem(ca_pem.as_bytes())
                .map_err(|e| CliError::msg(format!("cannot read the intermediate: {e}")))?;
            der_chain.push(ca.contents);
        }
        let p12 = crate::p12::build(&der_chain, &key_der(&key), &password)?;
        let p12_path = dir.join(format!("{file_stem}.p12"));
        write_atomic(&p12_path, &p12, true)?;
        println!("  PKCS#12:     {}", p12_path.display());
    }
    state.issued.push(Issued {
        serial: serial.clone(),
        serial_der,
        name: name.clone(),
        role: role.to_owned(),
        issuer: if state.intermediate {
            "intermediate"
        } else {
            "root"
        }
        .to_owned(),
        not_after: rfc3339(params.not_after),
        revoked_at: None,
    });
    state.save(dir)?;
    println!(
        "{role} certificate for {name} (serial {serial}, valid {} days)",
        args.days
    );
    println!("  certificate: {}", cert_path.display());
    println!("  key:         {}", key_path.display());
    Ok(())
}

fn normalize_serial(s: &str) -> String {
    let hex: String = s
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let trimmed = hex.trim_start_matches('0');
    if trimmed.is_empty() {
        "00".to_owned()
    } else if trimmed.len() % 2 == 1 {
        format!("0{trimmed}")
    } else {
        trimmed.to_owned()
    }
}

/// `mtls pki revoke DIR SERIAL`.
pub(crate) fn revoke(args: &RevokeArgs) -> Result<()> {
    let dir = &args.dir;
    let mut state = State::load(dir)?;
    let wanted = normalize_serial(&args.serial);
    let by_serial: Vec<usize> = (0..state.issued.len())
        .filter(|&i| normalize_serial(&state.issued[i].serial) == wanted)
        .collect();
    let matches = if by_serial.is_empty() {
        (0..state.issued.len())
            .filter(|&i| {
                state.issued[i].name == args.serial && state.issued[i].revoked_at.is_none()
            })
            .collect()
    } else {
        by_serial
    };
    let index = match matches.as_slice() {
        [one] => *one,
        [] => {
            return Err(CliError::msg(format!(
                "no certificate with serial or name {:?} was issued by the PKI in {}",
                args.serial,
                dir.display()
            )));
        }
        _ => {
            return Err(CliError::msg(format!(
                "several unrevoked certificates are named {:?}; revoke one by its serial",
                args.serial
            )));
        }
    };
    let entry = &mut state.issued[index];
    if entry.revoked_at.is_some() {
        println!(
            "{} (serial {}) was already revoked",
            entry.name, entry.serial
        );
        return Ok(());
    }
    entry.revoked_at = Some(rfc3339(OffsetDateTime::now_utc()));
    println!("revoked {} (serial {})", entry.name, entry.serial);
    state.save(dir)?;
    println!(
        "run `mtls pki crl {}` to publish the revocation",
        dir.display()
    );
    Ok(())
}

/// `mtls pki crl DIR`.
pub(crate) fn crl(args: &CrlArgs) -> Result<()> {
    let dir = &args.dir;
    let mut state = State::load(dir)?;
    let number = state.crl_number + 1;
    write_crl_days(dir, &state, number, args.days)?;
    state.crl_number = number;
    state.save(dir)?;
    let revoked = state
        .issued
        .iter()
        .filter(|i| i.revoked_at.is_some())
        .count();
    println!(
        "CRL number {number} with {revoked} revoked certificate(s): {}",
        dir.join("crl.pem").display()
    );
    Ok(())
}

fn write_crl(dir: &Path, state: &State, number: u64) -> Result<()> {
    write_crl_days(dir, state, number, 7)
}

fn write_crl_days(dir: &Path, state: &State, number: u64, days: u32) -> Result<()> {
    let now = OffsetDateTime::now_utc();
    let mut out = String::new();
    let cas: &[&str] = if state.intermediate {
        &["intermediate", "ca"]
    } else {
        &["ca"]
    };
    for stem in cas {
        let issuer_label = if *stem == "ca" {
            "root"
        } else {
            "intermediate"
        };
        let mut revoked = Vec::new();
        for entry in state.issued.iter().filter(|e| e.issuer == issuer_label) {
            let Some(at) = &entry.revoked_at else {
                continue;
            };
            let when = OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                .unwrap_or(now);
            revoked.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&unhex(&entry.serial_der)?),
                revocation_time: when,
                reason_code: Some(RevocationReason::Unspecified),
                invalidity_date: None,
            });
        }
        let params = CertificateRevocationListParams {
            this_update: now - Duration::minutes(5),
            next_update: now + Duration::days(i64::from(days)),
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: revoked,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let (ca_pem, ca_key) = ca_files(dir, stem)?;
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, &ca_key)
            .map_err(|e| CliError::msg(format!("cannot read {stem}.crt: {e}")))?;
        let crl = params
            .signed_by(&issuer)
            .map_err(|e| CliError::msg(format!("cannot sign the CRL: {e}")))?;
        out.push_str(
            &crl.pem()
                .map_err(|e| CliError::msg(format!("cannot encode the CRL: {e}")))?,
        );
    }
    write_atomic(&dir.join("crl.pem"), out.as_bytes(), false)
}

/// The key as PEM PKCS#8. An Ed25519 key is written as PKCS#8 v1 (RFC 8410 without the
/// public key): OpenSSL 3.0, and so curl and nginx on it, cannot read the v2 form
/// (`OneAsymmetricKey` with the public key) that the generator makes.
fn key_pem(key: &KeyPair) -> String {
    const V2_ED25519: [u8; 16] = [
        0x30, 0x51, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    let der = key.serialized_der();
    match (der.get(..16), der.get(16..48)) {
        (Some(prefix), Some(seed)) if prefix == V2_ED25519 => {
            let mut v1 = vec![
                0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
                0x04, 0x20,
            ];
            v1.extend_from_slice(seed);
            pem_block("PRIVATE KEY", &v1)
        }
        _ => key.serialize_pem(),
    }
}

/// The key's PKCS#8 DER as written to NAME.key.
fn key_der(key: &KeyPair) -> Vec<u8> {
    ::pem::parse(key_pem(key))
        .map(|p| p.into_contents())
        .unwrap_or_else(|_| key.serialized_der().to_vec())
}

fn pem_block(label: &str, der: &[u8]) -> String {
    pem::encode(&pem::Pem::new(label, der))
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Result<Vec<u8>> {
    let bad = || CliError::msg(format!("the state file has a bad serial {s:?}"));
    if !s.len().is_multiple_of(2) {
        return Err(bad());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(bad)
        })
        .collect()
}

/// Writes `path` through a temporary file in the same directory and a rename, so a
/// reader (a reloading server) never sees half a file. Secret files are created 0600.
fn write_atomic(path: &Path, data: &[u8], secret: bool) -> Result<()> {
    let err = |e: std::io::Error| CliError::msg(format!("cannot write {}: {e}", path.display()));
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp{}", std::process::id()));
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    let _ = fs::remove_file(&tmp);
    let mut file = options.open(&tmp).map_err(err)?;
    file.write_all(data).map_err(err)?;
    file.sync_all().map_err(err)?;
    drop(file);
    fs::rename(&tmp, path).map_err(err)
}
