//! Every gRPC socket, accepted by a wxpush server or dialled by a wxpush
//! client, has `TCP_NODELAY`: without it, Nagle's algorithm meets the
//! peer's delayed ACK and each small gRPC frame can wait 40 ms.
//!
//! Both ends run in this process, so the test finds each socket among the
//! process's own file descriptors and asks the kernel for the option.

use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::time::Duration;

/// `TCP_NODELAY` of this process's TCP socket bound to `local` and
/// connected to `peer`.
fn nodelay_of(local: SocketAddr, peer: SocketAddr) -> Option<bool> {
    for entry in std::fs::read_dir("/proc/self/fd").ok()?.flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        // SAFETY: the descriptor is borrowed for two getsockopt calls and
        // released with into_raw_fd, never closed here.
        let socket = unsafe { socket2::Socket::from_raw_fd(fd) };
        let matches = socket.local_addr().ok().and_then(|a| a.as_socket()) == Some(local)
            && socket.peer_addr().ok().and_then(|a| a.as_socket()) == Some(peer);
        let nodelay = socket.tcp_nodelay().ok();
        let _ = socket.into_raw_fd();
        if matches {
            return nodelay;
        }
    }
    None
}

/// The option once the socket exists and its owner had a moment to set it
/// (the accept and the dial each finish on another task).
async fn settled(read: impl Fn() -> Option<bool>) -> Option<bool> {
    let mut seen = None;
    for _ in 0..100 {
        seen = read();
        if seen == Some(true) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    seen
}

#[tokio::test]
async fn accepted_connections_have_tcp_nodelay() {
    let listener = wxpush_server::grpc::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let server = listener.local_addr().unwrap();
    let routes = tonic::service::Routes::default();
    tokio::spawn(wxpush_server::grpc::serve(
        routes,
        Vec::new(),
        wxpush_server::rpc::GateLayer::open(),
        listener,
        std::future::pending(),
    ));
    let client = tokio::net::TcpStream::connect(server).await.unwrap();
    let client_addr = client.local_addr().unwrap();
    let seen = settled(|| nodelay_of(server, client_addr)).await;
    assert_eq!(seen, Some(true), "the server's end of the connection");
}

#[tokio::test]
async fn dialled_connections_have_tcp_nodelay() {
    let peer = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = peer.local_addr().unwrap();
    let endpoint = wxpush_server::config::GrpcEndpoint::parse(&format!("http://{addr}")).unwrap();
    let channel = wxpush_server::grpc::channel(&endpoint);
    // The first call dials; the peer is no gRPC server, so the call fails.
    let call = tokio::spawn(async move {
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        let _ = health
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await;
    });
    let (_conn, client_addr) = peer.accept().await.unwrap();
    let seen = settled(|| nodelay_of(client_addr, addr)).await;
    assert_eq!(seen, Some(true), "the client's end of the connection");
    call.abort();
}
