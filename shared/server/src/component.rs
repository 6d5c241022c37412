//! A service as a part a process can run: its gRPC routes, its metric
//! families, the steps that must finish before it serves, and the
//! background tasks that stop on the process's drain signal.
//!
//! Every service crate exposes one `build(config) -> Component`. A binary
//! runs one component ([`crate::process::main`]); `wxpush dev` runs all of
//! them on one port ([`crate::process::start`]). Building does no I/O
//! beyond reading local files (Redis and gRPC peers are dialled lazily), so
//! `--check-config` is the same build, minus serving.

use crate::shutdown::Shutdown;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::Routes;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
type Register = Box<dyn FnOnce(&mut Registry) + Send>;
type AddRoute = Box<dyn FnOnce(Routes) -> Routes + Send>;

/// One service, built and not yet serving.
pub struct Component {
    pub(crate) name: &'static str,
    /// Each adds one tonic service to the process's routes.
    pub(crate) routes: Vec<AddRoute>,
    pub(crate) services: Vec<&'static str>,
    pub(crate) metrics: Vec<Register>,
    /// Families several components of one process share (e.g. WeChat
    /// client calls), registered once per process by key.
    pub(crate) shared_metrics: BTreeMap<&'static str, Register>,
    pub(crate) startup: Vec<BoxFuture<anyhow::Result<()>>>,
    pub(crate) tasks: Vec<Box<dyn FnOnce(Shutdown) -> BoxFuture<()> + Send>>,
}

impl Component {
    /// An empty component named like its binary (`wxpush-token`).
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            routes: Vec::new(),
            services: Vec::new(),
            metrics: Vec::new(),
            shared_metrics: BTreeMap::new(),
            startup: Vec::new(),
            tasks: Vec::new(),
        }
    }

    /// Serves a tonic service (reported SERVING by health under its name).
    pub fn grpc<S>(mut self, svc: S) -> Self
    where
        S: tower::Service<http::Request<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        self.routes
            .push(Box::new(move |routes| routes.add_service(svc)));
        self.services.push(S::NAME);
        self
    }

    /// Registers the component's own metric families.
    pub fn metrics(mut self, register: impl FnOnce(&mut Registry) + Send + 'static) -> Self {
        self.metrics.push(Box::new(register));
        self
    }

    /// Registers families that other components of the same process may
    /// register too: the first registration under `key` wins.
    pub fn shared_metrics(
        mut self,
        key: &'static str,
        register: impl FnOnce(&mut Registry) + Send + 'static,
    ) -> Self {
        self.shared_metrics.insert(key, Box::new(register));
        self
    }

    /// A step that must succeed before the component serves (e.g. seeding
    /// templates); skipped by `--check-config`.
    pub fn on_start(
        mut self,
        step: impl Future<Output = anyhow::Result<()>> + Send + 'static,
    ) -> Self {
        self.startup.push(Box::pin(step));
        self
    }

    /// On the Redis backend, the start-up check of the Redis it is given
    /// ([`wxpush_redis::settings`]): an evicting Redis is refused, one that
    /// does not persist is a warning.
    pub fn checks_redis(self, backend: &crate::config::BackendSettings) -> Self {
        if !backend.kind.uses_redis() {
            return self;
        }
        let url = backend.redis_url.clone();
        self.on_start(async move {
            wxpush_redis::check_at_start(&url).await?;
            Ok(())
        })
    }

    /// On the Redis backend, the start-up check that each of `streams`
    /// (`queue`, `events`) has the partition count it was created with
    /// (`{prefix}{stream}:partitions`): a changed count would strand the
    /// entries of the old partitions.
    pub fn checks_stream_layout(
        self,
        backend: &crate::config::BackendSettings,
        streams: &[&str],
    ) -> Self {
        if !backend.kind.uses_redis() {
            return self;
        }
        let (url, partitions) = (backend.redis_url.clone(), backend.stream_partitions);
        let keys: Vec<String> = streams
            .iter()
            .map(|s| format!("{}{s}:partitions", backend.key_prefix))
            .collect();
        self.on_start(async move {
            for key in keys {
                wxpush_redis::partition::check_layout(&url, &key, partitions).await?;
            }
            Ok(())
        })
    }

    /// A background task, started when the process serves; it must return
    /// soon after its [`Shutdown`] fires (finishing what it holds).
    pub fn task<F, Fut>(mut self, task: F) -> Self
    where
        F: FnOnce(Shutdown) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.tasks
            .push(Box::new(move |drain| Box::pin(task(drain))));
        self
    }
}
