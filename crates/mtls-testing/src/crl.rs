//! Certificate revocation lists: [`Ca::crl`], [`Ca::crl_with`] and [`Crl`].

use std::path::{Path, PathBuf};

use rcgen::{CertificateRevocationListParams, RevocationReason, RevokedCertParams, SerialNumber};
use time::{Duration, OffsetDateTime};

use crate::ca::Ca;
use crate::der::pem;
use crate::leaf::Leaf;
use crate::util::{ok, write_file};

impl Ca {
    /// A CRL signed by this CA revoking `revoked` (reason `keyCompromise`).
    ///
    /// `thisUpdate` is one hour ago, `nextUpdate` seven days from now, the CRL number is 1, and
    /// the authority key identifier extension is set.
    ///
    /// # Panics
    ///
    /// Panics if rcgen fails to sign the CRL.
    #[must_use]
    pub fn crl(&self, revoked: &[&Leaf]) -> Crl {
        let now = OffsetDateTime::now_utc();
        let serials: Vec<&[u8]> = revoked.iter().map(|leaf| leaf.serial.as_slice()).collect();
        self.crl_with(
            &serials,
            now - Duration::hours(1),
            now + Duration::days(7),
            1,
        )
    }

    /// A CRL signed by this CA with full control: the revoked serials (big-endian bytes, as
    /// returned by [`Leaf::serial`]; revocation time `this_update`, reason `keyCompromise`),
    /// `thisUpdate`, `nextUpdate` (may be in the past, to get a stale CRL) and CRL number.
    ///
    /// # Panics
    ///
    /// Panics if rcgen fails to sign the CRL, in particular if `next_update` is not after
    /// `this_update`.
    #[must_use]
    pub fn crl_with(
        &self,
        revoked_serials: &[&[u8]],
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
        number: u64,
    ) -> Crl {
        let params = CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: revoked_serials
                .iter()
                .map(|serial| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(serial),
                    revocation_time: this_update,
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: self.params.key_identifier_method.clone(),
        };
        let crl = ok(params.signed_by(&self.issuer()), "signing the CRL");
        Crl {
            der: crl.der().to_vec(),
        }
    }
}

/// A certificate revocation list, made by [`Ca::crl`] or [`Ca::crl_with`].
#[derive(Debug, Clone)]
pub struct Crl {
    der: Vec<u8>,
}

impl Crl {
    /// The CRL, PEM (`-----BEGIN X509 CRL-----`).
    #[must_use]
    pub fn pem(&self) -> String {
        pem("X509 CRL", &self.der)
    }

    /// The CRL, DER.
    #[must_use]
    pub fn der(&self) -> Vec<u8> {
        self.der.clone()
    }

    /// Writes [`Crl::pem`] to `dir/file_name` and returns that path.
    ///
    /// # Panics
    ///
    /// Panics if the file cannot be written.
    pub fn write(&self, dir: &Path, file_name: &str) -> PathBuf {
        write_file(dir.join(file_name), &self.pem())
    }
}
