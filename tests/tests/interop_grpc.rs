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
//! Skipped with a message when `python3 -c "import grpc"` fails, unless
//! `MTLS_REQUIRE_PEERS=1` (then the test fails). Node `@grpc/grpc-js` is not covered yet.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;

use mtls::{Policy, TlsListener};
use mtls_tonic::{MethodPolicyLayer, RequestExt, TlsIncoming};
use support::check::record;
use support::pki::{Case, guide};
use support::proc::{CLIENT_TIMEOUT, require_python, run};
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
