//! gRPC interop: our tonic server (`mtls-tonic`'s `TlsIncoming` and `MethodPolicyLayer`,
//! serving `mtls.examples.v1.Identity` from `proto/whoami.proto`) against Python
//! `grpcio` and Node `@grpc/grpc-js` as clients, on the openssl-made guide PKI.
//!
//! The Python client uses `grpc.ssl_channel_credentials(root_certificates, private_key,
//! certificate_chain)` and a generic unary call (`channel.unary_unary(path)` with bytes
//! in and out); the Node client `grpc.credentials.createSsl(root, key, chain)` and
//! `Client.makeUnaryRequest(path)` the same way, so neither needs code generation: the
//! request is empty and the reply's bytes are checked for the CN. Cases: alice's
//! certificate gets `WhoAmI` answered with `alice`; no certificate, another CA's and
//! bob's revoked certificate are refused in the handshake (`UNAVAILABLE`), and so is
//! alice by a second server whose listener policy admits only CN `admin`; `Admin`, for
//! CN `admin` only, answers `PERMISSION_DENIED` to alice, whom the listener admits.
//!
//! The other way round, our client (`mtls-tonic`'s `ChannelConnector` with the generated
//! `IdentityClient`) calls a Python `grpcio` server with `require_client_auth=True` (a
//! generic handler from `grpc.method_handlers_generic_handler`, answering the CN from its
//! auth context): alice's certificate is answered with `alice`; without a certificate or
//! with another CA's the call fails. (grpcio's `ssl_server_credentials` takes no CRL, so
//! there is no revoked case there.)
//!
//! Skipped with a message when `python3 -c "import grpc"` fails, or when `node` cannot
//! load `@grpc/grpc-js` from `tests/node/node_modules` (`npm ci --prefix tests/node`,
//! which `.ci/run` does), unless `MTLS_REQUIRE_PEERS=1` (then the test fails).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;

use mtls::{Policy, TlsListener};
use mtls_tonic::{ChannelConnector, MethodPolicyLayer, RequestExt, TlsIncoming};
use support::check::record;
use support::pki::{Case, guide};
use support::proc::{self, CLIENT_TIMEOUT, Daemon, require_python, run};
use tokio::process::Command;
use tonic::{Request, Response, Status};

#[allow(
    clippy::all,
    clippy::pedantic,
    unreachable_pub,
    unused_qualifications,
    elided_lifetimes_in_paths,
    missing_debug_implementations,
    missing_docs
)]
mod pb {
    include!("../../crates/mtls-tonic/tests/generated/mtls.examples.v1.rs");
}

use pb::identity_client::IdentityClient;
use pb::identity_server::{Identity, IdentityServer};
use pb::{WhoAmIReply, WhoAmIRequest};

const WHOAMI: &str = "/mtls.examples.v1.Identity/WhoAmI";
const ADMIN: &str = "/mtls.examples.v1.Identity/Admin";

struct WhoAmI;

fn reply(request: &Request<WhoAmIRequest>) -> Result<Response<WhoAmIReply>, Status> {
    let id = request
        .peer_identity()
        .ok_or_else(|| Status::unauthenticated("no client certificate"))?;
    Ok(Response::new(WhoAmIReply {
        subject: id.subject().to_owned(),
        common_name: id.common_name().unwrap_or_default().to_owned(),
        spiffe_id: id.spiffe_id().map(ToString::to_string).unwrap_or_default(),
        serial: id.serial().to_owned(),
        fingerprint_sha256: id.fingerprint_sha256().to_owned(),
    }))
}

#[tonic::async_trait]
impl Identity for WhoAmI {
    async fn who_am_i(
        &self,
        request: Request<WhoAmIRequest>,
    ) -> Result<Response<WhoAmIReply>, Status> {
        reply(&request)
    }

    async fn admin(
        &self,
        request: Request<WhoAmIRequest>,
    ) -> Result<Response<WhoAmIReply>, Status> {
        reply(&request)
    }
}

/// Our tonic server on the guide PKI (its CA and CRL), the clients `policy` admits
/// accepted, `Admin` only for CN `admin`. Runs until the test's runtime ends.
async fn tonic_server(policy: Policy) -> SocketAddr {
    let g = guide();
    let server = mtls::Server::builder()
        .identity(g.server_crt(), g.server_key())
        .client_ca(g.ca())
        .crl(g.crl())
        .policy(policy)
        .alpn(["h2"])
        .build()
        .unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let incoming = TlsIncoming::new(TlsListener::new(tcp, server.acceptor()).unwrap());
    let addr = incoming.local_addr();
    let methods = MethodPolicyLayer::new()
        .rule(ADMIN, Policy::common_name(["admin"]))
        .unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(methods)
            .add_service(IdentityServer::new(WhoAmI))
            .serve_with_incoming(incoming),
    );
    addr
}

/// grpcio as a client: one unary call, printing `OK <reply bytes, hex>` or
/// `ERROR <status code name> <details>`.
const GRPCIO_CLIENT: &str = r#"
import sys
import grpc
target, path, ca, cert, key = sys.argv[1:6]
def read(p):
    with open(p, "rb") as f:
        return f.read()
creds = grpc.ssl_channel_credentials(
    root_certificates=read(ca),
    private_key=None if key == "-" else read(key),
    certificate_chain=None if cert == "-" else read(cert),
)
with grpc.secure_channel(target, creds) as channel:
    call = channel.unary_unary(
        path, request_serializer=lambda x: x, response_deserializer=lambda b: b
    )
    try:
        reply = call(b"", timeout=10)
    except grpc.RpcError as e:
        print("ERROR", e.code().name, e.details())
        sys.exit(0)
print("OK", reply.hex())
"#;

/// grpc-js as a client: one unary call, printing as [`GRPCIO_CLIENT`] does.
const GRPC_JS_CLIENT: &str = r#"
const fs = require("fs");
const grpc = require("@grpc/grpc-js");
const [target, path, ca, cert, key] = process.argv.slice(1);
const creds = grpc.credentials.createSsl(
  fs.readFileSync(ca),
  key === "-" ? null : fs.readFileSync(key),
  cert === "-" ? null : fs.readFileSync(cert),
);
const client = new grpc.Client(target, creds);
const deadline = new Date(Date.now() + 10000);
client.makeUnaryRequest(path, (x) => x, (b) => b, Buffer.alloc(0), { deadline }, (err, reply) => {
  if (err) {
    console.log("ERROR", grpc.status[err.code], err.details);
  } else {
    console.log("OK", reply.toString("hex"));
  }
  client.close();
});
"#;

/// A gRPC client we did not write.
#[derive(Debug, Clone, Copy)]
enum Peer {
    PythonGrpcio,
    NodeGrpcJs,
}

impl Peer {
    fn label(self) -> &'static str {
        match self {
            Self::PythonGrpcio => "python grpcio",
            Self::NodeGrpcJs => "node @grpc/grpc-js",
        }
    }

    /// Whether the peer is installed (see [`proc::present`]).
    fn available(self) -> bool {
        match self {
            Self::PythonGrpcio => require_python("grpc"),
            Self::NodeGrpcJs => {
                let found = proc::on_path("node").is_some()
                    && std::process::Command::new("node")
                        .args(["-e", "require('@grpc/grpc-js')"])
                        .current_dir(node_dir())
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success());
                proc::present("node @grpc/grpc-js (npm ci --prefix tests/node)", found)
            }
        }
    }

    /// grpc-js reports OpenSSL's error, with the alert our listener sent: it must be the
    /// one for the refusal's real cause. (grpcio only says `TSI_DATA_CORRUPTED`.)
    fn check_alert(self, alert: &str, details: &str) {
        if matches!(self, Self::NodeGrpcJs) {
            assert!(
                details.contains(alert),
                "expected alert {alert:?}: {details}"
            );
        }
    }

    fn command(self) -> Command {
        match self {
            Self::PythonGrpcio => {
                let mut cmd = Command::new("python3");
                cmd.args(["-c", GRPCIO_CLIENT]);
                cmd
            }
            Self::NodeGrpcJs => {
                let mut cmd = Command::new("node");
                cmd.args(["-e", GRPC_JS_CLIENT]).current_dir(node_dir());
                cmd
            }
        }
    }
}

/// The TLS alert our listener sends for `case` (as OpenSSL names it).
fn case_alert(case: Case) -> &'static str {
    match case {
        Case::NoCert => "certificate required",
        Case::OtherCa => "unknown ca",
        Case::Revoked => "certificate revoked",
        Case::Good => "",
    }
}

/// `tests/node`, whose `node_modules` holds `@grpc/grpc-js` (`npm ci` there).
fn node_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("node")
}

/// What a client saw.
#[derive(Debug)]
enum Grpc {
    Ok(Vec<u8>),
    Error { code: String, details: String },
}

async fn grpc_call(peer: Peer, addr: SocketAddr, path: &str, case: Case) -> Grpc {
    let (cert, key) = case.identity().map_or_else(
        || ("-".to_owned(), "-".to_owned()),
        |(c, k)| (c.display().to_string(), k.display().to_string()),
    );
    let mut cmd = peer.command();
    cmd.arg(format!("localhost:{}", addr.port()))
        .arg(path)
        .arg(guide().ca())
        .args([cert, key]);
    let out = run(&mut cmd, None, CLIENT_TIMEOUT).await;
    let line = out.stdout.trim();
    if let Some(hex) = line.strip_prefix("OK ") {
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        return Grpc::Ok(bytes);
    }
    if let Some(rest) = line.strip_prefix("ERROR ") {
        let (code, details) = rest.split_once(' ').unwrap_or((rest, ""));
        return Grpc::Error {
            code: code.to_owned(),
            // grpc-js's details span lines (OpenSSL's error queue): one line each.
            details: details.split_whitespace().collect::<Vec<_>>().join(" "),
        };
    }
    panic!(
        "{}: unexpected output ({}): stdout {:?} stderr {:?}",
        peer.label(),
        out.status,
        out.stdout,
        out.stderr
    );
}

/// The string field `tag` of a protobuf message (wire type 2), if present.
fn string_field(bytes: &[u8], tag: u64) -> Option<String> {
    let mut rest = bytes;
    let varint = |rest: &mut &[u8]| -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, tail) = rest.split_first()?;
            *rest = tail;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    };
    while !rest.is_empty() {
        let key = varint(&mut rest)?;
        // WhoAmIReply has only string fields: every field is length-delimited.
        if key & 7 != 2 {
            return None;
        }
        let len = usize::try_from(varint(&mut rest)?).ok()?;
        let value = rest.get(..len)?;
        rest = &rest[len..];
        if key >> 3 == tag {
            return String::from_utf8(value.to_vec()).ok();
        }
    }
    None
}

/// The matrix of one client against our server: every [`Case`], a listener policy that
/// refuses alice, and the method rule on `Admin`.
async fn client_to_tonic_server(peer: Peer) {
    if !peer.available() {
        return;
    }
    let who = peer.label();
    let addr = tonic_server(Policy::any_verified()).await;
    for case in Case::ALL {
        let got = grpc_call(peer, addr, WHOAMI, case).await;
        let what = match (case, &got) {
            (Case::Good, Grpc::Ok(bytes)) => {
                assert_eq!(string_field(bytes, 2).as_deref(), Some("alice"), "{got:?}");
                let subject = string_field(bytes, 1).unwrap();
                assert!(subject.contains("CN=alice"), "{subject}");
                assert_eq!(string_field(bytes, 5).unwrap().len(), 64);
                "WhoAmI answered: common_name alice".to_owned()
            }
            (Case::NoCert | Case::OtherCa | Case::Revoked, Grpc::Error { code, details })
                if code == "UNAVAILABLE" =>
            {
                peer.check_alert(case_alert(case), details);
                format!("refused: {code} {details}")
            }
            _ => panic!("{who}, {}: {got:?}", case.label()),
        };
        record(who, "mtls-tonic", case, &what);
    }

    // The listener's own policy: a server for CN `admin` only refuses alice in the
    // handshake, before any RPC.
    let admins_only = tonic_server(Policy::common_name(["admin"])).await;
    match grpc_call(peer, admins_only, WHOAMI, Case::Good).await {
        Grpc::Error { code, details } if code == "UNAVAILABLE" => {
            peer.check_alert("access denied", &details);
            record(
                who,
                "mtls-tonic (listener policy cn:admin)",
                Case::Good,
                &format!("policy-denied: refused: {code} {details}"),
            );
        }
        other => panic!("{who}, alice against a listener for CN admin only: {other:?}"),
    }

    // A method-level rule: the listener admits alice, `Admin` is for CN `admin` only.
    match grpc_call(peer, addr, ADMIN, Case::Good).await {
        Grpc::Error { code, details } if code == "PERMISSION_DENIED" => {
            assert!(!details.contains("cn:admin"), "the rule leaked: {details}");
            record(who, "mtls-tonic", Case::Good, "Admin: PERMISSION_DENIED");
        }
        other => panic!("{who}, Admin as alice: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn python_grpcio_to_tonic_server() {
    client_to_tonic_server(Peer::PythonGrpcio).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn node_grpc_js_to_tonic_server() {
    client_to_tonic_server(Peer::NodeGrpcJs).await;
}

/// grpcio as a server requiring a client certificate from the guide CA; `WhoAmI` answers
/// a `WhoAmIReply` (encoded by hand) with the client's CN and subject from the auth context.
const GRPCIO_SERVER: &str = r#"
import sys
from concurrent import futures
import grpc
port, ca, cert, key = sys.argv[1:5]
def read(p):
    with open(p, "rb") as f:
        return f.read()
def field(tag, value):
    value = value[:127]
    return bytes([tag << 3 | 2, len(value)]) + value
def who_am_i(request, context):
    auth = context.auth_context()
    cn = (auth.get("x509_common_name") or [b""])[0]
    subject = (auth.get("x509_subject") or [b""])[0]
    return field(1, subject) + field(2, cn)
handler = grpc.method_handlers_generic_handler(
    "mtls.examples.v1.Identity",
    {"WhoAmI": grpc.unary_unary_rpc_method_handler(who_am_i)},
)
server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
server.add_generic_rpc_handlers((handler,))
creds = grpc.ssl_server_credentials(
    [(read(key), read(cert))], root_certificates=read(ca), require_client_auth=True
)
server.add_secure_port("127.0.0.1:" + port, creds)
server.start()
print("serving", flush=True)
server.wait_for_termination()
"#;

/// The core client for `case`, as in `interop_clients.rs`: the guide CA, the case's
/// certificate (another CA's one is allowed past the builder's chain check).
fn mtls_client(case: Case) -> mtls::Client {
    let mut builder = mtls::Client::builder().ca(guide().ca());
    if let Some((cert, key)) = case.identity() {
        builder = builder.identity(cert, key);
    }
    if case == Case::OtherCa {
        builder = builder.check_identity_chain(false);
    }
    builder.build().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn tonic_channel_to_python_grpcio_server() {
    if !require_python("grpc") {
        return;
    }
    let g = guide();
    let dir = proc::scratch_dir("grpcio-server-");
    let port = proc::free_port();
    let mut cmd = Command::new("python3");
    cmd.args(["-c", GRPCIO_SERVER])
        .arg(port.to_string())
        .arg(g.ca())
        .arg(g.server_crt())
        .arg(g.server_key());
    let daemon = Daemon::start("grpcio server", cmd, port, &dir).await;

    for case in [Case::Good, Case::NoCert, Case::OtherCa] {
        let channel = mtls_tonic::endpoint(format!("https://localhost:{port}"))
            .unwrap()
            .timeout(CLIENT_TIMEOUT)
            .connect_timeout(CLIENT_TIMEOUT)
            .connect_with_connector_lazy(ChannelConnector::new(&mtls_client(case)));
        let result = IdentityClient::new(channel)
            .who_am_i(WhoAmIRequest {})
            .await;
        let what = match (case, result) {
            (Case::Good, Ok(reply)) => {
                let reply = reply.into_inner();
                assert_eq!(reply.common_name, "alice", "{reply:?}");
                assert!(reply.subject.contains("CN=alice"), "{reply:?}");
                "WhoAmI answered: the server saw CN alice".to_owned()
            }
            (Case::NoCert | Case::OtherCa, Err(status)) => {
                format!("refused: {:?} {}", status.code(), status.message())
            }
            (case, other) => panic!(
                "mtls-tonic to grpcio, {}: {other:?}; server log: {}",
                case.label(),
                daemon.log_text()
            ),
        };
        record("mtls-tonic", "python grpcio", case, &what);
    }
}
