#![allow(dead_code)]

//! The production topology for the hostile-input suite: a private Redis,
//! the WeChat sandbox, and the four services as separate processes
//! (`wxpush serve ...`) on the redis backend, on free loopback ports; with
//! [`Topology::start_on_postgres`], the log in a private PostgreSQL; with
//! [`Topology::start_on_cluster`], also the hot path on a private
//! three-master Redis Cluster.

use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tonic::transport::Channel;
use wechat_sandbox::Sandbox;
use wxpush_testkit::{PostgresServer, RedisCluster, RedisServer, free_port};

/// Partitions of the queue and the event stream on the test cluster: two
/// per master.
pub const CLUSTER_PARTITIONS: u16 = 6;

/// One service process and its ports, and how to start it again.
pub struct Process {
    pub name: &'static str,
    pub child: Child,
    pub grpc: u16,
    env: Vec<(String, String)>,
    config: Option<std::path::PathBuf>,
    log_dir: std::path::PathBuf,
}

impl Process {
    /// Its resident memory now, in bytes (`/proc/PID/status`).
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    /// Whether it is still running (it never exits on its own).
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Redis, the sandbox and the four services.
pub struct Topology {
    pub redis: RedisServer,
    pub sandbox: Sandbox,
    pub processes: Vec<Process>,
    /// Where logquery keeps the log, when not in Redis.
    pub postgres: Option<PostgresServer>,
    /// The hot path's Redis Cluster, when on one (`redis` then stays idle).
    pub cluster: Option<RedisCluster>,
    /// The callback service's public URL (`.../wechat/callback`) and its
    /// apps' credentials, when it runs.
    pub callbacks: Option<(String, Vec<wxpush_callback::config::CallbackApp>)>,
    dir: std::path::PathBuf,
}

impl Topology {
    pub async fn start() -> Self {
        Self::start_with(RedisServer::start(), &[]).await
    }

    /// On a given Redis, with extra settings (`WXPUSH_DELIVERY__...`) for
    /// the processes, each taking those of its prefix.
    pub async fn start_with(redis: RedisServer, extra: &[(&str, &str)]) -> Self {
        Self::start_full(redis, extra, None, None, false).await
    }

    /// [`Self::start_on_postgres`] with a fifth process, the callback
    /// service, and the sandbox's apps pushing their receipts to it (as
    /// `wxpush dev` wires them: plaintext XML and safe-mode JSON).
    pub async fn start_with_callbacks() -> Self {
        Self::start_full(
            RedisServer::start(),
            &[],
            Some(PostgresServer::start()),
            None,
            true,
        )
        .await
    }

    /// With a private PostgreSQL (`backend.kind: postgres` for template,
    /// delivery and logquery: the log and the templates there, the hot path
    /// still on Redis).
    pub async fn start_on_postgres() -> Self {
        Self::start_full(
            RedisServer::start(),
            &[],
            Some(PostgresServer::start()),
            None,
            false,
        )
        .await
    }

    /// The production topology at scale: PostgreSQL as with
    /// [`Self::start_on_postgres`], the hot path on `cluster` with the
    /// queue and the event stream in [`CLUSTER_PARTITIONS`] partitions.
    pub async fn start_on_cluster(cluster: RedisCluster) -> Self {
        Self::start_on_cluster_with(cluster, &[]).await
    }

    /// [`Self::start_on_cluster`] with extra settings, as
    /// [`Self::start_with`].
    pub async fn start_on_cluster_with(cluster: RedisCluster, more: &[(&str, &str)]) -> Self {
        let partitions = CLUSTER_PARTITIONS.to_string();
        let mut extra = vec![
            (
                "WXPUSH_DELIVERY__BACKEND__STREAM_PARTITIONS",
                partitions.as_str(),
            ),
            (
                "WXPUSH_LOGQUERY__BACKEND__STREAM_PARTITIONS",
                partitions.as_str(),
            ),
        ];
        extra.extend_from_slice(more);
        let postgres = Some(PostgresServer::start());
        Self::start_full(RedisServer::start(), &extra, postgres, Some(cluster), false).await
    }

    async fn start_full(
        redis: RedisServer,
        extra: &[(&str, &str)],
        postgres: Option<PostgresServer>,
        cluster: Option<RedisCluster>,
        callbacks: bool,
    ) -> Self {
        let redis_url = cluster
            .as_ref()
            .map_or_else(|| redis.url(), RedisCluster::url);
        let any = "127.0.0.1:0".parse().unwrap();
        let mut sandbox_config = wechat_sandbox::demo_config();
        let public = free_port();
        let mut wiring =
            wxpush::callbacks::Wiring::new(&format!("http://127.0.0.1:{public}/wechat/callback"));
        if callbacks {
            wiring.point(&mut sandbox_config);
        }
        let sandbox = Sandbox::start(sandbox_config.clone(), any, any)
            .await
            .unwrap();
        // Each topology its own files: tests start several at once.
        static STARTED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("wxpush-hostile-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut apps = String::from("apps:\n");
        let mut secrets = Vec::new();
        for app in &sandbox_config.apps {
            let var = format!("WXPUSH_TEST_SECRET_{}", app.appid.to_ascii_uppercase());
            apps += &format!(
                "  - app_id: {}\n    kind: {}\n    secret_env: {var}\n",
                app.appid,
                match app.kind {
                    wechat_sandbox::AppKind::OfficialAccount => "official_account",
                    wechat_sandbox::AppKind::MiniProgram => "mini_program",
                }
            );
            secrets.push((var, app.secret.clone()));
        }
        std::fs::write(dir.join("token.yaml"), apps).unwrap();
        let templates = concat!(env!("CARGO_MANIFEST_DIR"), "/dev/templates.yaml");
        let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
        let url = |i: usize| format!("http://127.0.0.1:{}", ports[i]);
        // Callers are not checked unless an extra setting turns it on
        // (`WXPUSH_TOKEN__AUTH__MODE=on`): each process takes the extra
        // settings of its prefix, after these.
        let common = |prefix: &str, grpc: u16| {
            let mut env = vec![
                (format!("{prefix}__LISTEN"), format!("127.0.0.1:{grpc}")),
                (format!("{prefix}__ADMIN_LISTEN"), "127.0.0.1:0".to_string()),
                (format!("{prefix}__BACKEND__KIND"), "redis".into()),
                (format!("{prefix}__BACKEND__REDIS_URL"), redis_url.clone()),
                (format!("{prefix}__AUTH__MODE"), "off".into()),
            ];
            let mine = format!("{prefix}__");
            env.extend(
                extra
                    .iter()
                    .filter(|(k, _)| k.starts_with(&mine))
                    .map(|(k, v)| (k.to_string(), v.to_string())),
            );
            env
        };
        let mut token = common("WXPUSH_TOKEN", ports[0]);
        token.push(("WXPUSH_TOKEN__WECHAT__BASE_URL".into(), sandbox.api_url()));
        token.extend(secrets);
        let mut template = common("WXPUSH_TEMPLATE", ports[1]);
        template.push(("WXPUSH_TEMPLATE__TOKEN_ENDPOINT".into(), url(0)));
        template.push(("WXPUSH_TEMPLATE__TEMPLATES_FILE".into(), templates.into()));
        template.push((
            "WXPUSH_TEMPLATE__WECHAT__BASE_URL".into(),
            sandbox.api_url(),
        ));
        let mut delivery = common("WXPUSH_DELIVERY", ports[2]);
        delivery.push(("WXPUSH_DELIVERY__TOKEN_ENDPOINT".into(), url(0)));
        delivery.push(("WXPUSH_DELIVERY__TEMPLATE_ENDPOINT".into(), url(1)));
        delivery.push((
            "WXPUSH_DELIVERY__WECHAT__BASE_URL".into(),
            sandbox.api_url(),
        ));
        let mut logquery = common("WXPUSH_LOGQUERY", ports[3]);
        if let Some(pg) = &postgres {
            for (prefix, env) in [
                ("WXPUSH_TEMPLATE", &mut template),
                ("WXPUSH_DELIVERY", &mut delivery),
                ("WXPUSH_LOGQUERY", &mut logquery),
            ] {
                env.push((format!("{prefix}__BACKEND__KIND"), "postgres".into()));
                env.push((format!("{prefix}__BACKEND__POSTGRES_URL"), pg.url()));
            }
        }
        let config = dir.join("token.yaml");
        // Kept after the test for a failing run.
        let log_dir =
            std::env::temp_dir().join(format!("wxpush-hostile-logs-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&log_dir).unwrap();
        let mut processes = vec![
            spawn("token", ports[0], token, Some(&config), &log_dir),
            spawn("template", ports[1], template, None, &log_dir),
            spawn("delivery", ports[2], delivery, None, &log_dir),
            spawn("logquery", ports[3], logquery, None, &log_dir),
        ];
        if callbacks {
            // Each app's Token and EncodingAESKey from env vars, as in
            // production.
            let mut apps = String::from("apps:\n");
            let mut callback = common("WXPUSH_CALLBACK", free_port());
            callback.push((
                "WXPUSH_CALLBACK__PUBLIC_LISTEN".into(),
                format!("127.0.0.1:{public}"),
            ));
            for (i, app) in wiring.config().apps.iter().enumerate() {
                apps += &format!(
                    "  - app_id: {}\n    token_env: WXPUSH_TEST_CB_TOKEN_{i}\n",
                    app.app_id
                );
                let token = app.token.as_ref().expect("wired with a token");
                callback.push((format!("WXPUSH_TEST_CB_TOKEN_{i}"), token.expose().into()));
                if let Some(key) = &app.aes_key {
                    apps += &format!("    aes_key_env: WXPUSH_TEST_CB_KEY_{i}\n");
                    callback.push((format!("WXPUSH_TEST_CB_KEY_{i}"), key.expose().into()));
                }
            }
            let config = dir.join("callback.yaml");
            std::fs::write(&config, apps).unwrap();
            let port = callback[0].1.rsplit(':').next().unwrap().parse().unwrap();
            processes.push(spawn("callback", port, callback, Some(&config), &log_dir));
        }
        let callbacks = callbacks.then(|| {
            (
                format!("http://127.0.0.1:{public}/wechat/callback"),
                wiring.config().apps,
            )
        });
        let topology = Self {
            redis,
            sandbox,
            processes,
            postgres,
            cluster,
            callbacks,
            dir,
        };
        for p in &topology.processes {
            serving(p.grpc).await;
        }
        topology
    }

    /// A channel to a service's gRPC port.
    pub async fn channel(&self, name: &str) -> Channel {
        let p = self.processes.iter().find(|p| p.name == name).unwrap();
        Channel::from_shared(format!("http://127.0.0.1:{}", p.grpc))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// Kills a service (`SIGKILL`), as a crash or an evicted pod would.
    pub fn kill(&mut self, name: &str) {
        let p = self.processes.iter_mut().find(|p| p.name == name).unwrap();
        let _ = p.child.kill();
        let _ = p.child.wait();
    }

    /// Starts a killed service again, as it was, and waits until it serves.
    pub async fn start_again(&mut self, name: &str) {
        let i = self.processes.iter().position(|p| p.name == name).unwrap();
        let p = &self.processes[i];
        let again = spawn(
            p.name,
            p.grpc,
            p.env.clone(),
            p.config.as_deref(),
            &p.log_dir,
        );
        self.processes[i] = again;
        serving(self.processes[i].grpc).await;
    }

    /// The hot path's Redis memory (`used_memory`, every master of the
    /// cluster when on one), in bytes.
    pub async fn hot_path_memory(&self) -> u64 {
        match &self.cluster {
            Some(c) => {
                let mut sum = 0;
                for url in c.node_urls() {
                    sum += used_memory(&url).await;
                }
                sum
            }
            None => self.redis_memory().await,
        }
    }

    /// Redis's `used_memory`, in bytes.
    pub async fn redis_memory(&self) -> u64 {
        used_memory(&self.redis.url()).await
    }
}

/// `used_memory` of the Redis at `url`, in bytes.
async fn used_memory(url: &str) -> u64 {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

impl Drop for Topology {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn spawn(
    name: &'static str,
    grpc: u16,
    env: Vec<(String, String)>,
    config: Option<&std::path::Path>,
    log_dir: &std::path::Path,
) -> Process {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wxpush"));
    cmd.arg("serve").arg(name);
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    for (key, _) in std::env::vars() {
        if key.starts_with("WXPUSH_") {
            cmd.env_remove(key);
        }
    }
    let child = cmd
        .envs(env.clone())
        // WXPUSH_TEST_RUST_LOG: more of each process's log when debugging a test.
        .env(
            "RUST_LOG",
            std::env::var("WXPUSH_TEST_RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log_dir.join(format!("{name}.log")))
                .map_or(Stdio::null(), Stdio::from),
        )
        .spawn()
        .expect("wxpush serve starts");
    Process {
        name,
        child,
        grpc,
        env,
        config: config.map(std::path::Path::to_path_buf),
        log_dir: log_dir.to_path_buf(),
    }
}

/// Waits until the port answers gRPC health with SERVING.
async fn serving(port: u16) {
    for _ in 0..300 {
        if let Ok(channel) = Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
        {
            let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
            if health
                .check(tonic_health::pb::HealthCheckRequest::default())
                .await
                .is_ok()
            {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("port {port} never served");
}
