//! Where a certificate says its revocation data is: CRL distribution points and the
//! OCSP responder of its authority information access.

use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

/// Longest URL followed.
const MAX_URL: usize = 2048;

fn http_url(name: &GeneralName<'_>) -> Option<String> {
    match name {
        GeneralName::URI(uri) if uri.len() <= MAX_URL && uri.starts_with("http://") => {
            Some((*uri).to_owned())
        }
        _ => None,
    }
}

/// The `http://` full names of the certificate's CRL distribution points.
pub(crate) fn crl_urls(der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for ext in cert.extensions() {
        if let ParsedExtension::CRLDistributionPoints(points) = ext.parsed_extension() {
            for point in points.iter() {
                if let Some(DistributionPointName::FullName(names)) = &point.distribution_point {
                    out.extend(names.iter().filter_map(http_url));
                }
            }
        }
    }
    out
}

/// The first `http://` OCSP responder of the certificate's authority information access.
#[allow(dead_code)]
pub(crate) fn ocsp_url(cert: &X509Certificate<'_>) -> Option<String> {
    const OCSP: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1];
    cert.extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::AuthorityInfoAccess(aia) => aia
                .iter()
                .filter(|d| {
                    d.access_method
                        .iter()
                        .is_some_and(|arcs| arcs.eq(OCSP.iter().copied()))
                })
                .find_map(|d| http_url(&d.access_location)),
            _ => None,
        })
}
