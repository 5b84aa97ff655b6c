//! The stubs tonic-prost-build generates for `proto/whoami.proto` (committed in
//! `tests/generated/`, written by `proto/gen`), served over `TlsIncoming` with
//! `serve_with_incoming_shutdown` and called through `ChannelConnector`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

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
    include!("generated/mtls.examples.v1.rs");
}

use mtls::{Policy, TlsListener};
use mtls_tonic::{ChannelConnector, MethodPolicyLayer, RequestExt, TlsIncoming};
use pb::identity_client::IdentityClient;
use pb::identity_server::{Identity, IdentityServer};
use pb::{WhoAmIReply, WhoAmIRequest};
use support::{Fixture, endpoint};
use tonic::{Code, Request, Response, Status};

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

#[tokio::test]
async fn generated_stubs_over_mtls_with_a_method_rule_and_graceful_shutdown() {
    let fx = Fixture::new();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let incoming = TlsIncoming::new(TlsListener::new(tcp, fx.server().acceptor()).unwrap());
    let addr = incoming.local_addr();
    let policy = MethodPolicyLayer::new()
        .rule(
            "/mtls.examples.v1.Identity/Admin",
            Policy::common_name(["admin"]),
        )
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .layer(policy)
            .add_service(IdentityServer::new(WhoAmI))
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            }),
    );

    let alice = endpoint(addr)
        .connect_with_connector(ChannelConnector::new(&fx.client("alice")))
        .await
        .unwrap();
    let mut client = IdentityClient::new(alice);
    let reply = client
        .who_am_i(WhoAmIRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.common_name, "alice");
    assert_eq!(reply.fingerprint_sha256.len(), 64);
    let denied = client.admin(WhoAmIRequest {}).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    let admin = endpoint(addr)
        .connect_with_connector(ChannelConnector::new(&fx.client("admin")))
        .await
        .unwrap();
    let reply = IdentityClient::new(admin)
        .admin(WhoAmIRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.common_name, "admin");

    // Connections still open (alice's, admin's) are closed gracefully on shutdown.
    drop(client);
    stop.send(()).unwrap();
    tokio::time::timeout(support::TIMEOUT, server)
        .await
        .expect("the server shuts down")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn interceptors_see_the_identity() {
    let fx = Fixture::new();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let incoming = TlsIncoming::new(TlsListener::new(tcp, fx.server().acceptor()).unwrap());
    let addr = incoming.local_addr();
    let only_alice = |request: Request<()>| match request.peer_identity() {
        Some(id) if id.common_name() == Some("alice") => Ok(request),
        _ => Err(Status::permission_denied("not alice")),
    };
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(IdentityServer::with_interceptor(WhoAmI, only_alice))
            .serve_with_incoming(incoming),
    );
    for (name, ok) in [("alice", true), ("bob", false)] {
        let channel = endpoint(addr)
            .connect_with_connector(ChannelConnector::new(&fx.client(name)))
            .await
            .unwrap();
        let result = IdentityClient::new(channel)
            .who_am_i(WhoAmIRequest {})
            .await;
        match result {
            Ok(reply) if ok => assert_eq!(reply.into_inner().common_name, name),
            Err(status) if !ok => assert_eq!(status.code(), Code::PermissionDenied),
            other => panic!("{name}: {other:?}"),
        }
    }
}

/// The principal of a custom extractor.
#[derive(Debug, Clone, PartialEq)]
struct Tenant(String);

struct TenantService;

#[tonic::async_trait]
impl Identity for TenantService {
    async fn who_am_i(
        &self,
        request: Request<WhoAmIRequest>,
    ) -> Result<Response<WhoAmIReply>, Status> {
        // The plain accessors read the default extractor's info, so they see nothing here.
        assert!(request.connection_info().is_none());
        let tenant = request
            .principal::<Tenant>()
            .ok_or_else(|| Status::internal("no principal"))?;
        let info = request.connection_info_with::<Tenant>().unwrap();
        Ok(Response::new(WhoAmIReply {
            common_name: tenant.0.clone(),
            subject: info.identity().unwrap().subject().to_owned(),
            ..WhoAmIReply::default()
        }))
    }

    async fn admin(
        &self,
        _request: Request<WhoAmIRequest>,
    ) -> Result<Response<WhoAmIReply>, Status> {
        Err(Status::unimplemented("admin"))
    }
}

#[tokio::test]
async fn a_custom_extractor_principal_reaches_the_handler() {
    let fx = Fixture::new();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let extractor = |id: &std::sync::Arc<mtls::PeerIdentity>| {
        Ok::<_, mtls::ExtractError>(Tenant(format!(
            "tenant-{}",
            id.common_name().unwrap_or_default()
        )))
    };
    let acceptor = fx.server().acceptor_with(extractor);
    let incoming = TlsIncoming::new(TlsListener::new(tcp, acceptor).unwrap());
    let addr = incoming.local_addr();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(IdentityServer::new(TenantService))
            .serve_with_incoming(incoming),
    );
    let channel = endpoint(addr)
        .connect_with_connector(ChannelConnector::new(&fx.client("alice")))
        .await
        .unwrap();
    let reply = IdentityClient::new(channel)
        .who_am_i(WhoAmIRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.common_name, "tenant-alice");
    assert!(reply.subject.contains("CN=alice"));
}

#[tokio::test]
async fn outer_layers_find_the_denial_in_the_response_extensions() {
    use std::sync::{Arc, Mutex};

    let fx = Fixture::new();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let incoming = TlsIncoming::new(TlsListener::new(tcp, fx.server().acceptor()).unwrap());
    let addr = incoming.local_addr();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = {
        let seen = seen.clone();
        tower::util::MapResponseLayer::new(move |response: http::Response<tonic::body::Body>| {
            if let Some(denied) = response.extensions().get::<mtls::Denied>() {
                seen.lock().unwrap().push(denied.rule().to_owned());
            }
            response
        })
    };
    let policy = MethodPolicyLayer::new()
        .rule(
            "/mtls.examples.v1.Identity/*",
            Policy::common_name(["admin"]),
        )
        .unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(record)
            .layer(policy)
            .add_service(IdentityServer::new(WhoAmI))
            .serve_with_incoming(incoming),
    );
    let channel = endpoint(addr)
        .connect_with_connector(ChannelConnector::new(&fx.client("alice")))
        .await
        .unwrap();
    let status = IdentityClient::new(channel)
        .who_am_i(WhoAmIRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(!status.message().contains("admin"), "{}", status.message());
    assert_eq!(*seen.lock().unwrap(), ["cn:admin"]);
}
