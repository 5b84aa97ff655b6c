//! Shared helpers of the benchmarks.

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
