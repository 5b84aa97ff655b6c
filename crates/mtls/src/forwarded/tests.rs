#![allow(clippy::unwrap_used, clippy::expect_used)]

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use sha2::{Digest, Sha256};

use super::text::{base64_encode, pem_encode, percent_encode};
use super::*;

// === fixtures ===

/// Leaf (`CN=worker`, signed by the intermediate) and intermediate.
fn chain() -> Vec<CertificateDer<'static>> {
    let pki = mtls_testing::TestPki::new();
    let (leaf, _) = pki.client("worker");
    leaf.chain_der()
        .into_iter()
        .map(CertificateDer::from)
        .collect()
}

/// Leaf, intermediate and root.
fn chain_with_root() -> Vec<CertificateDer<'static>> {
    let pki = mtls_testing::TestPki::new();
    let (leaf, _) = pki.client("worker");
    let mut c: Vec<CertificateDer<'static>> = leaf
        .chain_der()
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    c.push(CertificateDer::from(pki.root.cert_der()));
    c
}

fn other_leaf() -> CertificateDer<'static> {
    let pki = mtls_testing::TestPki::new();
    let (leaf, _) = pki.client("intruder");
    CertificateDer::from(leaf.cert_der())
}

fn pem_of(certs: &[CertificateDer<'_>]) -> String {
    let mut s = String::new();
    for c in certs {
        pem_encode(c, &mut s);
    }
    s
}

fn url(s: &str) -> String {
    let mut out = String::new();
    percent_encode(s.as_bytes(), &mut out);
    out
}

/// Envoy before `PercentEncoding::urlEncode`: only `\n`, space, `+`, `/` and `=` replaced.
fn envoy_old_url(s: &str) -> String {
    s.replace('\n', "%0A")
        .replace(' ', "%20")
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

fn dec(
    format: HeaderFormat,
    v: &str,
    chain: Option<&str>,
) -> Result<ForwardedCert, ForwardedError> {
    decode(format, v.as_bytes(), chain.map(str::as_bytes))
}

fn ok(format: HeaderFormat, v: &str, chain: Option<&str>) -> ForwardedCert {
    match dec(format, v, chain) {
        Ok(f) => f,
        Err(e) => panic!("{format}: {e}"),
    }
}

/// RFC 9440 Appendix A: the client certificate, the intermediate and the root.
const RFC9440_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBqDCCAU6gAwIBAgIBBzAKBggqhkjOPQQDAjA6MRswGQYDVQQKDBJMZXQncyBB
dXRoZW50aWNhdGUxGzAZBgNVBAMMEkxBIEludGVybWVkaWF0ZSBDQTAeFw0yMDAx
MTQyMjU1MzNaFw0yMTAxMjMyMjU1MzNaMA0xCzAJBgNVBAMMAkJDMFkwEwYHKoZI
zj0CAQYIKoZIzj0DAQcDQgAE8YnXXfaUgmnMtOXU/IncWalRhebrXmckC8vdgJ1p
5Be5F/3YC8OthxM4+k1M6aEAEFcGzkJiNy6J84y7uzo9M6NyMHAwCQYDVR0TBAIw
ADAfBgNVHSMEGDAWgBRm3WjLa38lbEYCuiCPct0ZaSED2DAOBgNVHQ8BAf8EBAMC
BsAwEwYDVR0lBAwwCgYIKwYBBQUHAwIwHQYDVR0RAQH/BBMwEYEPYmRjQGV4YW1w
bGUuY29tMAoGCCqGSM49BAMCA0gAMEUCIBHda/r1vaL6G3VliL4/Di6YK0Q6bMje
SkC3dFCOOB8TAiEAx/kHSB4urmiZ0NX5r5XarmPk0wmuydBVoU4hBVZ1yhk=
-----END CERTIFICATE-----
-----BEGIN CERTIFICATE-----
MIIB5jCCAYugAwIBAgIBFjAKBggqhkjOPQQDAjBWMQswCQYDVQQGEwJVUzEbMBkG
A1UECgwSTGV0J3MgQXV0aGVudGljYXRlMSowKAYDVQQDDCFMZXQncyBBdXRoZW50
aWNhdGUgUm9vdCBBdXRob3JpdHkwHhcNMjAwMTE0MjEzMjMwWhcNMzAwMTExMjEz
MjMwWjA6MRswGQYDVQQKDBJMZXQncyBBdXRoZW50aWNhdGUxGzAZBgNVBAMMEkxB
IEludGVybWVkaWF0ZSBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABJf+aA54
RC5pyLAR5yfXVYmNpgd+CGUTDp2KOGhc0gK91zxhHesEYkdXkpS2UN8Kati+yHtW
CV3kkhCngGyv7RqjZjBkMB0GA1UdDgQWBBRm3WjLa38lbEYCuiCPct0ZaSED2DAf
BgNVHSMEGDAWgBTEA2Q6eecKu9g9yb5glbkhhVINGDASBgNVHRMBAf8ECDAGAQH/
AgEAMA4GA1UdDwEB/wQEAwIBhjAKBggqhkjOPQQDAgNJADBGAiEA5pLvaFwRRkxo
mIAtDIwg9D7gC1xzxBl4r28EzmSO1pcCIQCJUShpSXO9HDIQMUgH69fNDEMHXD3R
RX5gP7kuu2KGMg==
-----END CERTIFICATE-----
-----BEGIN CERTIFICATE-----
MIICBjCCAaygAwIBAgIJAKS0yiqKtlhoMAoGCCqGSM49BAMCMFYxCzAJBgNVBAYT
AlVTMRswGQYDVQQKDBJMZXQncyBBdXRoZW50aWNhdGUxKjAoBgNVBAMMIUxldCdz
IEF1dGhlbnRpY2F0ZSBSb290IEF1dGhvcml0eTAeFw0yMDAxMTQyMTI1NDVaFw00
MDAxMDkyMTI1NDVaMFYxCzAJBgNVBAYTAlVTMRswGQYDVQQKDBJMZXQncyBBdXRo
ZW50aWNhdGUxKjAoBgNVBAMMIUxldCdzIEF1dGhlbnRpY2F0ZSBSb290IEF1dGhv
cml0eTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABFoaHU+Z5bPKmGzlYXtCf+E6
HYj62fORaHDOrt+yyh3H/rTcs7ynFfGn+gyFsrSP3Ez88rajv+U2NfD0o0uZ4Pmj
YzBhMB0GA1UdDgQWBBTEA2Q6eecKu9g9yb5glbkhhVINGDAfBgNVHSMEGDAWgBTE
A2Q6eecKu9g9yb5glbkhhVINGDAPBgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB/wQE
AwIBhjAKBggqhkjOPQQDAgNIADBFAiEAmAeg1ycKHriqHnaD4M/UDBpQRpkmdcRF
YGMg1Qyrkx4CIB4ivz3wQcQkGhcsUZ1SOImd/lq1Q0FLf09rGfLQPWDc
-----END CERTIFICATE-----
";

/// RFC 9440 Appendix A, Figure 2, as printed (line breaks and spaces "for display only").
const RFC9440_CLIENT_CERT: &str = ":MIIBqDCCAU6gAwIBAgIBBzAKBggqhkjOPQQDAjA6MRswGQYDVQQKDBJ
 MZXQncyBBdXRoZW50aWNhdGUxGzAZBgNVBAMMEkxBIEludGVybWVkaWF0ZSBDQTAeFw0
 yMDAxMTQyMjU1MzNaFw0yMTAxMjMyMjU1MzNaMA0xCzAJBgNVBAMMAkJDMFkwEwYHKoZ
 Izj0CAQYIKoZIzj0DAQcDQgAE8YnXXfaUgmnMtOXU/IncWalRhebrXmckC8vdgJ1p5Be
 5F/3YC8OthxM4+k1M6aEAEFcGzkJiNy6J84y7uzo9M6NyMHAwCQYDVR0TBAIwADAfBgN
 VHSMEGDAWgBRm3WjLa38lbEYCuiCPct0ZaSED2DAOBgNVHQ8BAf8EBAMCBsAwEwYDVR0
 lBAwwCgYIKwYBBQUHAwIwHQYDVR0RAQH/BBMwEYEPYmRjQGV4YW1wbGUuY29tMAoGCCq
 GSM49BAMCA0gAMEUCIBHda/r1vaL6G3VliL4/Di6YK0Q6bMjeSkC3dFCOOB8TAiEAx/k
 HSB4urmiZ0NX5r5XarmPk0wmuydBVoU4hBVZ1yhk=:";

/// RFC 9440 Appendix A, Figure 3, as printed.
const RFC9440_CLIENT_CERT_CHAIN: &str = ":MIIB5jCCAYugAwIBAgIBFjAKBggqhkjOPQQDAjBWMQsw
 CQYDVQQGEwJVUzEbMBkGA1UECgwSTGV0J3MgQXV0aGVudGljYXRlMSowKAYDVQQ
 DDCFMZXQncyBBdXRoZW50aWNhdGUgUm9vdCBBdXRob3JpdHkwHhcNMjAwMTE0Mj
 EzMjMwWhcNMzAwMTExMjEzMjMwWjA6MRswGQYDVQQKDBJMZXQncyBBdXRoZW50a
 WNhdGUxGzAZBgNVBAMMEkxBIEludGVybWVkaWF0ZSBDQTBZMBMGByqGSM49AgEG
 CCqGSM49AwEHA0IABJf+aA54RC5pyLAR5yfXVYmNpgd+CGUTDp2KOGhc0gK91zx
 hHesEYkdXkpS2UN8Kati+yHtWCV3kkhCngGyv7RqjZjBkMB0GA1UdDgQWBBRm3W
 jLa38lbEYCuiCPct0ZaSED2DAfBgNVHSMEGDAWgBTEA2Q6eecKu9g9yb5glbkhh
 VINGDASBgNVHRMBAf8ECDAGAQH/AgEAMA4GA1UdDwEB/wQEAwIBhjAKBggqhkjO
 PQQDAgNJADBGAiEA5pLvaFwRRkxomIAtDIwg9D7gC1xzxBl4r28EzmSO1pcCIQC
 JUShpSXO9HDIQMUgH69fNDEMHXD3RRX5gP7kuu2KGMg==:, :MIICBjCCAaygAw
 IBAgIJAKS0yiqKtlhoMAoGCCqGSM49BAMCMFYxCzAJBgNVBAYTAlVTMRswGQYDV
 QQKDBJMZXQncyBBdXRoZW50aWNhdGUxKjAoBgNVBAMMIUxldCdzIEF1dGhlbnRp
 Y2F0ZSBSb290IEF1dGhvcml0eTAeFw0yMDAxMTQyMTI1NDVaFw00MDAxMDkyMTI
 1NDVaMFYxCzAJBgNVBAYTAlVTMRswGQYDVQQKDBJMZXQncyBBdXRoZW50aWNhdG
 UxKjAoBgNVBAMMIUxldCdzIEF1dGhlbnRpY2F0ZSBSb290IEF1dGhvcml0eTBZM
 BMGByqGSM49AgEGCCqGSM49AwEHA0IABFoaHU+Z5bPKmGzlYXtCf+E6HYj62fOR
 aHDOrt+yyh3H/rTcs7ynFfGn+gyFsrSP3Ez88rajv+U2NfD0o0uZ4PmjYzBhMB0
 GA1UdDgQWBBTEA2Q6eecKu9g9yb5glbkhhVINGDAfBgNVHSMEGDAWgBTEA2Q6ee
 cKu9g9yb5glbkhhVINGDAPBgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB/wQEAwIBh
 jAKBggqhkjOPQQDAgNIADBFAiEAmAeg1ycKHriqHnaD4M/UDBpQRpkmdcRFYGMg
 1Qyrkx4CIB4ivz3wQcQkGhcsUZ1SOImd/lq1Q0FLf09rGfLQPWDc:";

/// Removes the display line breaks ("\n ") of an RFC figure.
fn unfold(s: &str) -> String {
    s.replace("\n ", "")
}

fn rfc9440_chain() -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(RFC9440_PEM.as_bytes())
        .collect::<Result<_, _>>()
        .expect("RFC 9440 example PEM")
}

// === HeaderFormat ===

#[test]
fn names_round_trip_and_default_headers() {
    for f in HeaderFormat::ALL {
        assert_eq!(HeaderFormat::from_name(f.name()), Some(f));
        assert_eq!(HeaderFormat::from_name(&f.name().to_uppercase()), Some(f));
        assert_eq!(f.to_string(), f.name());
        assert_eq!(f.default_header(), f.default_header().to_lowercase());
    }
    assert_eq!(HeaderFormat::from_name("envoy"), None);
    assert_eq!(HeaderFormat::Rfc9440.default_header(), "client-cert");
    assert_eq!(
        HeaderFormat::Rfc9440.default_chain_header(),
        Some("client-cert-chain")
    );
    assert_eq!(
        HeaderFormat::Xfcc.default_header(),
        "x-forwarded-client-cert"
    );
    assert_eq!(
        HeaderFormat::Haproxy.default_chain_header(),
        Some("x-ssl-client-chain")
    );
    assert_eq!(
        HeaderFormat::Traefik.default_header(),
        "x-forwarded-tls-client-cert"
    );
    assert_eq!(HeaderFormat::Alb.default_header(), "x-amzn-mtls-clientcert");
    assert_eq!(HeaderFormat::Alb.default_chain_header(), None);
}

// === RFC 9440 ===

#[test]
fn rfc9440_appendix_example() {
    let want = rfc9440_chain();
    assert_eq!(want.len(), 3);
    let got = ok(
        HeaderFormat::Rfc9440,
        &unfold(RFC9440_CLIENT_CERT),
        Some(&unfold(RFC9440_CLIENT_CERT_CHAIN)),
    );
    assert_eq!(got.chain, want);
    assert_eq!(got.by, None);
    assert_eq!(got.hash, None);
    // The example's leaf has an rfc822Name SAN.
    let id = got.peer_identity().unwrap();
    assert_eq!(id.emails(), ["bdc@example.com"]);
    assert_eq!(id.common_name(), Some("BC"));
}

#[test]
fn rfc9440_encode_matches_the_appendix() {
    let (cert, chain) = encode_rfc9440(&rfc9440_chain());
    assert_eq!(cert, unfold(RFC9440_CLIENT_CERT));
    assert_eq!(
        chain.as_deref(),
        Some(unfold(RFC9440_CLIENT_CERT_CHAIN).as_str())
    );
}

#[test]
fn rfc9440_round_trip() {
    for c in [chain(), chain_with_root(), chain()[..1].to_vec()] {
        let (cert, rest) = encode_rfc9440(&c);
        assert_eq!(rest.is_some(), c.len() > 1);
        let got = ok(HeaderFormat::Rfc9440, &cert, rest.as_deref());
        assert_eq!(got.chain, c);
    }
    assert_eq!(encode_rfc9440(&[]), (String::new(), None));
}

#[test]
fn rfc9440_chain_lines_joined_and_leaf_repeated() {
    let c = chain_with_root();
    let items: Vec<String> = c
        .iter()
        .map(|d| format!(":{}:", base64_encode(d)))
        .collect();
    // Two header lines of Client-Cert-Chain, joined by the caller with ", ".
    let joined = format!("{}, {}", items[1], items[2]);
    assert_eq!(ok(HeaderFormat::Rfc9440, &items[0], Some(&joined)).chain, c);
    // A chain in full TLS order (leaf first) does not repeat the leaf.
    let full = items.join(",\t");
    assert_eq!(ok(HeaderFormat::Rfc9440, &items[0], Some(&full)).chain, c);
    // Missing `=` padding is accepted (RFC 8941 §3.3.5).
    let unpadded = items[0].replace('=', "");
    assert_eq!(ok(HeaderFormat::Rfc9440, &unpadded, None).chain, c[..1]);
    // An absent chain header value is no intermediates.
    assert_eq!(ok(HeaderFormat::Rfc9440, &items[0], Some("")).chain, c[..1]);
}

#[test]
fn rfc9440_malformed() {
    let c = chain();
    let item = format!(":{}:", base64_encode(&c[0]));
    let pem = pem_of(&c[..1]);
    let cases: &[(&str, Option<&str>, &str)] = &[
        (&pem, None, "it is PEM"),
        (&base64_encode(&c[0]), None, "not an RFC 8941 byte sequence"),
        (
            &format!("{item};a=1"),
            None,
            "not an RFC 8941 byte sequence",
        ),
        (
            &format!("{item}, {item}"),
            None,
            "parameters or a second item",
        ),
        (":AAAA*AAA:", None, "outside the base64 alphabet"),
        (&item, Some(&format!("{item},")), "empty member"),
        (&item, Some(&format!("{item},,{item}")), "empty member"),
    ];
    for (v, chain, want) in cases {
        let e = dec(HeaderFormat::Rfc9440, v, *chain).unwrap_err();
        assert!(
            matches!(e, ForwardedError::Malformed { .. }) && e.to_string().contains(want),
            "{v:.40}: {e}"
        );
        assert!(e.to_string().contains("RFC 9440"), "{e}");
    }
    // Valid base64 of something that is not a certificate.
    let e = dec(HeaderFormat::Rfc9440, ":aGVsbG8gd29ybGQ=:", None).unwrap_err();
    assert!(matches!(
        e,
        ForwardedError::NotCertificate {
            index: 1,
            header: HeaderKind::Cert,
            ..
        }
    ));
    let e = dec(HeaderFormat::Rfc9440, &item, Some(":aGVsbG8=:")).unwrap_err();
    assert!(matches!(
        e,
        ForwardedError::NotCertificate {
            header: HeaderKind::Chain,
            ..
        }
    ));
}

// === XFCC ===

/// Envoy's documentation examples (headers.rst, "x-forwarded-client-cert"): hashes and
/// names only, no Cert.
const ENVOY_DOC_EXAMPLES: [(&str, usize); 3] = [
    (
        "By=http://frontend.lyft.com;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;Subject=\"/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client\";URI=http://testclient.lyft.com",
        1,
    ),
    (
        "By=http://frontend.lyft.com;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;URI=http://testclient.lyft.com,By=http://backend.lyft.com;Hash=9ba61d6425303443c0748a02dd8de688468ed33be74eee6556d90c0149c1309e;URI=http://frontend.lyft.com",
        2,
    ),
    (
        "By=http://frontend.lyft.com;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;Subject=\"/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client\";URI=http://testclient.lyft.com;DNS=lyft.com;DNS=www.lyft.com",
        1,
    ),
];

#[test]
fn xfcc_envoy_doc_examples_have_no_cert() {
    for (v, elements) in ENVOY_DOC_EXAMPLES {
        let e = dec(HeaderFormat::Xfcc, v, None).unwrap_err();
        assert_eq!(
            e,
            ForwardedError::XfccNoCert {
                element: elements,
                elements
            }
        );
        let msg = e.to_string();
        assert!(
            msg.contains("forward_client_cert_details: SANITIZE_SET"),
            "{msg}"
        );
        assert!(
            msg.contains("set_current_client_cert_details: { cert: true, chain: true }"),
            "{msg}"
        );
    }
}

/// The doc examples with the Cert and Chain that Envoy adds when asked to, at the end as
/// `mutateXfccRequestHeader` writes them.
#[test]
fn xfcc_envoy_doc_examples_with_cert() {
    let c = chain();
    let hash = data_encoding::HEXLOWER.encode(&Sha256::digest(&c[0]));
    let cert = url(&pem_of(&c[..1]));
    let full = url(&pem_of(&c));
    let v = format!(
        "By=http://frontend.lyft.com;Hash={hash};Cert=\"{cert}\";Chain=\"{full}\";\
         Subject=\"/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client\";\
         URI=http://testclient.lyft.com;DNS=lyft.com;DNS=www.lyft.com"
    );
    let got = ok(HeaderFormat::Xfcc, &v, None);
    assert_eq!(got.chain, c);
    assert_eq!(got.by.as_deref(), Some("http://frontend.lyft.com"));
    assert_eq!(
        got.hash.map(|h| data_encoding::HEXLOWER.encode(&h)),
        Some(hash)
    );
}

#[test]
fn xfcc_round_trip() {
    for c in [chain(), chain_with_root(), chain()[..1].to_vec()] {
        let v = encode_xfcc(&c, Some("spiffe://prod.example/ns/edge/sa/envoy"));
        let got = ok(HeaderFormat::Xfcc, &v, None);
        assert_eq!(got.chain, c);
        assert_eq!(
            got.by.as_deref(),
            Some("spiffe://prod.example/ns/edge/sa/envoy")
        );
        let want: [u8; 32] = Sha256::digest(&c[0]).into();
        assert_eq!(got.hash, Some(want));
        assert_eq!(v.contains("Chain="), c.len() > 1);
        // Without By.
        assert_eq!(
            ok(HeaderFormat::Xfcc, &encode_xfcc(&c, None), None).chain,
            c
        );
    }
    assert_eq!(encode_xfcc(&[], None), "");
    assert_eq!(encode_xfcc(&[], Some("a")), "By=a");
}

#[test]
fn xfcc_quoting() {
    let c = chain();
    // A By that needs quotes round-trips.
    let by = "urn:a;b,c=\"d\"\\e";
    let v = encode_xfcc(&c, Some(by));
    assert!(v.starts_with("By=\"urn:a;b,c=\\\"d\\\"\\\\e\";"), "{v}");
    assert_eq!(ok(HeaderFormat::Xfcc, &v, None).by.as_deref(), Some(by));

    // Keys are case-insensitive; a quoted Subject with `\"`, `,` and `;` in it; a Cert in
    // the old Envoy encoding, unquoted (no `,` `;` `=` left in it).
    let cert = envoy_old_url(&pem_of(&c[..1]));
    let v = format!("by=spiffe://a;SUBJECT=\"CN=\\\"x\\\", O=y; z\";cert={cert};uri=spiffe://b");
    let got = ok(HeaderFormat::Xfcc, &v, None);
    assert_eq!(got.chain, c[..1]);
    assert_eq!(got.by.as_deref(), Some("spiffe://a"));
    assert_eq!(got.hash, None);
}

#[test]
fn xfcc_last_element_is_the_nearest_proxy() {
    let c = chain();
    let forged = encode_xfcc(&[other_leaf()], Some("spiffe://client/forged"));
    let real = encode_xfcc(&c, Some("spiffe://edge/envoy"));
    // APPEND_FORWARD: the client's own header, then the proxy's element.
    for sep in [",", ", "] {
        let got = ok(HeaderFormat::Xfcc, &format!("{forged}{sep}{real}"), None);
        assert_eq!(got.chain, c);
        assert_eq!(got.by.as_deref(), Some("spiffe://edge/envoy"));
    }
    // Three elements: the middle one without Cert, the last with.
    let v = format!("{}, {forged}, {real}", ENVOY_DOC_EXAMPLES[0].0);
    assert_eq!(ok(HeaderFormat::Xfcc, &v, None).chain, c);
    // The last one without Cert fails even if an earlier one has one.
    let v = format!("{real},{}", ENVOY_DOC_EXAMPLES[0].0);
    assert_eq!(
        dec(HeaderFormat::Xfcc, &v, None).unwrap_err(),
        ForwardedError::XfccNoCert {
            element: 2,
            elements: 2
        }
    );
}

#[test]
fn xfcc_earlier_element_cannot_hide_the_separator() {
    let c = chain();
    let real = encode_xfcc(&c, Some("spiffe://edge/envoy"));
    // A client-written element with an open quote, or a trailing backslash in a quoted
    // value, would swallow the proxy's ',' if quotes were not tracked; either way the
    // header fails instead of yielding a certificate.
    for forged in [
        "By=x;Subject=\"",
        "By=x;Subject=\"a\\",
        "Cert=\"",
        "By=\"x\"y",
    ] {
        let e = dec(HeaderFormat::Xfcc, &format!("{forged},{real}"), None).unwrap_err();
        assert!(
            matches!(e, ForwardedError::Malformed { .. }),
            "{forged}: {e}"
        );
    }
}

#[test]
fn xfcc_hash_mismatch() {
    let c = chain();
    let v = encode_xfcc(&c, None);
    let good = data_encoding::HEXLOWER.encode(&Sha256::digest(&c[0]));
    let bad = data_encoding::HEXLOWER.encode(&Sha256::digest(other_leaf()));
    let e = dec(HeaderFormat::Xfcc, &v.replace(&good, &bad), None).unwrap_err();
    assert_eq!(
        e,
        ForwardedError::HashMismatch {
            expected: bad,
            actual: good.clone()
        }
    );
    // Uppercase hex is read too.
    let upper = v.replace(&good, &good.to_uppercase());
    assert!(dec(HeaderFormat::Xfcc, &upper, None).is_ok());
    // A Hash that is not 32 bytes of hex.
    for h in ["abc", "zz", &good[..62]] {
        let e = dec(HeaderFormat::Xfcc, &v.replace(&good, h), None).unwrap_err();
        assert!(matches!(e, ForwardedError::Malformed { .. }), "{h}: {e}");
    }
}

#[test]
fn xfcc_cert_and_chain_rules() {
    let c = chain();
    let cert = url(&pem_of(&c[..1]));
    let full = url(&pem_of(&c));
    // Chain alone: its first certificate is the leaf.
    assert_eq!(
        ok(HeaderFormat::Xfcc, &format!("Chain=\"{full}\""), None).chain,
        c
    );
    // Chain not starting with Cert.
    let other = url(&pem_of(&[other_leaf()]));
    let e = dec(
        HeaderFormat::Xfcc,
        &format!("Cert=\"{other}\";Chain=\"{full}\""),
        None,
    )
    .unwrap_err();
    assert_eq!(e, ForwardedError::ChainMismatch);
    // Two Cert keys; a Cert with two certificates.
    for v in [
        format!("Cert=\"{cert}\";cert=\"{cert}\""),
        format!("Cert=\"{full}\""),
    ] {
        let e = dec(HeaderFormat::Xfcc, &v, None).unwrap_err();
        assert!(matches!(e, ForwardedError::Malformed { .. }), "{e}");
    }
    // XFCC has no separate chain header.
    let e = dec(HeaderFormat::Xfcc, &format!("Cert=\"{cert}\""), Some("x")).unwrap_err();
    assert_eq!(
        e,
        ForwardedError::UnexpectedChain {
            format: HeaderFormat::Xfcc
        }
    );
}

#[test]
fn xfcc_malformed() {
    for v in [
        "Cert",
        "=x",
        "Cert=\"abc",
        "Cert=a\"b\"",
        "By=x;;Cert=y",
        "By=x,,Cert=y",
        "By=x;",
        "Cert=\"%ZZ\"",
        "Cert=\"not pem\"",
        "Cert=\"-----BEGIN PRIVATE KEY-----%0AAAAA%0A-----END PRIVATE KEY-----\"",
    ] {
        let e = dec(HeaderFormat::Xfcc, v, None).unwrap_err();
        assert!(matches!(e, ForwardedError::Malformed { .. }), "{v}: {e}");
        assert!(e.to_string().contains("SANITIZE_SET"), "{e}");
    }
}

// === nginx, Apache, ALB (PEM) ===

#[test]
fn nginx_escaped_and_deprecated_cert() {
    let c = chain();
    let pem = pem_of(&c[..1]);
    // $ssl_client_escaped_cert: ngx_escape_uri(NGX_ESCAPE_URI_COMPONENT).
    assert_eq!(ok(HeaderFormat::Nginx, &url(&pem), None).chain, c[..1]);
    // $ssl_client_cert: the last newline dropped, a tab after every other one.
    let folded = pem.trim_end_matches('\n').replace('\n', "\n\t");
    assert_eq!(ok(HeaderFormat::Nginx, &folded, None).chain, c[..1]);
    // ... or with the folds turned into spaces by an intermediary.
    let spaced = pem.trim_end_matches('\n').replace('\n', " ");
    assert_eq!(ok(HeaderFormat::Nginx, &spaced, None).chain, c[..1]);
}

#[test]
fn apache_ssl_client_cert() {
    let c = chain();
    let pem = pem_of(&c[..1]);
    // mod_headers' unwrap_header turns CR and LF into spaces; CRLF gives two.
    let spaced = pem.replace('\n', " ");
    assert_eq!(ok(HeaderFormat::Apache, &spaced, None).chain, c[..1]);
    let crlf = pem.replace('\n', "\r\n").replace(['\r', '\n'], " ");
    assert_eq!(ok(HeaderFormat::Apache, &crlf, None).chain, c[..1]);
    // The chain as SSL_CLIENT_CERT_CHAIN_n headers joined with ", ".
    let inter = pem_of(&c[1..]).replace('\n', " ");
    let got = ok(
        HeaderFormat::Apache,
        &spaced,
        Some(&format!("{inter}, {inter}")),
    );
    assert_eq!(got.chain.len(), 3);
    // `expr=%{escape:%{SSL_CLIENT_CERT}}`: URL-encoded.
    assert_eq!(ok(HeaderFormat::Apache, &url(&pem), None).chain, c[..1]);
    // No client certificate.
    assert_eq!(
        dec(HeaderFormat::Apache, "(null)", None).unwrap_err(),
        ForwardedError::Absent {
            format: HeaderFormat::Apache
        }
    );
}

#[test]
fn alb_chain_and_leaf() {
    let c = chain_with_root();
    // X-Amzn-Mtls-Clientcert: the URL-encoded PEM chain, leaf first, ending with the root.
    assert_eq!(ok(HeaderFormat::Alb, &url(&pem_of(&c)), None).chain, c);
    // X-Amzn-Mtls-Clientcert-Leaf, read with the same format.
    assert_eq!(
        ok(HeaderFormat::Alb, &url(&pem_of(&c[..1])), None).chain,
        c[..1]
    );
}

#[test]
fn pem_malformed() {
    let c = chain();
    let pem = pem_of(&c[..1]);
    let cases: Vec<(String, &str)> = vec![
        (base64_encode(&c[0]), "not PEM"),
        (pem.replace("-----END CERTIFICATE-----\n", ""), "missing"),
        (pem.replace("CERTIFICATE", "PRIVATE KEY"), "PRIVATE KEY"),
        (format!("{pem}trailing"), "text after"),
        (pem.replacen("MI", "M*", 1), "base64"),
        ("-----BEGIN CERTIF".to_owned(), "not closed"),
        ("%".to_owned(), "two hex digits"),
        ("%4".to_owned(), "two hex digits"),
    ];
    for format in [HeaderFormat::Nginx, HeaderFormat::Apache, HeaderFormat::Alb] {
        for (v, want) in &cases {
            let e = dec(format, v, None).unwrap_err();
            assert!(
                matches!(e, ForwardedError::Malformed { .. }) && e.to_string().contains(want),
                "{format} {v:.30}: {e}"
            );
        }
    }
    let e = dec(HeaderFormat::Nginx, &pem, Some("garbage")).unwrap_err();
    assert!(matches!(
        e,
        ForwardedError::Malformed {
            header: HeaderKind::Chain,
            ..
        }
    ));
    assert!(e.to_string().contains("$ssl_client_escaped_cert"), "{e}");
}

// === HAProxy ===

#[test]
fn haproxy_hex_base64_quoted_and_chain() {
    let c = chain_with_root();
    let leaf_hex = data_encoding::HEXUPPER.encode(&c[0]);
    let leaf_b64 = base64_encode(&c[0]);
    let rest: Vec<u8> = c[1..].iter().flat_map(|d| d.to_vec()).collect();
    let with_leaf: Vec<u8> = c.iter().flat_map(|d| d.to_vec()).collect();
    for v in [
        leaf_hex.clone(),
        leaf_hex.to_lowercase(),
        leaf_b64.clone(),
        format!("\"{leaf_b64}\""),
        format!("\"{leaf_hex}\""),
    ] {
        assert_eq!(ok(HeaderFormat::Haproxy, &v, None).chain, c[..1], "{v:.20}");
    }
    for chain in [
        base64_encode(&rest),
        data_encoding::HEXUPPER.encode(&rest),
        format!("\"{}\"", base64_encode(&rest)),
        // A chain that includes the leaf does not repeat it.
        base64_encode(&with_leaf),
    ] {
        let got = ok(HeaderFormat::Haproxy, &leaf_b64, Some(&chain));
        assert_eq!(got.chain, c, "{chain:.20}");
    }
    // No intermediates: the fetch found nothing.
    for none in ["", "\"\"", "-"] {
        assert_eq!(
            ok(HeaderFormat::Haproxy, &leaf_b64, Some(none)).chain,
            c[..1]
        );
    }
}

#[test]
fn haproxy_malformed() {
    let c = chain();
    let b64 = base64_encode(&c[0]);
    let cases: Vec<String> = vec![
        pem_of(&c[..1]),
        "abc".to_owned(),
        "ABC".to_owned(),
        "not base64!".to_owned(),
        base64_encode(b"hello world"),
        base64_encode(&[&c[0][..], b"junk"].concat()),
    ];
    for v in &cases {
        let e = dec(HeaderFormat::Haproxy, v, None).unwrap_err();
        assert!(
            matches!(
                e,
                ForwardedError::Malformed { .. } | ForwardedError::NotCertificate { .. }
            ),
            "{v:.30}: {e}"
        );
        assert!(e.to_string().contains("ssl_c_der"), "{e}");
    }
    let e = dec(HeaderFormat::Haproxy, &b64, Some(&base64_encode(b"xx"))).unwrap_err();
    assert!(matches!(
        e,
        ForwardedError::NotCertificate {
            header: HeaderKind::Chain,
            index: 1,
            ..
        }
    ));
}

// === Traefik ===

#[test]
fn traefik_v3_and_v2() {
    let c = chain_with_root();
    // Traefik 3: base64 DER of each certificate, leaf first, joined with ",".
    let v3: Vec<String> = c.iter().map(|d| base64_encode(d)).collect();
    assert_eq!(ok(HeaderFormat::Traefik, &v3.join(","), None).chain, c);
    // Traefik 2: each one also url.QueryEscape'd.
    let v2: Vec<String> = v3.iter().map(|s| url(s)).collect();
    assert_eq!(ok(HeaderFormat::Traefik, &v2.join(","), None).chain, c);
    // Two header lines joined by the caller.
    assert_eq!(ok(HeaderFormat::Traefik, &v3.join(", "), None).chain, c);
    // A single certificate.
    assert_eq!(ok(HeaderFormat::Traefik, &v3[0], None).chain, c[..1]);
    for bad in [format!("{},", v3[0]), "%%".to_owned(), "@@@@".to_owned()] {
        let e = dec(HeaderFormat::Traefik, &bad, None).unwrap_err();
        assert!(
            matches!(e, ForwardedError::Malformed { .. }),
            "{bad:.20}: {e}"
        );
        assert!(e.to_string().contains("passTLSClientCert"), "{e}");
    }
}

// === across formats ===

/// The certificate header value for `c` in each format.
fn encoded(format: HeaderFormat, c: &[CertificateDer<'_>]) -> String {
    match format {
        HeaderFormat::Rfc9440 => encode_rfc9440(c).0,
        HeaderFormat::Xfcc => encode_xfcc(c, None),
        HeaderFormat::Nginx | HeaderFormat::Alb => url(&pem_of(c)),
        HeaderFormat::Apache => pem_of(c).replace('\n', " "),
        HeaderFormat::Haproxy => {
            base64_encode(&c.iter().flat_map(|d| d.to_vec()).collect::<Vec<_>>())
        }
        HeaderFormat::Traefik => c
            .iter()
            .map(|d| base64_encode(d))
            .collect::<Vec<_>>()
            .join(","),
    }
}

#[test]
fn absent_values() {
    for format in HeaderFormat::ALL {
        for v in ["", "  ", "(null)", "-", "\"\"", "\"-\"", "::", " (null) "] {
            assert_eq!(
                dec(format, v, None).unwrap_err(),
                ForwardedError::Absent { format },
                "{format} {v:?}"
            );
        }
        let e = dec(format, "", None).unwrap_err();
        assert!(e.to_string().contains("anonymous"), "{e}");
    }
}

#[test]
fn oversize_values() {
    let c = chain();
    let big = "A".repeat(MAX_VALUE_LEN + 1);
    for format in HeaderFormat::ALL {
        let e = dec(format, &big, None).unwrap_err();
        assert_eq!(
            e,
            ForwardedError::TooLarge {
                format,
                header: HeaderKind::Cert,
                len: MAX_VALUE_LEN + 1,
                max: MAX_VALUE_LEN
            }
        );
        // Oversize is reported before "absent": a huge run of spaces is not anonymous.
        let spaces = " ".repeat(MAX_VALUE_LEN + 1);
        assert!(matches!(
            dec(format, &spaces, None),
            Err(ForwardedError::TooLarge { .. })
        ));
        let e = dec(format, &encoded(format, &c), Some(&big)).unwrap_err();
        assert!(
            matches!(
                e,
                ForwardedError::TooLarge {
                    header: HeaderKind::Chain,
                    ..
                }
            ),
            "{format}: {e}"
        );
        // The limit itself is allowed (and then fails as the garbage it is).
        let at = "A".repeat(MAX_VALUE_LEN);
        assert!(!matches!(
            dec(format, &at, None),
            Err(ForwardedError::TooLarge { .. })
        ));
    }
}

#[test]
fn too_many_certificates() {
    let c = chain();
    // Leaf first, then nine intermediates.
    let ten: Vec<CertificateDer<'static>> = std::iter::once(c[0].clone())
        .chain(std::iter::repeat_n(c[1].clone(), 9))
        .collect();
    let eleven = [&ten[..], &c[1..]].concat();
    for format in HeaderFormat::ALL {
        if format == HeaderFormat::Rfc9440 {
            continue;
        }
        assert_eq!(
            ok(format, &encoded(format, &ten), None).chain.len(),
            10,
            "{format}"
        );
        let e = dec(format, &encoded(format, &eleven), None).unwrap_err();
        assert_eq!(
            e,
            ForwardedError::TooManyCertificates {
                format,
                count: 11,
                max: MAX_CHAIN_LEN
            },
            "{format}"
        );
    }
    // Across the two headers.
    let (cert, _) = encode_rfc9440(&eleven);
    let rest = vec![format!(":{}:", base64_encode(&c[1])); 10].join(", ");
    let e = dec(HeaderFormat::Rfc9440, &cert, Some(&rest)).unwrap_err();
    assert!(matches!(
        e,
        ForwardedError::TooManyCertificates { count: 11, .. }
    ));
    let rest = vec![format!(":{}:", base64_encode(&c[1])); 9].join(", ");
    assert_eq!(
        ok(HeaderFormat::Rfc9440, &cert, Some(&rest)).chain.len(),
        10
    );
    let e = dec(
        HeaderFormat::Haproxy,
        &encoded(HeaderFormat::Haproxy, &c[..1]),
        Some(&encoded(HeaderFormat::Haproxy, &eleven[1..])),
    )
    .unwrap_err();
    assert!(matches!(
        e,
        ForwardedError::TooManyCertificates { count: 11, .. }
    ));
}

#[test]
fn garbage_is_malformed_and_not_echoed() {
    let secret = "AAAAsecret-bearer-token-that-must-not-be-logged-0123456789";
    let inputs = [
        secret.to_owned(),
        format!("\u{0}\u{1}\u{7f}{secret}"),
        format!("\"{secret}"),
        format!(":{secret}:"),
        format!("Cert=\"{secret}\""),
        format!("-----BEGIN CERTIFICATE-----{secret}"),
    ];
    for format in HeaderFormat::ALL {
        for v in &inputs {
            let e = dec(format, v, None).unwrap_err();
            assert!(
                matches!(
                    e,
                    ForwardedError::Malformed { .. }
                        | ForwardedError::NotCertificate { .. }
                        | ForwardedError::XfccNoCert { .. }
                ),
                "{format} {v:.20}: {e}"
            );
            let msg = e.to_string();
            assert!(!msg.contains("must-not-be-logged"), "{format}: {msg}");
            if let ForwardedError::Malformed { prefix, .. } = &e {
                assert!(prefix.chars().count() <= 4 * PREFIX_LEN + 1, "{prefix}");
            }
        }
    }
}

#[test]
fn every_format_round_trips_a_chain() {
    let c = chain();
    for format in HeaderFormat::ALL {
        let got = ok(format, &encoded(format, &c), None);
        let want = if format == HeaderFormat::Rfc9440 {
            &c[..1]
        } else {
            &c[..]
        };
        assert_eq!(got.chain, want, "{format}");
        assert_eq!(got.peer_identity().unwrap().common_name(), Some("worker"));
    }
}

#[test]
fn errors_name_the_proxy_setting() {
    let want = [
        (HeaderFormat::Rfc9440, "ssl_c_der,base64"),
        (HeaderFormat::Xfcc, "SANITIZE_SET"),
        (HeaderFormat::Nginx, "$ssl_client_escaped_cert"),
        (HeaderFormat::Haproxy, "ssl_c_chain_der"),
        (HeaderFormat::Apache, "%{SSL_CLIENT_CERT}s"),
        (HeaderFormat::Traefik, "pem: true"),
        (HeaderFormat::Alb, "X-Amzn-Mtls-Clientcert"),
    ];
    for (format, hint) in want {
        let e = dec(format, "x", None).unwrap_err();
        assert!(e.to_string().contains(hint), "{format}: {e}");
    }
}
