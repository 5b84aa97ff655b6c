//! PEM/DER loading: any bytes give certificates, a key, CRLs or an error; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let origin = std::path::Path::new("fuzz");
    if let Ok(certs) = mtls::pem::parse_certs(data, origin) {
        assert!(!certs.is_empty());
    }
    let _ = mtls::pem::parse_key(data, origin);
    if let Ok(crls) = mtls::pem::parse_crls(data, origin) {
        assert!(!crls.is_empty());
    }
});
