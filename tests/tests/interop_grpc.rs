//! gRPC interop: our tonic server (`mtls-tonic`'s `TlsIncoming` and `MethodPolicyLayer`,
//! serving `mtls.examples.v1.Identity` from `proto/whoami.proto`) against Python
//! `grpcio` as the client, on the openssl-made guide PKI.
//!
//! The Python client uses `grpc.ssl_channel_credentials(root_certificates, private_key,
//! certificate_chain)` and a generic unary call (`channel.unary_unary(path)` with bytes
//! in and out), so no Python code generation is needed: the request is empty and the
//! reply's bytes are checked for the CN. Cases: alice's certificate gets `WhoAmI`
//! answered with `alice`; no certificate, another CA's and bob's revoked certificate are
//! refused in the handshake (`UNAVAILABLE`); `Admin`, for CN `admin` only, answers
//! `PERMISSION_DENIED` to alice, whom the listener admits.
//!
//! The other way round, our client (`mtls-tonic`'s `ChannelConnector` with the generated
//! `IdentityClient`) calls a Python `grpcio` server with `require_client_auth=True` (a
//! generic handler from `grpc.method_handlers_generic_handler`, answering the CN from its
//! auth context): alice's certificate is answered with `alice`; without a certificate or
//! with another CA's the call fails. (grpcio's `ssl_server_credentials` takes no CRL, so
//! there is no revoked case there.)
//!
//! Skipped with a message when `python3 -c "import grpc"` fails, unless
//! `MTLS_REQUIRE_PEERS=1` (then the test fails). Node `@grpc/grpc-js` is not covered yet.

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

/// Our tonic server on the guide PKI (its CA and CRL), any client of the CA admitted,
/// `Admin` only for CN `admin`. Runs until the test's runtime ends.
async fn tonic_server() -> SocketAddr {
    let g = guide();
    let server = mtls::Server::builder()
        .identity(g.server_crt(), g.server_key())
        .client_ca(g.ca())
        .crl(g.crl())
        .policy(Policy::any_verified())
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

/// What the grpcio client saw.
#[derive(Debug)]
enum Grpc {
    Ok(Vec<u8>),
    Error { code: String, details: String },
}

async fn grpcio_call(addr: SocketAddr, path: &str, case: Case) -> Grpc {
    let (cert, key) = case.identity().map_or_else(
        || ("-".to_owned(), "-".to_owned()),
        |(c, k)| (c.display().to_string(), k.display().to_string()),
    );
    let mut cmd = Command::new("python3");
    cmd.args(["-c", GRPCIO_CLIENT])
        .arg(format!("localhost:{}", addr.port()))
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
            details: details.to_owned(),
        };
    }
    panic!(
        "grpcio client: unexpected output ({}): stdout {:?} stderr {:?}",
        out.status, out.stdout, out.stderr
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

#[tokio::test(flavor = "multi_thread")]
async fn python_grpcio_to_tonic_server() {
    if !require_python("grpc") {
        return;
    }
    let addr = tonic_server().await;
    for case in Case::ALL {
        let got = grpcio_call(addr, WHOAMI, case).await;
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
                format!("refused: {code} {details}")
            }
            _ => panic!("python grpcio, {}: {got:?}", case.label()),
        };
        record("python grpcio", "mtls-tonic", case, &what);
    }

    // A method-level rule: the listener admits alice, `Admin` is for CN `admin` only.
    match grpcio_call(addr, ADMIN, Case::Good).await {
        Grpc::Error { code, details } if code == "PERMISSION_DENIED" => {
            assert!(!details.contains("cn:admin"), "the rule leaked: {details}");
            record(
                "python grpcio",
                "mtls-tonic",
                Case::Good,
                "Admin: PERMISSION_DENIED",
            );
        }
        other => panic!("python grpcio, Admin as alice: {other:?}"),
    }
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
        let channel = tonic::transport::Endpoint::from_shared(format!("https://localhost:{port}"))
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
