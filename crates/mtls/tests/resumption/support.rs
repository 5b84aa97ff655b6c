//! The machinery of the resumption tests: a recording server, client attempts, TLS record
//! splitting and a client that holds back its Finished.

use super::*;

// === A server that records what its listener hands out ===

/// What the listener handed out for one connection.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) subject: String,
    pub(crate) generation: u64,
    pub(crate) resumed: bool,
    pub(crate) chain_len: usize,
}

/// A [`TlsListener`] whose every accepted connection is recorded, answered with one line
/// (`ok`) and closed.
pub(crate) struct Recorder {
    pub(crate) addr: SocketAddr,
    pub(crate) rx: mpsc::UnboundedReceiver<Seen>,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Recorder {
    pub(crate) async fn start(server: &Server) -> Self {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut listener = TlsListener::new(tcp, server.acceptor()).unwrap();
        let addr = listener.local_addr();
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                let mut conn = listener.accept().await;
                let seen = match conn.peer.identity() {
                    Some(id) => Seen {
                        subject: id.subject().to_owned(),
                        generation: id.generation(),
                        resumed: conn.peer.resumed(),
                        chain_len: id.chain().len(),
                    },
                    None => Seen {
                        subject: "anonymous".to_owned(),
                        generation: 0,
                        resumed: conn.peer.resumed(),
                        chain_len: 0,
                    },
                };
                let _ = tx.send(seen);
                tokio::spawn(async move {
                    let _ = conn.stream.write_all(b"ok\n").await;
                    let _ = conn.stream.shutdown().await;
                });
            }
        });
        Self { addr, rx, task }
    }

    /// The next connection handed out, if one is within `wait`.
    pub(crate) async fn next(&mut self, wait: Duration) -> Option<Seen> {
        tokio::time::timeout(wait, self.rx.recv())
            .await
            .ok()
            .flatten()
    }
}

// === One client connection, as the client sees it ===

/// How a client connection went.
#[derive(Debug)]
pub(crate) struct Attempt {
    /// The client's view of the handshake.
    pub(crate) handshake: Result<HandshakeKind, String>,
    /// The server's answer (`ok` when the listener handed the connection out).
    pub(crate) answer: Result<String, String>,
}

/// Connects to `addr` with `config`, runs the handshake and reads the server's answer.
pub(crate) async fn attempt(config: Arc<rustls::ClientConfig>, addr: SocketAddr) -> Attempt {
    let connect = async {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        tokio_rustls::TlsConnector::from(config)
            .connect(localhost(), tcp)
            .await
            .map_err(|e| e.to_string())
    };
    let mut tls = match tokio::time::timeout(STEP, connect).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            return Attempt {
                handshake: Err(e),
                answer: Err("no handshake".to_owned()),
            };
        }
        Err(_) => {
            return Attempt {
                handshake: Err("handshake timed out".to_owned()),
                answer: Err("no handshake".to_owned()),
            };
        }
    };
    let kind = tls.get_ref().1.handshake_kind().unwrap();
    let mut out = String::new();
    let answer = match tokio::time::timeout(STEP, tls.read_to_string(&mut out)).await {
        Err(_) => Err("timed out".to_owned()),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(_)) if out.is_empty() => Err("closed without an answer".to_owned()),
        Ok(Ok(_)) => Ok(out.trim_end().to_owned()),
    };
    Attempt {
        handshake: Ok(kind),
        answer,
    }
}

// === TLS records ===

/// Splits bytes that rustls wrote into whole TLS records (5-byte header: content type,
/// version, u16 length).
pub(crate) fn split_records(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        assert!(
            bytes.len() >= 5,
            "a partial record header in rustls' output"
        );
        let len = 5 + usize::from(u16::from_be_bytes([bytes[3], bytes[4]]));
        assert!(bytes.len() >= len, "a partial record in rustls' output");
        let (record, rest) = bytes.split_at(len);
        out.push(record.to_vec());
        bytes = rest;
    }
    out
}

/// `type:length` of each record, for the test output.
pub(crate) fn layout(records: &[Vec<u8>]) -> String {
    records
        .iter()
        .map(|r| format!("{}:{}", r[0], r.len() - 5))
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) const CHANGE_CIPHER_SPEC: u8 = 20;
pub(crate) const APPLICATION_DATA: u8 = 23;

/// Whether these records are the client's last handshake flight: under TLS 1.3 the first
/// output with an encrypted record (type 23); under TLS 1.2 the output with
/// ChangeCipherSpec followed by the (encrypted) Finished.
pub(crate) fn is_last_flight(records: &[Vec<u8>]) -> bool {
    records.iter().any(|r| r[0] == APPLICATION_DATA)
        || records
            .iter()
            .position(|r| r[0] == CHANGE_CIPHER_SPEC)
            .is_some_and(|i| i + 1 < records.len())
}

// === A client that holds back its Finished ===

/// Where Finished starts in a TLS 1.3 client's last flight when it authenticates with
/// `chain` and an Ed25519 key: the length of its Certificate message (empty request
/// context, no extensions per entry) plus its CertificateVerify (an Ed25519 signature
/// is always 64 bytes).
///
/// rustls writes that flight (Certificate, CertificateVerify, Finished) as one handshake
/// flight, coalesced into one encrypted record. With `max_fragment_size` set to this
/// length plus the 5-byte header, it becomes one record with Certificate and
/// CertificateVerify and one with Finished alone. (Under TLS 1.2 each message is its own
/// record anyway, and Finished is the record after ChangeCipherSpec.)
pub(crate) fn tls13_finished_offset(chain: &[Vec<u8>]) -> usize {
    let certificate = 4 + 1 + 3 + chain.iter().map(|c| 3 + c.len() + 2).sum::<usize>();
    let certificate_verify = 4 + 2 + 2 + 64;
    certificate + certificate_verify
}

/// TLS 1.3 record overhead around a handshake message: the inner content type and the
/// 16-byte AEAD tag.
pub(crate) const TLS13_OVERHEAD: usize = 1 + 16;

/// A rustls client connection driven by hand, stopped just before its Finished: the
/// whole last flight has been sent except the record that carries Finished.
pub(crate) struct HeldFinished {
    pub(crate) tcp: TcpStream,
    pub(crate) conn: rustls::ClientConnection,
    pub(crate) held: Vec<u8>,
}

/// What the held connection got once its Finished was released.
#[derive(Debug)]
pub(crate) struct Released {
    pub(crate) answer: String,
    pub(crate) error: Option<String>,
}

impl HeldFinished {
    pub(crate) async fn connect(config: Arc<rustls::ClientConfig>, addr: SocketAddr) -> Self {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let mut conn = rustls::ClientConnection::new(config, localhost()).unwrap();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            if conn.wants_write() {
                let mut out = Vec::new();
                while conn.wants_write() {
                    conn.write_tls(&mut out).unwrap();
                }
                let mut records = split_records(&out);
                if is_last_flight(&records) {
                    let flight = layout(&records);
                    eprintln!("client's last flight, type:length: {flight}");
                    let held = records.pop().unwrap();
                    // Finished is 4 bytes of header and a SHA-256 or SHA-384 sized MAC.
                    let finished_only = held[0] != APPLICATION_DATA
                        || [36, 52].contains(&(held.len() - 5 - TLS13_OVERHEAD));
                    assert!(
                        finished_only && records.iter().any(|r| r[0] != CHANGE_CIPHER_SPEC),
                        "the last record is not Finished alone: cannot hold back just \
                         Finished ({flight})"
                    );
                    tcp.write_all(&records.concat()).await.unwrap();
                    return Self { tcp, conn, held };
                }
                tcp.write_all(&out).await.unwrap();
                continue;
            }
            let n = tokio::time::timeout(STEP, tcp.read(&mut buf))
                .await
                .expect("the server stalled the handshake")
                .unwrap();
            assert!(n > 0, "the server closed during the handshake");
            let mut input = &buf[..n];
            while !input.is_empty() {
                conn.read_tls(&mut input).unwrap();
                conn.process_new_packets()
                    .expect("the server refused the handshake before Finished");
            }
        }
    }

    /// Sends the held Finished, then reads (and so stores any session tickets) until the
    /// server closes or fails the connection.
    pub(crate) async fn release(mut self) -> Released {
        let mut answer = Vec::new();
        let mut error = None;
        let mut buf = vec![0u8; 32 * 1024];
        let run = async {
            self.tcp
                .write_all(&self.held)
                .await
                .map_err(|e| e.to_string())?;
            loop {
                while self.conn.wants_write() {
                    let mut out = Vec::new();
                    self.conn.write_tls(&mut out).map_err(|e| e.to_string())?;
                    // The server may already be gone; what it sent is still read below.
                    let _ = self.tcp.write_all(&out).await;
                }
                let n = self.tcp.read(&mut buf).await.map_err(|e| e.to_string())?;
                if n == 0 {
                    return Ok(());
                }
                let mut input = &buf[..n];
                while !input.is_empty() {
                    self.conn.read_tls(&mut input).map_err(|e| e.to_string())?;
                    self.conn.process_new_packets().map_err(|e| e.to_string())?;
                }
                let mut plain = [0u8; 1024];
                loop {
                    match self.conn.reader().read(&mut plain) {
                        Ok(0) => return Ok(()),
                        Ok(k) => answer.extend_from_slice(&plain[..k]),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e.to_string()),
                    }
                }
            }
        };
        match tokio::time::timeout(STEP, run).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => error = Some(e),
            Err(_) => error = Some("timed out".to_owned()),
        }
        Released {
            answer: String::from_utf8_lossy(&answer).trim_end().to_owned(),
            error,
        }
    }
}
