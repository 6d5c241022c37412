//! Test support shared by the services' integration tests: a real
//! `redis-server` (and [`PostgresServer`], a private PostgreSQL) on a free loopback port, owned by the test and stopped when
//! dropped (never a server that happens to be running on the machine), and
//! [`CheckConfig`], a service binary's `--check-config` run as a process.

mod check_config;
mod postgres;
pub mod redis_cluster;
pub use check_config::CheckConfig;
pub use postgres::PostgresServer;
pub use redis_cluster::RedisCluster;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (bound, then released for the server to take).
///
/// Tests start several servers at once, each on a port found here and
/// bound a moment later, while other servers bind port 0. So the port comes
/// from below the kernel's ephemeral range (where port-0 binds are served
/// from, so none of those can take it meanwhile), and one test process
/// never hands out the same port twice (two topologies starting together
/// once got the same port: "Address already in use").
pub fn free_port() -> u16 {
    free_port_and(0)
}

/// How far above a Redis Cluster node's port its cluster bus listens.
const CLUSTER_BUS_OFFSET: u16 = 10_000;

/// A free port whose port + `offset` (a cluster node's bus port, when
/// not 0) is free too, both below the ephemeral range and neither handed
/// out before; both are handed out now.
fn free_port_and(offset: u16) -> u16 {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static HANDED: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let handed = HANDED.get_or_init(Default::default);
    let ephemeral_from = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    const LOWEST: u16 = 10_000;
    let free = |handed: &HashSet<u16>, port: u16| {
        !handed.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok()
    };
    if ephemeral_from > LOWEST + offset + 1000 {
        let span = u32::from(ephemeral_from - LOWEST - offset);
        // Processes running at once start at different places.
        let start = (std::process::id().wrapping_mul(7919)) % span;
        let mut handed = handed.lock().expect("port set");
        for i in 0..span {
            let port = LOWEST + ((start + i * 13) % span) as u16;
            if free(&handed, port) && (offset == 0 || free(&handed, port + offset)) {
                handed.insert(port);
                handed.insert(port + offset);
                return port;
            }
        }
    }
    for _ in 0..1000 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let mut handed = handed.lock().expect("port set");
        let bus = port.checked_add(offset);
        if offset == 0 || bus.is_some_and(|b| free(&handed, b)) {
            handed.insert(port);
            handed.extend(bus);
            return port;
        }
    }
    panic!("no free loopback port with a free port {offset} above it")
}

/// A private `redis-server` for one test: no persistence, or (durable) an
/// append-only file fsynced on every write, kept across restarts.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// `None`: no persistence; else the `appendfsync` policy of its AOF.
    fsync: Option<&'static str>,
    /// A node of a Redis Cluster ([`RedisCluster`]).
    cluster_node: bool,
}

impl RedisServer {
    /// Starts `redis-server` on a free port and waits until it answers PING.
    /// Panics with install advice when the binary is missing
    /// (`scripts/install-test-tools.sh` installs it).
    pub fn start() -> Self {
        Self::start_as(None)
    }

    /// A server with `appendonly yes` and `appendfsync always`: what it
    /// acknowledged survives [`Self::restart`] (a `kill -9`).
    pub fn start_durable() -> Self {
        Self::start_as(Some("always"))
    }

    /// `appendonly yes` with `appendfsync everysec`: a `kill -9` may lose
    /// about the last second of writes.
    pub fn start_durable_everysec() -> Self {
        Self::start_as(Some("everysec"))
    }

    /// A cluster-enabled node not yet in any cluster; durable: with an
    /// append-only file fsynced on every write.
    pub(crate) fn start_cluster_node(durable: bool) -> Self {
        Self::start_with(durable.then_some("always"), true)
    }

    fn start_as(fsync: Option<&'static str>) -> Self {
        Self::start_with(fsync, false)
    }

    fn start_with(fsync: Option<&'static str>, cluster_node: bool) -> Self {
        // A cluster node also listens on its bus port, 10 000 above.
        let port = free_port_and(if cluster_node { CLUSTER_BUS_OFFSET } else { 0 });
        let dir = std::env::temp_dir().join(format!("wxpush-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir for redis");
        let mut server = Self {
            port,
            dir,
            child: None,
            fsync,
            cluster_node,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--protected-mode", "yes"])
            .args(match self.fsync {
                Some(policy) => ["--appendonly", "yes", "--appendfsync", policy],
                None => ["--appendonly", "no", "--appendfsync", "everysec"],
            })
            .args(if self.cluster_node {
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "1000",
                ][..]
            } else {
                &[][..]
            })
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server ({e}); run scripts/install-test-tools.sh or apt-get install redis-server")
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.ping() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "redis-server on port {} did not answer PING within 10 s",
            self.port
        );
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the server answers PING right now.
    pub fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    /// Kills the server (`SIGKILL`), as a crash would: a server that keeps
    /// nothing on disk loses its data; a durable one keeps what it
    /// acknowledged.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Pauses the server (`SIGSTOP`): it keeps its sockets and answers
    /// nothing, as a stalled Redis does, until [`Self::resume`].
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server go on (`SIGCONT`).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        if let Some(child) = &self.child {
            let ok = Command::new("kill")
                .arg(sig)
                .arg(child.id().to_string())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "kill {sig} redis-server");
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_stops_and_restarts_on_the_same_port() {
        let mut r = RedisServer::start();
        assert!(r.ping());
        r.stop();
        assert!(!r.ping());
        r.restart();
        assert!(r.ping());
        assert!(r.url().ends_with(&format!(":{}/", r.port())));
    }
}
