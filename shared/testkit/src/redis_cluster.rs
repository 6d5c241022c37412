//! A private three-master Redis Cluster for one test: three
//! `redis-server --cluster-enabled yes` on free loopback ports, joined by
//! `redis-cli --cluster create` (no replicas), stopped when dropped.

use crate::RedisServer;
use std::process::Command;
use std::time::{Duration, Instant};

/// Masters of the test cluster.
pub const MASTERS: usize = 3;

/// Three masters owning equal slot ranges (`redis-cli --cluster create`).
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts the nodes (keeping nothing on disk but the cluster layout),
    /// creates the cluster and waits until every node reports
    /// `cluster_state:ok`. Panics with install advice when `redis-server`
    /// or `redis-cli` is missing.
    pub fn start() -> Self {
        Self::start_as(false)
    }

    /// [`Self::start`] with every node keeping an append-only file fsynced
    /// on every write: what a node acknowledged survives its `kill -9`.
    pub fn start_durable() -> Self {
        Self::start_as(true)
    }

    fn start_as(durable: bool) -> Self {
        let nodes: Vec<RedisServer> = (0..MASTERS)
            .map(|_| RedisServer::start_cluster_node(durable))
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run redis-cli ({e}); run scripts/install-test-tools.sh or apt-get install redis-tools")
            });
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = Self { nodes };
        cluster.wait_ok();
        cluster
    }

    /// Waits up to 20 s until every running node says `cluster_state:ok`.
    pub fn wait_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.nodes.iter().all(|n| cluster_ok(n.port())) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the test Redis Cluster did not reach cluster_state:ok within 20 s");
    }

    /// `redis-cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        format!("redis-cluster://{}", hosts.join(","))
    }

    /// Node `i` (to stop, pause or restart it).
    pub fn node(&mut self, i: usize) -> &mut RedisServer {
        &mut self.nodes[i]
    }

    /// `redis://` URLs of the nodes, for looking at one directly.
    pub fn node_urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.url()).collect()
    }
}

/// Whether the node on `port` answers `CLUSTER INFO` with `cluster_state:ok`.
fn cluster_ok(port: u16) -> bool {
    Command::new("redis-cli")
        .args(["-p", &port.to_string(), "cluster", "info"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_masters_share_the_slots() {
        let cluster = RedisCluster::start();
        assert_eq!(cluster.node_urls().len(), MASTERS);
        let out = Command::new("redis-cli")
            .args(["-u", &cluster.node_urls()[0], "cluster", "shards"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.matches("master").count(), MASTERS, "{text}");
        assert!(cluster.url().starts_with("redis-cluster://127.0.0.1:"));
    }
}
