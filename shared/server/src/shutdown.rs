//! The process stop signal as a future: Ctrl-C or SIGTERM (what Kubernetes
//! sends), so servers stop accepting and finish in-flight work.

/// Completes on the first Ctrl-C or SIGTERM.
pub async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received");
}

/// One stop signal several servers of a process wait on (gRPC and admin).
#[derive(Clone)]
pub struct Shutdown(tokio::sync::watch::Receiver<bool>);

impl Shutdown {
    /// Fires on Ctrl-C or SIGTERM.
    pub fn on_signal() -> Self {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            signal().await;
            let _ = tx.send(true);
        });
        Self(rx)
    }

    /// A signal fired by hand (tests, `wxpush dev` embedded in a test):
    /// the sender's `send(true)` fires it.
    pub fn manual() -> (tokio::sync::watch::Sender<bool>, Self) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        (tx, Self(rx))
    }

    /// Whether the signal has fired.
    pub fn fired(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes once the signal has fired.
    pub fn wait(&self) -> impl std::future::Future<Output = ()> + Send + 'static + use<> {
        let mut rx = self.0.clone();
        async move {
            if rx.wait_for(|stopped| *stopped).await.is_err() {
                // The trigger is gone: nobody can fire this signal any more.
                std::future::pending::<()>().await;
            }
        }
    }
}
