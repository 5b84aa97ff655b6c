//! [`Role`]: which side of a connection a certificate identifies.

/// Which side of a connection a certificate is meant to identify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A server identity: needs the `serverAuth` extended key usage and a subjectAltName.
    Server,
    /// A client identity: needs the `clientAuth` extended key usage.
    Client,
}

impl Role {
    /// The extended key usage a leaf of this role must carry (`serverAuth` / `clientAuth`).
    pub fn required_eku(self) -> &'static str {
        match self {
            Self::Server => "serverAuth",
            Self::Client => "clientAuth",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Server => "server",
            Self::Client => "client",
        })
    }
}
