//! A hand-written accept loop (hyper-util + axum) whose listener can be closed and re-bound on
//! the same port, with every open connection dropped, to simulate refused connections.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// What a listener should be doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Accepting and serving connections.
    Serving,
    /// Port closed, all connections dropped; re-binds on the same port when back to `Serving`.
    Refusing,
    /// Stopped for good.
    Shutdown,
}

/// The handle that switches a [`Listener`]'s mode and waits until the switch took effect.
#[derive(Debug, Clone)]
pub struct ListenerControl {
    control: watch::Sender<Mode>,
    applied: watch::Receiver<Mode>,
}

/// The listener's side of a [`ListenerControl`].
#[derive(Debug)]
pub struct ControlEnd {
    control: watch::Receiver<Mode>,
    applied: watch::Sender<Mode>,
}

/// A connected control pair, created before the listener so shared state can hold the control.
pub fn control_pair() -> (ListenerControl, ControlEnd) {
    let (control, control_rx) = watch::channel(Mode::Serving);
    let (applied_tx, applied) = watch::channel(Mode::Serving);
    (
        ListenerControl { control, applied },
        ControlEnd {
            control: control_rx,
            applied: applied_tx,
        },
    )
}

impl ListenerControl {
    /// Switches the mode and waits (up to 5 s) until the listener applied it.
    pub async fn set_mode(&self, mode: Mode) -> io::Result<()> {
        self.control.send_if_modified(|m| {
            let changed = *m != mode;
            *m = mode;
            changed
        });
        let mut applied = self.applied.clone();
        match tokio::time::timeout(Duration::from_secs(5), applied.wait_for(|m| *m == mode)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(io::Error::other("listener task ended")),
            Err(_) => Err(io::Error::other(format!(
                "listener did not reach {mode:?} in time"
            ))),
        }
    }
}

/// A running listener serving an axum router on its own accept loop.
#[derive(Debug)]
pub struct Listener {
    addr: SocketAddr,
    control: ListenerControl,
    task: JoinHandle<()>,
}

impl Listener {
    /// Binds `addr` (port 0 = any free port) and serves `router` in a background task.
    pub fn bind(
        addr: SocketAddr,
        router: Router,
        control: ListenerControl,
        end: ControlEnd,
    ) -> io::Result<Self> {
        let listener = bind_reuse(addr)?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(supervise(Some(listener), addr, router, end));
        Ok(Self {
            addr,
            control,
            task,
        })
    }

    /// The bound address (with the real port).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, drops every connection and ends the background task.
    pub async fn shutdown(self) {
        let _ = self.control.set_mode(Mode::Shutdown).await;
        let _ = self.task.await;
    }
}

fn bind_reuse(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

async fn supervise(
    mut first: Option<TcpListener>,
    addr: SocketAddr,
    router: Router,
    mut end: ControlEnd,
) {
    loop {
        let mode = *end.control.borrow_and_update();
        match mode {
            Mode::Shutdown => {
                drop(first.take());
                end.applied.send_replace(Mode::Shutdown);
                return;
            }
            Mode::Refusing => {
                drop(first.take());
                end.applied.send_replace(Mode::Refusing);
                if end.control.changed().await.is_err() {
                    return;
                }
            }
            Mode::Serving => {
                let listener = match first.take().map_or_else(|| bind_reuse(addr), Ok) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(%addr, error = %e, "re-binding the listener failed; retrying");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                end.applied.send_replace(Mode::Serving);
                if !serve_until_changed(listener, &router, &mut end.control).await {
                    return;
                }
            }
        }
    }
}

/// Serves until the mode changes; then drops the listener and aborts every connection.
/// Returns false when the control side is gone.
async fn serve_until_changed(
    listener: TcpListener,
    router: &Router,
    control: &mut watch::Receiver<Mode>,
) -> bool {
    let mut conns = JoinSet::new();
    let alive = loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let service = TowerToHyperService::new(router.clone());
                    conns.spawn(async move {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            changed = control.changed() => {
                if changed.is_err() {
                    break false;
                }
                if *control.borrow_and_update() != Mode::Serving {
                    break true;
                }
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    };
    drop(listener);
    conns.abort_all();
    while conns.join_next().await.is_some() {}
    alive
}
