//! Shared helpers of the benchmarks.
//!
//! The benchmarks themselves are the criterion micro-benches (`cargo bench -p mtls-bench
//! --bench micro`) and the handshake load bench, the `loadbench` binary (see the
//! package's README). This library holds what both use:
//!
//! ```
//! use mtls::{Client, Policy, Server};
//!
//! let pki = mtls_testing::TestPki::new();
//! let (_, server_files) = pki.server("localhost");
//! let (_, client_files) = pki.client("alice");
//! let server = Server::builder()
//!     .identity(&server_files.cert, &server_files.key)
//!     .client_ca(pki.ca_file())
//!     .policy(Policy::any_verified())
//!     .build()?;
//! let client = Client::builder()
//!     .identity(&client_files.cert, &client_files.key)
//!     .ca(pki.ca_file())
//!     .build()?;
//! assert!(mtls_bench::handshake_in_memory(&server.config(), &client.config()));
//! # Ok::<_, mtls::Error>(())
//! ```

#![deny(missing_docs)]

use std::sync::Arc;

use mtls::rustls::{self, ClientConnection, ServerConnection};

/// Runs one full handshake between fresh connections of the two configs, in memory (no
/// sockets), and returns whether it succeeded.
pub fn handshake_in_memory(
    server: &Arc<rustls::ServerConfig>,
    client: &Arc<rustls::ClientConfig>,
) -> bool {
    let name = rustls::pki_types::ServerName::try_from("localhost").map(|n| n.to_owned());
    let (Ok(mut s), Ok(Ok(mut c))) = (
        ServerConnection::new(server.clone()),
        name.map(|n| ClientConnection::new(client.clone(), n)),
    ) else {
        return false;
    };
    let mut buf = Vec::with_capacity(16 * 1024);
    for _ in 0..16 {
        if !s.is_handshaking() && !c.is_handshaking() {
            return s.peer_certificates().is_some();
        }
        buf.clear();
        while c.wants_write() {
            if c.write_tls(&mut buf).is_err() {
                return false;
            }
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            if s.read_tls(&mut rd).is_err() || s.process_new_packets().is_err() {
                return false;
            }
        }
        buf.clear();
        while s.wants_write() {
            if s.write_tls(&mut buf).is_err() {
                return false;
            }
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            if c.read_tls(&mut rd).is_err() || c.process_new_packets().is_err() {
                return false;
            }
        }
    }
    false
}
