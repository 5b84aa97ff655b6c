//! `mtls inspect FILE…`: what each certificate, key, bundle, CRL, CSR or PKCS#12 file
//! holds. Never prints key material: a key is described by its form, algorithm and the
//! SHA-256 of its public key.
//!
//! `--json` prints an array with one object per item (a bundle gives one per
//! certificate); its fields are a stable interface: `file`, `kind` (`certificate`,
//! `private_key`, `crl`, `csr`, `pkcs12`, `unknown`), `index` (position in the file), and
//! for certificates `subject`, `issuer` (RFC 4514, as [`mtls::PeerIdentity`] writes
//! them), `serial` (uppercase hex as `openssl x509 -serial`), `fingerprint_sha256`
//! (lowercase hex, no colons), `not_before`, `not_after` (RFC 3339), `days_left`, `dns`,
//! `ip`, `uri`, `email`, `spiffe_id`, `eku`, `is_ca`, `version`, `self_signed`,
//! `key_algorithm`, `spki_sha256`, `matching_key`, `policies`, `problems`.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::SystemTime;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use x509_parser::prelude::*;
use x509_parser::public_key::PublicKey;

use crate::pki::hex;
use crate::{CliError, Result};

/// `mtls inspect FILE…`.
#[derive(Debug, clap::Args)]
pub(crate) struct InspectArgs {
    /// Certificate, key, bundle, CRL, CSR or PKCS#12 files (PEM or DER).
    #[arg(required = true, value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,
    /// One JSON array on stdout, one object per item (a stable interface for scripts).
    #[arg(long)]
    pub(crate) json: bool,
    /// The password of encrypted keys and PKCS#12 files: the file's first line.
    #[arg(long, value_name = "FILE")]
    pub(crate) password_file: Option<PathBuf>,
}

/// One thing found in a file.
struct Item {
    fields: Map<String, Value>,
    /// The SHA-256 of the SubjectPublicKeyInfo: of a certificate's key or a private key's
    /// public half, to pair them.
    spki: Option<String>,
}

impl Item {
    fn new(file: &Path, kind: &str, index: usize) -> Self {
        let mut fields = Map::new();
        fields.insert("file".into(), json!(file.display().to_string()));
        fields.insert("kind".into(), json!(kind));
        fields.insert("index".into(), json!(index));
        Self { fields, spki: None }
    }

    fn set(&mut self, key: &str, value: Value) {
        self.fields.insert(key.to_owned(), value);
    }

    fn kind(&self) -> &str {
        self.fields
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    fn problem(&mut self, text: String) {
        let list = self
            .fields
            .entry("problems")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = list {
            list.push(Value::String(text));
        }
    }
}

pub(crate) fn run(args: &InspectArgs) -> Result<()> {
    let password = match &args.password_file {
        Some(path) => mtls::Password::from_file(path.clone()),
        None => mtls::Password::none(),
    };
    let mut items = Vec::new();
    let mut failed = false;
    for file in &args.files {
        match inspect_file(file, &password) {
            Ok(mut found) => items.append(&mut found),
            Err(message) => {
                failed = true;
                let mut item = Item::new(file, "unknown", 0);
                item.set("error", json!(message));
                items.push(item);
            }
        }
    }
    pair_keys(&mut items);
    if args.json {
        let array: Vec<Value> = items.into_iter().map(|i| Value::Object(i.fields)).collect();
        let text = serde_json::to_string_pretty(&array)
            .map_err(|e| CliError::msg(format!("cannot encode JSON: {e}")))?;
        print_out(&format!("{text}\n"));
    } else {
        let text: String = items.iter().map(describe).collect();
        print_out(&text);
    }
    if failed {
        Err(CliError::Reported)
    } else {
        Ok(())
    }
}

/// Writes to stdout; a closed pipe (`mtls inspect … | head`) is not an error.
fn print_out(text: &str) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

/// Reads one file into its items; the error is a message for the user.
fn inspect_file(file: &Path, password: &mtls::Password) -> std::result::Result<Vec<Item>, String> {
    let data = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    if data.iter().all(u8::is_ascii_whitespace) {
        return Err(format!("{} is empty", file.display()));
    }
    let is_pem = data.windows(11).any(|w| w == b"-----BEGIN ");
    if !is_pem {
        return inspect_der(file, &data, password);
    }
    let mut items = Vec::new();
    let mut certs = Vec::new();
    let blocks = ::pem::parse_many(&data)
        .map_err(|e| format!("{} has a broken PEM block: {e}", file.display()))?;
    for (index, block) in blocks.iter().enumerate() {
        let contents = block.contents();
        let item = match block.tag() {
            "CERTIFICATE" | "X509 CERTIFICATE" | "TRUSTED CERTIFICATE" => {
                certs.push(contents.to_vec());
                certificate(file, index, contents)
            }
            "X509 CRL" => crl(file, index, contents),
            "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST" => csr(file, index, contents),
            label if label.ends_with("PRIVATE KEY") => {
                let block = format!(
                    "-----BEGIN {label}-----\n{}",
                    pem_body_with_headers(&data, index)
                );
                private_key(file, index, block.as_bytes(), password, label)
            }
            other => {
                let mut item = Item::new(file, "unknown", index);
                item.set("pem_label", json!(other));
                item
            }
        };
        items.push(item);
    }
    chain_order(&mut items, &certs);
    Ok(items)
}

/// The text of the `index`th PEM block after its BEGIN line, through its END line
/// (with any `Proc-Type`/`DEK-Info` headers kept, which the key reader needs).
fn pem_body_with_headers(data: &[u8], index: usize) -> String {
    let text = String::from_utf8_lossy(data);
    let mut seen = 0;
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("-----BEGIN ") {
            if seen == index {
                inside = true;
                seen += 1;
                continue;
            }
            seen += 1;
        }
        if inside {
            out.push_str(line);
            out.push('\n');
            if line.starts_with("-----END ") {
                break;
            }
        }
    }
    out
}

fn inspect_der(
    file: &Path,
    data: &[u8],
    password: &mtls::Password,
) -> std::result::Result<Vec<Item>, String> {
    if X509Certificate::from_der(data).is_ok() {
        let items = vec![certificate(file, 0, data)];
        return Ok(items);
    }
    if CertificateRevocationList::from_der(data).is_ok() {
        return Ok(vec![crl(file, 0, data)]);
    }
    if X509CertificationRequest::from_der(data).is_ok() {
        return Ok(vec![csr(file, 0, data)]);
    }
    let pkcs12 = match mtls::pkcs12::parse(data, file, password) {
        Ok(pkcs12) => pkcs12,
        // Not PKCS#12 at all: a DER key, if the core reads one.
        Err(mtls::Error::BadPkcs12 { .. }) if mtls::pem::parse_key(data, file).is_ok() => {
            return Ok(vec![private_key(file, 0, data, password, "DER")]);
        }
        Err(e) => return Err(e.to_string()),
    };
    let mut items = Vec::new();
    let mut summary = Item::new(file, "pkcs12", 0);
    summary.set("certificates", json!(pkcs12.certs.len()));
    summary.set("has_key", json!(pkcs12.key.is_some()));
    items.push(summary);
    let mut certs = Vec::new();
    for (i, cert) in pkcs12.certs.iter().enumerate() {
        let mut item = certificate(file, i + 1, cert.as_ref());
        item.set("container", json!("pkcs12"));
        certs.push(cert.as_ref().to_vec());
        items.push(item);
    }
    if let Some(key) = &pkcs12.key {
        let mut item = Item::new(file, "private_key", pkcs12.certs.len() + 1);
        item.set("container", json!("pkcs12"));
        describe_key(&mut item, key);
        items.push(item);
    }
    Ok(items)
}

fn rfc3339(t: SystemTime) -> String {
    ::time::OffsetDateTime::from(t)
        .format(&::time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn asn1_rfc3339(t: ASN1Time) -> String {
    t.to_datetime()
        .format(&::time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn certificate(file: &Path, index: usize, der: &[u8]) -> Item {
    let mut item = Item::new(file, "certificate", index);
    let cert = match X509Certificate::from_der(der) {
        Ok((_, cert)) => cert,
        Err(e) => {
            item.set("error", json!(format!("not a readable certificate: {e}")));
            return item;
        }
    };
    let chain = [CertificateDer::from(der.to_vec())];
    let identity = mtls::PeerIdentity::from_chain(&chain);
    match &identity {
        Ok(id) => {
            item.set("subject", json!(id.subject()));
            item.set("issuer", json!(id.issuer()));
            item.set("serial", json!(id.serial()));
            item.set("fingerprint_sha256", json!(id.fingerprint_sha256()));
            item.set("not_before", json!(rfc3339(id.not_before())));
            item.set("not_after", json!(rfc3339(id.not_after())));
            item.set("dns", json!(id.dns_names()));
            item.set(
                "ip",
                json!(
                    id.ip_addresses()
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                ),
            );
            item.set("uri", json!(id.uris()));
            item.set("email", json!(id.emails()));
            item.set("spiffe_id", json!(id.spiffe_id().map(ToString::to_string)));
            item.set("spki_sha256", json!(id.spki_sha256()));
            item.spki = Some(id.spki_sha256().to_owned());
        }
        Err(e) => {
            // Fall back to the parser's own rendering so the item is still described.
            item.set("subject", json!(cert.subject().to_string()));
            item.set("issuer", json!(cert.issuer().to_string()));
            item.set("fingerprint_sha256", json!(hex(&Sha256::digest(der))));
            item.set(
                "not_before",
                json!(asn1_rfc3339(cert.validity().not_before)),
            );
            item.set("not_after", json!(asn1_rfc3339(cert.validity().not_after)));
            item.problem(format!("the mtls library cannot read its identity: {e}"));
        }
    }
    let now = ASN1Time::now();
    let not_after = cert.validity().not_after;
    let days_left = (not_after.timestamp() - now.timestamp()).div_euclid(86_400);
    item.set("days_left", json!(days_left));
    if not_after < now {
        item.problem(format!("expired {} days ago", -days_left));
    } else if cert.validity().not_before > now {
        item.problem("not yet valid".to_owned());
    }
    item.set("version", json!(cert.version().0 + 1));
    if cert.version().0 == 0 {
        item.problem(
            "an X.509 v1 certificate (no extensions): rustls refuses it as a leaf; reissue it as v3"
                .to_owned(),
        );
    }
    let is_ca = cert
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|bc| bc.value.ca);
    item.set("is_ca", json!(is_ca));
    let self_signed = cert.subject().as_raw() == cert.issuer().as_raw();
    item.set("self_signed", json!(self_signed));
    let mut eku = Vec::new();
    if let Ok(Some(ext)) = cert.extended_key_usage() {
        let e = ext.value;
        for (on, name) in [
            (e.any, "any"),
            (e.server_auth, "serverAuth"),
            (e.client_auth, "clientAuth"),
            (e.code_signing, "codeSigning"),
            (e.email_protection, "emailProtection"),
            (e.time_stamping, "timeStamping"),
            (e.ocsp_signing, "OCSPSigning"),
        ] {
            if on {
                eku.push(name.to_owned());
            }
        }
        eku.extend(e.other.iter().map(ToString::to_string));
    }
    item.set("eku", json!(eku));
    item.set("key_algorithm", json!(spki_algorithm(cert.public_key())));
    if !is_ca {
        let no_san = identity.as_ref().is_ok_and(|id| {
            id.dns_names().is_empty()
                && id.ip_addresses().is_empty()
                && id.uris().is_empty()
                && id.emails().is_empty()
        });
        if no_san {
            item.problem(
                "no subjectAltName: TLS clients ignore the CN, so this cannot serve as a server certificate"
                    .to_owned(),
            );
        }
        if let Ok(id) = &identity {
            item.set("policies", json!(admitting_policies(id)));
        }
    }
    item
}

/// The policy strings of the core's grammar that admit this certificate, each checked by
/// parsing it and authorizing the identity with it.
fn admitting_policies(id: &mtls::PeerIdentity) -> Vec<String> {
    let mut candidates = Vec::new();
    if let Some(cn) = id.common_name() {
        candidates.push(format!("cn:{cn}"));
    }
    candidates.extend(id.dns_names().iter().map(|d| format!("dns:{d}")));
    candidates.extend(id.ip_addresses().iter().map(|ip| format!("ip:{ip}")));
    candidates.extend(id.emails().iter().map(|e| format!("email:{e}")));
    if let Some(spiffe) = id.spiffe_id() {
        candidates.push(format!("spiffe:{spiffe}"));
        candidates.push(format!("spiffe:{}", spiffe.trust_domain()));
    } else {
        candidates.extend(id.uris().iter().map(|u| format!("uri:{u}")));
    }
    candidates.extend(id.organizations().iter().map(|o| format!("o:{o}")));
    candidates.extend(id.org_units().iter().map(|o| format!("ou:{o}")));
    candidates.push(format!("sha256:{}", id.fingerprint_sha256()));
    candidates
        .into_iter()
        .filter_map(|text| {
            let policy = mtls::Policy::from_str(&text).ok()?;
            policy.authorize(id).ok()?;
            // Display writes the grammar with any quoting the value needs.
            Some(policy.to_string())
        })
        .collect()
}

fn spki_algorithm(spki: &SubjectPublicKeyInfo<'_>) -> String {
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => format!("RSA {}", rsa.key_size()),
        Ok(PublicKey::EC(_)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|oid| match oid.to_id_string().as_str() {
                    "1.2.840.10045.3.1.7" => "P-256".to_owned(),
                    "1.3.132.0.34" => "P-384".to_owned(),
                    "1.3.132.0.35" => "P-521".to_owned(),
                    other => other.to_owned(),
                })
                .unwrap_or_else(|| "unknown curve".to_owned());
            format!("ECDSA {curve}")
        }
        _ => match spki.algorithm.algorithm.to_id_string().as_str() {
            "1.3.101.112" => "Ed25519".to_owned(),
            "1.3.101.113" => "Ed448".to_owned(),
            other => other.to_owned(),
        },
    }
}

fn private_key(
    file: &Path,
    index: usize,
    data: &[u8],
    password: &mtls::Password,
    label: &str,
) -> Item {
    let mut item = Item::new(file, "private_key", index);
    item.set(
        "form",
        json!(match label {
            "RSA PRIVATE KEY" => "PKCS#1",
            "EC PRIVATE KEY" => "SEC1",
            "PRIVATE KEY" => "PKCS#8",
            "ENCRYPTED PRIVATE KEY" => "encrypted PKCS#8",
            other => other,
        }),
    );
    let text = String::from_utf8_lossy(data);
    let encrypted = label == "ENCRYPTED PRIVATE KEY" || text.contains("Proc-Type: 4,ENCRYPTED");
    item.set("encrypted", json!(encrypted));
    match mtls::pem::parse_key_with_password(data, file, password) {
        Ok(key) => describe_key(&mut item, &key),
        Err(e) => item.problem(e.to_string()),
    }
    item
}

/// The algorithm and public-key hash of a key (the key itself is never printed).
fn describe_key(item: &mut Item, key: &PrivateKeyDer<'static>) {
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    match provider.key_provider.load_private_key(key.clone_key()) {
        Ok(signing) => match signing.public_key() {
            Some(spki) => {
                let hash = hex(&Sha256::digest(spki.as_ref()));
                if let Ok((_, parsed)) = SubjectPublicKeyInfo::from_der(spki.as_ref()) {
                    item.set("key_algorithm", json!(spki_algorithm(&parsed)));
                }
                item.set("spki_sha256", json!(hash));
                item.spki = Some(hash);
            }
            None => item.set("key_algorithm", json!(format!("{:?}", signing.algorithm()))),
        },
        Err(e) => item.problem(format!("rustls cannot use this key: {e}")),
    }
}

fn crl(file: &Path, index: usize, der: &[u8]) -> Item {
    let mut item = Item::new(file, "crl", index);
    let crl = match CertificateRevocationList::from_der(der) {
        Ok((_, crl)) => crl,
        Err(e) => {
            item.set("error", json!(format!("not a readable CRL: {e}")));
            return item;
        }
    };
    item.set("issuer", json!(crl.issuer().to_string()));
    item.set("this_update", json!(asn1_rfc3339(crl.last_update())));
    item.set("next_update", json!(crl.next_update().map(asn1_rfc3339)));
    if crl.next_update().is_some_and(|t| t < ASN1Time::now()) {
        item.problem("its next update is past: the CRL is stale".to_owned());
    }
    item.set(
        "crl_number",
        json!(crl.crl_number().map(|n| n.to_str_radix(10))),
    );
    let revoked: Vec<String> = crl
        .iter_revoked_certificates()
        .map(|r| mtls_serial(r.raw_serial()))
        .collect();
    item.set("revoked", json!(revoked));
    item.set("fingerprint_sha256", json!(hex(&Sha256::digest(der))));
    item
}

fn mtls_serial(raw: &[u8]) -> String {
    let trimmed: Vec<u8> = raw.iter().copied().skip_while(|b| *b == 0).collect();
    if trimmed.is_empty() {
        "00".to_owned()
    } else {
        hex(&trimmed).to_ascii_uppercase()
    }
}

fn csr(file: &Path, index: usize, der: &[u8]) -> Item {
    let mut item = Item::new(file, "csr", index);
    let req = match X509CertificationRequest::from_der(der) {
        Ok((_, req)) => req,
        Err(e) => {
            item.set("error", json!(format!("not a readable CSR: {e}")));
            return item;
        }
    };
    let info = &req.certification_request_info;
    item.set("subject", json!(info.subject.to_string()));
    item.set("key_algorithm", json!(spki_algorithm(&info.subject_pki)));
    let mut dns = Vec::new();
    let mut ip = Vec::new();
    let mut uri = Vec::new();
    let mut email = Vec::new();
    if let Some(exts) = req.requested_extensions() {
        for ext in exts {
            if let ParsedExtension::SubjectAlternativeName(san) = ext {
                for name in &san.general_names {
                    match name {
                        GeneralName::DNSName(d) => dns.push((*d).to_owned()),
                        GeneralName::URI(u) => uri.push((*u).to_owned()),
                        GeneralName::RFC822Name(e) => email.push((*e).to_owned()),
                        GeneralName::IPAddress(b) => ip.push(ip_text(b)),
                        _ => {}
                    }
                }
            }
        }
    }
    if dns.is_empty() && ip.is_empty() && uri.is_empty() && email.is_empty() {
        item.problem("requests no subjectAltName".to_owned());
    }
    item.set("dns", json!(dns));
    item.set("ip", json!(ip));
    item.set("uri", json!(uri));
    item.set("email", json!(email));
    item.set("signature_valid", json!(req.verify_signature().is_ok()));
    item
}

fn ip_text(bytes: &[u8]) -> String {
    match bytes.len() {
        4 => {
            let a: [u8; 4] = [bytes[0], bytes[1], bytes[2], bytes[3]];
            std::net::IpAddr::from(a).to_string()
        }
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(bytes);
            std::net::IpAddr::from(a).to_string()
        }
        _ => hex(bytes),
    }
}

/// Chain order problems of one file's certificates: each should be issued by the next.
fn chain_order(items: &mut [Item], certs: &[Vec<u8>]) {
    if certs.len() < 2 {
        return;
    }
    let parsed: Vec<Option<X509Certificate<'_>>> = certs
        .iter()
        .map(|c| X509Certificate::from_der(c).ok().map(|(_, c)| c))
        .collect();
    let cert_items: Vec<usize> = (0..items.len())
        .filter(|&i| items[i].kind() == "certificate")
        .collect();
    for (pos, pair) in parsed.windows(2).enumerate() {
        let (Some(this), Some(next)) = (&pair[0], &pair[1]) else {
            continue;
        };
        if this.issuer().as_raw() == next.subject().as_raw() {
            continue;
        }
        let Some(&item_index) = cert_items.get(pos) else {
            continue;
        };
        let issuer_elsewhere = parsed
            .iter()
            .flatten()
            .any(|c| c.subject().as_raw() == this.issuer().as_raw());
        let text = if this.subject().as_raw() == this.issuer().as_raw() {
            "a self-signed certificate is followed by another: the root belongs last (or not at all)".to_owned()
        } else if issuer_elsewhere {
            format!(
                "chain order: the next certificate is not its issuer ({}); put each certificate right before its issuer, the leaf first",
                this.issuer()
            )
        } else {
            format!(
                "chain order: its issuer ({}) is not in this file and the next certificate is not it",
                this.issuer()
            )
        };
        items[item_index].problem(text);
    }
}

/// Marks which private key (in any of the files) matches which certificate.
fn pair_keys(items: &mut [Item]) {
    let keys: Vec<(String, String)> = items
        .iter()
        .filter(|i| i.kind() == "private_key")
        .filter_map(|i| {
            let file = i.fields.get("file")?.as_str()?.to_owned();
            Some((i.spki.clone()?, file))
        })
        .collect();
    let certs: Vec<(String, String)> = items
        .iter()
        .filter(|i| i.kind() == "certificate")
        .filter_map(|i| {
            let subject = i.fields.get("subject")?.as_str()?.to_owned();
            Some((i.spki.clone()?, subject))
        })
        .collect();
    for item in items.iter_mut() {
        let Some(spki) = item.spki.clone() else {
            continue;
        };
        match item.kind() {
            "certificate" => {
                let matching = keys
                    .iter()
                    .find(|(k, _)| *k == spki)
                    .map(|(_, f)| f.clone());
                item.set("matching_key", json!(matching));
            }
            "private_key" => {
                let matching: Vec<String> = certs
                    .iter()
                    .filter(|(k, _)| *k == spki)
                    .map(|(_, s)| s.clone())
                    .collect();
                item.set("matching_certificates", json!(matching));
            }
            _ => {}
        }
    }
}

/// The text description of one item.
fn describe(item: &Item) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    macro_rules! out_line {
        ($($arg:tt)*) => {
            let _ = writeln!(out, $($arg)*);
        };
    }
    let f = &item.fields;
    let get = |k: &str| f.get(k).cloned().unwrap_or(Value::Null);
    let text = |k: &str| match get(k) {
        Value::String(s) => s,
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    };
    let list = |k: &str| match get(k) {
        Value::Array(a) if !a.is_empty() => a
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), ToOwned::to_owned))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "-".to_owned(),
    };
    out_line!(
        "{} #{}: {}",
        text("file"),
        text("index"),
        item.kind().replace('_', " ")
    );
    match item.kind() {
        "certificate" => {
            let role = if get("is_ca") == Value::Bool(true) {
                if get("self_signed") == Value::Bool(true) {
                    "root CA"
                } else {
                    "intermediate CA"
                }
            } else {
                "leaf"
            };
            let article = if role.starts_with('i') { "an" } else { "a" };
            out_line!("  {article} {role} certificate, X.509 v{}", text("version"));
            out_line!("  subject:     {}", text("subject"));
            out_line!("  issuer:      {}", text("issuer"));
            out_line!("  serial:      {}", text("serial"));
            out_line!(
                "  validity:    {} to {} ({} days left)",
                text("not_before"),
                text("not_after"),
                text("days_left")
            );
            out_line!("  key:         {}", text("key_algorithm"));
            out_line!(
                "  SANs:        DNS {}; IP {}; URI {}; email {}",
                list("dns"),
                list("ip"),
                list("uri"),
                list("email")
            );
            out_line!("  SPIFFE ID:   {}", text("spiffe_id"));
            out_line!("  EKU:         {}", list("eku"));
            out_line!("  SHA-256:     {}", text("fingerprint_sha256"));
            out_line!("  SPKI SHA-256: {}", text("spki_sha256"));
            if let Some(Value::String(key)) = f.get("matching_key") {
                out_line!("  its key:     {key}");
            }
            if f.contains_key("policies") {
                out_line!("  admitted by: {}", list("policies"));
            }
        }
        "private_key" => {
            out_line!(
                "  form:        {}{}",
                text("form"),
                if get("encrypted") == Value::Bool(true) {
                    " (encrypted)"
                } else {
                    ""
                }
            );
            out_line!("  algorithm:   {}", text("key_algorithm"));
            out_line!("  SPKI SHA-256: {}", text("spki_sha256"));
            if f.contains_key("matching_certificates") {
                out_line!("  certificate: {}", list("matching_certificates"));
            }
        }
        "crl" => {
            out_line!("  issuer:      {}", text("issuer"));
            out_line!("  this update: {}", text("this_update"));
            out_line!("  next update: {}", text("next_update"));
            out_line!("  CRL number:  {}", text("crl_number"));
            out_line!("  revoked:     {}", list("revoked"));
        }
        "csr" => {
            out_line!("  subject:     {}", text("subject"));
            out_line!("  key:         {}", text("key_algorithm"));
            out_line!(
                "  SANs:        DNS {}; IP {}; URI {}; email {}",
                list("dns"),
                list("ip"),
                list("uri"),
                list("email")
            );
            out_line!(
                "  signature:   {}",
                if get("signature_valid") == Value::Bool(true) {
                    "valid"
                } else {
                    "INVALID"
                }
            );
        }
        "pkcs12" => {
            out_line!(
                "  {} certificate(s), {}",
                text("certificates"),
                if get("has_key") == Value::Bool(true) {
                    "a private key"
                } else {
                    "no private key (a trust bundle)"
                }
            );
        }
        _ => {}
    }
    if let Some(Value::String(error)) = f.get("error") {
        out_line!("  error: {error}");
    }
    if let Some(Value::Array(problems)) = f.get("problems") {
        for p in problems {
            out_line!("  problem: {}", p.as_str().unwrap_or_default());
        }
    }
    out
}
