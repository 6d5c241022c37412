//! Measures Redis memory per record (README: "Redis memory per record"):
//! `INFO memory` before and after N generated records, minus the record
//! values themselves ("the data", measured with `STRLEN`), with `MEMORY
//! USAGE` of each kind of key printed for the breakdown.
//!
//! Three runs on the same server, as Redis encodes the indexes at three
//! volumes: small (its default compact listpacks: a day's trace buckets
//! under 128 traces, users under 128 messages in retention), high (the
//! trace buckets past 128 traces: more than ~32 000 messages a day), and
//! the worst case (every user past 128 messages too). The goal, 600
//! bytes of overhead per record, holds in the first two; the worst case is
//! held to its measured budget so it cannot get worse unnoticed.

mod common;

use common::{Backend, Kind, generate};
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use wxpush_logquery::LogStore;

const N: usize = 20_000;
const GOAL_OVERHEAD_BYTES: f64 = 600.0;
const WORST_CASE_BUDGET_BYTES: f64 = 680.0;

async fn used_memory(conn: &mut MultiplexedConnection) -> i64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory in INFO memory")
}

/// `MEMORY USAGE` summed over the keys matching `pattern`: (keys, bytes).
async fn usage(conn: &mut MultiplexedConnection, pattern: &str) -> (usize, i64) {
    let mut keys: Vec<String> = Vec::new();
    let mut iter: redis::AsyncIter<String> = conn.scan_match(pattern).await.unwrap();
    while let Some(k) = iter.next_item().await {
        keys.push(k.unwrap());
    }
    drop(iter);
    let mut bytes = 0;
    for k in &keys {
        bytes += redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(k)
            .arg("SAMPLES")
            .arg(0)
            .query_async::<Option<i64>>(conn)
            .await
            .unwrap()
            .unwrap_or(0);
    }
    (keys.len(), bytes)
}

/// Bytes per record: total, data, overhead.
struct PerRecord {
    total: f64,
    data: f64,
    overhead: f64,
}

async fn measure(
    store: &dyn LogStore,
    conn: &mut MultiplexedConnection,
    regime: &str,
) -> PerRecord {
    let events = generate(N, 3);
    // The script cache and allocator warm-up are not per record.
    store.apply(&events[..2]).await.unwrap();
    let before = used_memory(conn).await;
    for chunk in events[2..].chunks(4000) {
        store.apply(chunk).await.unwrap();
    }
    let after = used_memory(conn).await;
    let ids: Vec<String> = common::fold(&events)
        .into_iter()
        .map(|r| r.message_id)
        .collect();
    let mut data = 0i64;
    for id in &ids {
        data += conn
            .strlen::<_, i64>(format!("wxpush:log:r:{id}"))
            .await
            .unwrap();
    }
    let n = ids.len() as f64 - 1.0;
    let total = (after - before) as f64 / n;
    let data = data as f64 / ids.len() as f64;
    let mut parts = Vec::new();
    for (name, pattern) in [
        ("records (value incl.)", "wxpush:log:r:*"),
        ("combos", "wxpush:log:c:*"),
        ("users", "wxpush:log:o:*"),
        ("trace buckets", "wxpush:log:tb:*"),
        ("trace zsets", "wxpush:log:t:*"),
    ] {
        let (keys, bytes) = usage(conn, pattern).await;
        parts.push(format!("{name} {:.0} ({keys} keys)", bytes as f64 / n));
    }
    eprintln!(
        "redis memory, {regime}, {N} records: {total:.0} bytes/record = {data:.0} data (record value) \
         + {:.0} overhead; MEMORY USAGE per record: {} (the rest: keyspace and expiry tables)",
        total - data,
        parts.join(", ")
    );
    assert!(total > data, "the measurement sees the records");
    PerRecord {
        total,
        data,
        overhead: total - data,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_memory_per_record_is_within_the_goal() {
    let backend = Backend::start(Kind::Redis).await;
    let client = redis::Client::open(backend.redis_url().unwrap()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    // (regime, hash listpack entries, zset listpack entries, budget)
    let regimes = [
        ("small volume", 128, 128, GOAL_OVERHEAD_BYTES),
        ("high volume", 0, 128, GOAL_OVERHEAD_BYTES),
        ("worst case", 0, 0, WORST_CASE_BUDGET_BYTES),
    ];
    let mut measured: Vec<PerRecord> = Vec::new();
    for (regime, hash_entries, zset_entries, _) in regimes {
        redis::cmd("FLUSHALL").exec_async(&mut conn).await.unwrap();
        for (setting, value) in [
            ("hash-max-listpack-entries", hash_entries),
            ("zset-max-listpack-entries", zset_entries),
        ] {
            redis::cmd("CONFIG")
                .arg("SET")
                .arg(setting)
                .arg(value)
                .exec_async(&mut conn)
                .await
                .unwrap();
        }
        measured.push(measure(backend.store.as_ref(), &mut conn, regime).await);
    }
    assert!(
        measured
            .iter()
            .all(|m| (m.data - measured[0].data).abs() < 1.0),
        "every run stores the same records"
    );
    assert!(
        measured[0].total < measured[1].total && measured[1].total < measured[2].total,
        "each regime costs more than the one before: the settings took effect"
    );
    for ((regime, _, _, budget), m) in regimes.iter().zip(&measured) {
        assert!(
            m.overhead <= *budget,
            "{regime}: {:.0} bytes of overhead per record, budget {budget}",
            m.overhead
        );
    }
}
