//! Collecting the subjectAltName entries identity keeps.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use x509_parser::extensions::GeneralName;

use super::IdentityError;

#[derive(Default)]
pub(super) struct Sans {
    pub(super) dns: Vec<String>,
    pub(super) ips: Vec<IpAddr>,
    pub(super) uris: Vec<String>,
    pub(super) emails: Vec<String>,
}

impl Sans {
    pub(super) fn push(&mut self, name: &GeneralName<'_>) -> Result<(), IdentityError> {
        let bad = |reason: String| IdentityError::InvalidExtension {
            extension: "subjectAltName",
            reason,
        };
        match name {
            GeneralName::DNSName(s) => self.dns.push((*s).to_owned()),
            GeneralName::URI(s) => self.uris.push((*s).to_owned()),
            GeneralName::RFC822Name(s) => self.emails.push((*s).to_owned()),
            GeneralName::IPAddress(b) => match *b {
                [a, b, c, d] => self.ips.push(IpAddr::V4(Ipv4Addr::new(*a, *b, *c, *d))),
                b => match <[u8; 16]>::try_from(b) {
                    Ok(v6) => self.ips.push(IpAddr::V6(Ipv6Addr::from(v6))),
                    Err(_) => {
                        return Err(bad(format!(
                            "IP address entry is {} bytes long (expected 4 or 16)",
                            b.len()
                        )));
                    }
                },
            },
            GeneralName::Invalid(tag, _) => {
                return Err(bad(format!(
                    "entry with tag [{}] is not valid (e.g. a name that is not IA5 text)",
                    tag.0
                )));
            }
            GeneralName::OtherName(..)
            | GeneralName::X400Address(_)
            | GeneralName::DirectoryName(_)
            | GeneralName::EDIPartyName(_)
            | GeneralName::RegisteredID(_) => {}
        }
        Ok(())
    }
}
