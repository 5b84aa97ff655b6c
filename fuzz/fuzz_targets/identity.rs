//! Identity extraction from arbitrary DER, and every policy kind evaluated on the result.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mtls::rustls::pki_types::CertificateDer;

fn policy() -> &'static mtls::Policy {
    static P: OnceLock<mtls::Policy> = OnceLock::new();
    P.get_or_init(|| {
        "any(cn:a, dns:*.svc.local, ip:10.0.0.0/8, uri:urn:x, email:a@b.c, \
         spiffe:td.example, spiffe-prefix:spiffe://td.example/ns, o:O, ou:U, \
         issuer:\"CN=x\", not(sha256:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff))"
            .parse()
            .expect("static policy parses")
    })
}

fuzz_target!(|data: &[u8]| {
    let chain = [CertificateDer::from(data)];
    if let Ok(id) = mtls::PeerIdentity::from_chain(&chain) {
        let _ = id.subject();
        let _ = id.spiffe_id();
        let _ = id.require_spiffe_id();
        let _ = id.extension("2.5.29.17");
        let _ = policy().authorize(&id);
    }
});
