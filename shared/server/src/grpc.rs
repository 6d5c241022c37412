//! Serving a set of tonic services the same way everywhere: `grpc.health.v1`
//! reporting SERVING for each, server reflection in both the v1 and the
//! v1alpha flavour (grpcurl 1.8 only speaks v1alpha), a graceful stop, and
//! every call traced and measured by [`crate::rpc::ServerTraceLayer`]; and
//! dialling a peer service the same way everywhere ([`channel`]).
//!
//! Every socket, accepted or dialled, has `TCP_NODELAY`: gRPC writes small
//! frames, and Nagle's algorithm holding one back until the peer's delayed
//! ACK (40 ms on Linux) would put that delay into every hop.

use futures_util::StreamExt;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::Routes;
use tonic::transport::{Channel, Endpoint, Server};
use tonic_health::ServingStatus;

/// Largest request or response message any wxpush server accepts (4 MiB, the
/// gRPC default, stated here so it is documented and enforced in one place).
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Most HTTP/2 streams (calls) one client connection may have open at once.
pub const MAX_CONCURRENT_STREAMS: u32 = 256;

/// Longest wait for a TCP connection to a peer service.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Binds a loopback or wildcard address; port 0 picks a free port.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// A channel to a peer service that connects on first use (services start
/// in any order), gives up a dial after [`CONNECT_TIMEOUT`] and sets
/// `TCP_NODELAY`.
pub fn channel(endpoint: &crate::config::GrpcEndpoint) -> Channel {
    Endpoint::from(endpoint.uri().clone())
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .connect_lazy()
}

/// A traced [`channel`] to a peer service of the suite whose calls present
/// this service's own identity (`auth.call_as`, read now: a token file that
/// cannot be read is an error at start).
pub fn peer(
    endpoint: &crate::config::GrpcEndpoint,
    auth: &wxpush_auth::AuthSettings,
) -> Result<crate::rpc::TracedChannel, String> {
    let credentials = auth
        .call_as
        .token_file
        .as_deref()
        .map(crate::rpc::Credentials::from_file)
        .transpose()?;
    Ok(crate::rpc::traced_as(channel(endpoint), credentials))
}

/// Serves `routes` on `listener` until `shutdown` completes, then lets
/// in-flight calls finish. `names` are the fully-qualified service names
/// (`wxpush.v1.TokenService`) reported as SERVING by the health service;
/// `gate` decides who may call ([`crate::rpc::GateLayer`]).
pub async fn serve(
    routes: Routes,
    names: Vec<&'static str>,
    gate: crate::rpc::GateLayer,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    for name in &names {
        health_reporter
            .set_service_status(*name, ServingStatus::Serving)
            .await;
    }
    health_reporter
        .set_service_status("", ServingStatus::Serving)
        .await;

    let reflection_v1 = reflection_builder()
        .build_v1()
        .expect("the embedded descriptor sets are valid");
    let reflection_v1alpha = reflection_builder()
        .build_v1alpha()
        .expect("the embedded descriptor sets are valid");

    let routes = routes
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);

    tracing::info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), services = ?names, "gRPC server listening");
    let incoming = TcpListenerStream::new(listener).map(|accepted| {
        accepted.inspect(|stream| {
            if let Err(e) = stream.set_nodelay(true) {
                tracing::warn!(error = %e, "TCP_NODELAY not set");
            }
        })
    });
    Server::builder()
        .max_concurrent_streams(Some(MAX_CONCURRENT_STREAMS))
        .layer(crate::rpc::ServerTraceLayer)
        .layer(gate)
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

fn reflection_builder() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(wxpush_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}
