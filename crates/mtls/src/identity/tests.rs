#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

use rcgen::{CertificateParams, CustomExtension, DnType, KeyPair, SanType, SerialNumber};

use super::*;
use crate::dn::normalize_dn;

const OID_OU_ARCS: [u64; 4] = [2, 5, 4, 11];

fn ia5(s: &str) -> rcgen::string::Ia5String {
    match s.try_into() {
        Ok(v) => v,
        Err(e) => panic!("{s:?} is not IA5: {e}"),
    }
}

fn make(f: impl FnOnce(&mut CertificateParams)) -> CertificateDer<'static> {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    f(&mut params);
    let key = KeyPair::generate().expect("key");
    params.self_signed(&key).expect("self-signed").der().clone()
}

fn peer(der: &CertificateDer<'static>) -> PeerIdentity {
    PeerIdentity::from_chain(std::slice::from_ref(der)).expect("parses")
}

/// CN, OU x2, O, C subject and DNS / IP / URI / email SANs.
fn rich_cert() -> CertificateDer<'static> {
    make(|p| {
        p.distinguished_name.push(DnType::CountryName, "DE");
        p.distinguished_name
            .push(DnType::OrganizationName, "mtls fixtures");
        p.distinguished_name
            .push(DnType::OrganizationalUnitName, "payments");
        // rcgen keeps one value per type; a custom type with the OU OID adds a second OU.
        p.distinguished_name
            .push(DnType::CustomDnType(OID_OU_ARCS.to_vec()), "backend");
        p.distinguished_name.push(DnType::CommonName, "client-rsa");
        p.subject_alt_names = vec![
            SanType::DnsName(ia5("api.example.org")),
            SanType::DnsName(ia5("*.svc.local")),
            SanType::IpAddress("10.1.2.3".parse().expect("ip")),
            SanType::IpAddress("2001:db8::1".parse().expect("ip")),
            SanType::URI(ia5("spiffe://prod.example.org/ns/api/sa/api")),
            SanType::URI(ia5("https://example.org/x")),
            SanType::Rfc822Name(ia5("ops@example.org")),
        ];
        p.serial_number = Some(SerialNumber::from(vec![0x00, 0x9a, 0x01, 0xff]));
        let mut ext = CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 4, 1, 99999, 1],
            vec![0x04, 0x02, 0xca, 0xfe],
        );
        ext.set_criticality(false);
        p.custom_extensions.push(ext);
        p.not_before = time::macros::datetime!(2026-01-01 00:00:00 UTC);
        p.not_after = time::macros::datetime!(2027-06-30 12:34:56 UTC);
    })
}

#[test]
fn parses_names_sans_and_digests() {
    let der = rich_cert();
    let id = peer(&der);
    assert_eq!(
        id.subject(),
        "CN=client-rsa,OU=backend,OU=payments,O=mtls fixtures,C=DE"
    );
    assert_eq!(id.issuer(), id.subject());
    assert_eq!(id.common_name(), Some("client-rsa"));
    assert_eq!(id.organizations(), ["mtls fixtures"]);
    assert_eq!(id.organization(), Some("mtls fixtures"));
    assert_eq!(id.org_units(), ["backend", "payments"]);
    assert_eq!(id.dns_names(), ["api.example.org", "*.svc.local"]);
    let ips: Vec<IpAddr> = vec![
        "10.1.2.3".parse().expect("ip"),
        "2001:db8::1".parse().expect("ip"),
    ];
    assert_eq!(id.ip_addresses(), ips.as_slice());
    assert_eq!(
        id.uris(),
        [
            "spiffe://prod.example.org/ns/api/sa/api",
            "https://example.org/x"
        ]
    );
    assert_eq!(id.emails(), ["ops@example.org"]);
    let spiffe = id.spiffe_id().expect("spiffe id");
    assert_eq!(spiffe.trust_domain(), "prod.example.org");
    assert_eq!(id.require_spiffe_id(), Ok(spiffe));
    assert_eq!(id.serial(), "9A01FF");
    assert_eq!(
        id.not_before(),
        UNIX_EPOCH + Duration::from_secs(1_767_225_600)
    );
    assert_eq!(
        id.not_after(),
        UNIX_EPOCH + Duration::from_secs(1_814_358_896)
    );
    let fp: [u8; 32] = Sha256::digest(der.as_ref()).into();
    assert_eq!(id.fingerprint_sha256_bytes(), &fp);
    assert_eq!(id.fingerprint_sha256(), hex_lower(&fp));
    assert_eq!(id.spki_sha256().len(), 64);
    assert_ne!(id.spki_sha256(), id.fingerprint_sha256());
    assert_eq!(id.leaf_der(), der.as_ref());
    assert_eq!(id.chain().len(), 1);
    assert_eq!(id.generation(), 0);

    let ext = id
        .extension("1.3.6.1.4.1.99999.1")
        .expect("custom extension");
    assert!(!ext.critical());
    assert_eq!(ext.value(), [0x04, 0x02, 0xca, 0xfe]);
    assert_eq!(ext.oid(), "1.3.6.1.4.1.99999.1");
    assert!(
        id.extension("2.5.29.17").is_some(),
        "subjectAltName is listed"
    );
    assert!(id.extension("1.2.3.4").is_none());

    let dbg = format!("{id:?}");
    assert!(dbg.contains("CN=client-rsa"), "{dbg}");
    assert!(dbg.len() < 1500, "Debug must not dump DER: {dbg}");
}

#[test]
fn spki_pin_is_the_same_for_a_reissued_certificate() {
    let key = KeyPair::generate().expect("key");
    let a = CertificateParams::new(vec!["a.example".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let b = CertificateParams::new(vec!["b.example".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let (a, b) = (peer(a.der()), peer(b.der()));
    assert_eq!(a.spki_sha256(), b.spki_sha256());
    assert_ne!(a.fingerprint_sha256(), b.fingerprint_sha256());
    let spki: [u8; 32] = Sha256::digest(rcgen::PublicKeyData::subject_public_key_info(&key)).into();
    assert_eq!(a.spki_sha256_bytes(), &spki);
}

#[test]
fn chain_is_kept_and_generation_can_be_set() {
    let leaf = rich_cert();
    let other = make(|p| p.distinguished_name.push(DnType::CommonName, "ca"));
    let mut id = PeerIdentity::from_chain(&[leaf.clone(), other.clone()]).expect("parses");
    assert_eq!(id.chain(), [leaf.clone(), other.clone()]);
    assert_eq!(id.common_name(), Some("client-rsa"));
    id.set_generation(7);
    assert_eq!(id.generation(), 7);
    let parts = PeerIdentity::from_parts(&leaf, std::slice::from_ref(&other)).expect("parses");
    assert_eq!(parts.chain(), id.chain());
}

#[test]
fn errors_say_what_is_wrong() {
    assert_eq!(
        PeerIdentity::from_chain(&[]).unwrap_err(),
        IdentityError::EmptyChain
    );
    let garbage = CertificateDer::from(vec![0x30, 0x03, 0x01, 0x02]);
    let err = PeerIdentity::from_chain(&[garbage]).unwrap_err();
    assert!(matches!(err, IdentityError::NotX509 { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("the peer's leaf certificate is not X.509 DER: ")
    );

    let pem = CertificateDer::from(b"-----BEGIN CERTIFICATE-----\nMIIB\n".to_vec());
    assert_eq!(
        PeerIdentity::from_chain(&[pem]).unwrap_err().to_string(),
        "the peer's leaf certificate is not X.509 DER: it is PEM text; decode the PEM to DER first"
    );
    let empty = CertificateDer::from(Vec::new());
    assert_eq!(
        PeerIdentity::from_chain(&[empty]).unwrap_err().to_string(),
        "the peer's leaf certificate is not X.509 DER: the certificate is empty (0 bytes)"
    );

    let mut trailing = rich_cert().to_vec();
    trailing.extend_from_slice(&[0, 0, 0]);
    assert_eq!(
        PeerIdentity::from_chain(&[CertificateDer::from(trailing)])
            .unwrap_err()
            .to_string(),
        "the peer's leaf certificate has 3 bytes of trailing data after the X.509 structure"
    );

    // Truncations and bit flips never panic.
    let der = rich_cert().to_vec();
    for len in 0..der.len() {
        let _ = PeerIdentity::from_chain(&[CertificateDer::from(der[..len].to_vec())]);
    }
    for i in 0..der.len() {
        let mut d = der.clone();
        d[i] ^= 0x55;
        let _ = PeerIdentity::from_chain(&[CertificateDer::from(d)]);
    }
}

fn with_uris(uris: &[&str]) -> PeerIdentity {
    let der = make(|p| {
        p.subject_alt_names = uris.iter().map(|u| SanType::URI(ia5(u))).collect();
    });
    peer(&der)
}

#[test]
fn malformed_spiffe_uris_give_no_spiffe_id() {
    for (uri, why) in [
        (
            "spiffe://Bad_Domain/x",
            SpiffeIdError::BadTrustDomainChar { ch: 'B' },
        ),
        ("spiffe://td/a//b", SpiffeIdError::EmptySegment),
        ("spiffe://td/../x", SpiffeIdError::DotSegment),
        ("spiffe://td?x", SpiffeIdError::Query),
        ("SPIFFE://td/x", SpiffeIdError::WrongScheme),
    ] {
        let id = with_uris(&[uri, "https://example.org"]);
        assert_eq!(id.spiffe_id(), None, "{uri}");
        assert_eq!(
            id.require_spiffe_id(),
            Err(SpiffeIdError::InvalidInCertificate {
                uri: uri.to_owned(),
                reason: Box::new(why),
            }),
            "{uri}"
        );
        assert_eq!(id.uris()[0], uri, "the URI SAN itself is still listed");
    }
    let err = with_uris(&["spiffe://td/../x"])
        .require_spiffe_id()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the certificate's URI SAN \"spiffe://td/../x\" is not a valid SPIFFE ID: \
         SPIFFE ID path must not contain `.` or `..` segments"
    );
}

#[test]
fn two_spiffe_ids_give_none() {
    let id = with_uris(&["spiffe://td/a", "spiffe://td/b"]);
    assert_eq!(id.spiffe_id(), None);
    let err = id.require_spiffe_id().unwrap_err();
    assert_eq!(
        err.to_string(),
        "the certificate has 2 URI SANs starting with spiffe:// (spiffe://td/a, spiffe://td/b); \
         an X.509-SVID must have exactly one"
    );
    let none = with_uris(&["https://example.org"]);
    assert_eq!(
        none.require_spiffe_id(),
        Err(SpiffeIdError::NotInCertificate)
    );
    assert_eq!(
        none.require_spiffe_id().unwrap_err().to_string(),
        "the certificate has no SPIFFE ID (no URI SAN starting with spiffe://)"
    );
}

#[test]
fn own_subject_is_already_normalized() {
    // Our own output is already normal.
    let id = peer(&rich_cert());
    assert_eq!(normalize_dn(id.subject()).as_deref(), Ok(id.subject()));
}

#[test]
fn extractors() {
    let id = Arc::new(peer(&rich_cert()));
    let same = DefaultExtractor.extract(&id).expect("default");
    assert!(Arc::ptr_eq(&same, &id));

    let by_cn = |p: &Arc<PeerIdentity>| -> Result<String, ExtractError> {
        p.common_name()
            .map(str::to_owned)
            .ok_or_else(|| ExtractError::new("no CN"))
    };
    assert_eq!(by_cn.extract(&id).expect("cn"), "client-rsa");

    fn takes<E: IdentityExtractor>(
        e: &E,
        p: &Arc<PeerIdentity>,
    ) -> Result<E::Principal, ExtractError> {
        e.extract(p)
    }
    let no_spiffe = Arc::new(with_uris(&[]));
    let spiffe = |p: &Arc<PeerIdentity>| {
        p.require_spiffe_id()
            .cloned()
            .map_err(ExtractError::from_error)
    };
    let err = takes(&spiffe, &no_spiffe).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the certificate has no SPIFFE ID (no URI SAN starting with spiffe://)"
    );
    assert!(
        std::error::Error::source(&err).is_none(),
        "message not repeated by source()"
    );
    let err = ExtractError::with_source("tenant lookup failed", std::io::Error::other("db down"));
    assert_eq!(err.to_string(), "tenant lookup failed");
    assert_eq!(
        std::error::Error::source(&err).map(ToString::to_string),
        Some("db down".to_owned())
    );
}

#[cfg(feature = "serde")]
#[test]
fn serializes_to_json() {
    let id = peer(&rich_cert());
    let v = serde_json::to_value(&id).expect("json");
    assert_eq!(
        v["subject"],
        "CN=client-rsa,OU=backend,OU=payments,O=mtls fixtures,C=DE"
    );
    assert_eq!(v["common_name"], "client-rsa");
    assert_eq!(v["org_units"], serde_json::json!(["backend", "payments"]));
    assert_eq!(
        v["ip_addresses"],
        serde_json::json!(["10.1.2.3", "2001:db8::1"])
    );
    assert_eq!(v["spiffe_id"], "spiffe://prod.example.org/ns/api/sa/api");
    assert_eq!(v["serial"], "9A01FF");
    assert_eq!(v["not_before"], "2026-01-01T00:00:00Z");
    assert_eq!(v["not_after"], "2027-06-30T12:34:56Z");
    assert_eq!(v["generation"], 0);
    assert_eq!(v["fingerprint_sha256"], id.fingerprint_sha256());
    assert_eq!(v["spki_sha256"], id.spki_sha256());
    let keys: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 16, "{keys:?}");
    assert!(v.get("chain").is_none());
    assert_eq!(with_uris(&[]).spiffe_id(), None);
    assert!(serde_json::to_value(with_uris(&[])).expect("json")["spiffe_id"].is_null());
}

// --- comparison with the openssl command line ---

/// Runs `openssl x509` on `der`; `None` (with a note) if openssl is not installed, unless
/// `MTLS_REQUIRE_PEERS=1`.
fn openssl_x509(der: &[u8]) -> Option<String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("cert.der");
    std::fs::write(&path, der).expect("write cert");
    let out = Command::new("openssl")
        .args([
            "x509", "-inform", "DER", "-noout", "-subject", "-nameopt", "RFC2253",
        ])
        .args([
            "-serial",
            "-fingerprint",
            "-sha256",
            "-ext",
            "subjectAltName",
            "-in",
        ])
        .arg(&path)
        .output();
    match out {
        Ok(out) => {
            assert!(
                out.status.success(),
                "openssl failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(String::from_utf8(out.stdout).expect("utf-8"))
        }
        Err(e) if std::env::var_os("MTLS_REQUIRE_PEERS").is_some_and(|v| v == "1") => {
            panic!("openssl is required (MTLS_REQUIRE_PEERS=1) but could not run: {e}")
        }
        Err(e) => {
            eprintln!("skipped: openssl not available ({e})");
            None
        }
    }
}

fn field<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line in {out}"))
}

fn assert_same_as_openssl(der: &CertificateDer<'static>) {
    let Some(out) = openssl_x509(der) else { return };
    let id = peer(der);
    assert_eq!(id.subject(), field(&out, "subject="), "{out}");
    assert_eq!(id.serial(), field(&out, "serial="), "{out}");
    let fp = out
        .lines()
        .find_map(|l| l.split_once("Fingerprint=").map(|(_, v)| v))
        .expect("fingerprint line");
    assert_eq!(
        id.fingerprint_sha256(),
        fp.replace(':', "").to_ascii_lowercase()
    );

    let san_line = out
        .lines()
        .skip_while(|l| !l.contains("Subject Alternative Name"))
        .nth(1)
        .unwrap_or("")
        .trim();
    let (mut dns, mut ips, mut uris, mut emails) = (vec![], vec![], vec![], vec![]);
    for item in san_line.split(", ").filter(|s| !s.is_empty()) {
        if let Some(v) = item.strip_prefix("DNS:") {
            dns.push(v.to_owned());
        } else if let Some(v) = item.strip_prefix("IP Address:") {
            ips.push(v.parse::<IpAddr>().expect("openssl IP"));
        } else if let Some(v) = item.strip_prefix("URI:") {
            uris.push(v.to_owned());
        } else if let Some(v) = item.strip_prefix("email:") {
            emails.push(v.to_owned());
        } else {
            panic!("unexpected SAN {item:?}");
        }
    }
    assert_eq!(id.dns_names(), dns.as_slice());
    assert_eq!(id.ip_addresses(), ips.as_slice());
    assert_eq!(id.uris(), uris.as_slice());
    assert_eq!(id.emails(), emails.as_slice());
}

#[test]
fn matches_openssl_for_an_rcgen_certificate() {
    assert_same_as_openssl(&rich_cert());
}

#[test]
fn matches_openssl_for_escapes_and_multi_valued_rdns() {
    // rcgen cannot write multi-valued RDNs; let openssl make this one.
    let dir = tempfile::tempdir().expect("temp dir");
    let cert = dir.path().join("c.der");
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-multivalue-rdn", "-outform", "DER"])
        .args(["-set_serial", "0x00ff01"])
        .args([
            "-subj",
            "/DC=org/C=US/O=Acme\\, Inc.;x/OU=b+CN=a/CN=#x<y> \"q\"\\\\z ",
        ])
        .args([
            "-addext",
            "subjectAltName=DNS:a.example,IP:2001:db8::1,URI:spiffe://td/x,email:A@B.org",
        ])
        .arg("-keyout")
        .arg(dir.path().join("k.pem"))
        .arg("-out")
        .arg(&cert)
        .output();
    match status {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "openssl req failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => {
            if std::env::var_os("MTLS_REQUIRE_PEERS").is_some_and(|v| v == "1") {
                panic!("openssl is required but could not run: {e}");
            }
            eprintln!("skipped: openssl not available ({e})");
            return;
        }
    }
    let der = CertificateDer::from(std::fs::read(&cert).expect("read cert"));
    let id = peer(&der);
    assert_eq!(
        id.subject(),
        "CN=\\#x\\<y\\> \\\"q\\\"\\\\z\\ ,OU=b+CN=a,O=Acme\\, Inc.\\;x,C=US,DC=org"
    );
    assert_eq!(id.common_name(), Some("#x<y> \"q\"\\z "));
    assert_eq!(id.serial(), "FF01");
    assert_same_as_openssl(&der);
}
