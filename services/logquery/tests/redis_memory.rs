//! Measures Redis memory per record (README: "Redis memory per record"):
//! `INFO memory` before and after N generated records, minus the record
//! values themselves ("the data", measured with `STRLEN`), with
//! `MEMORY USAGE` of each kind of key printed for the breakdown.
//!
//! The goal is 600 bytes of overhead; this design measures ~760
//! (the per-trace key, ~220 bytes, is the largest part; see the README).
//! The test holds the line at the measured budget so it cannot get worse
//! unnoticed.

mod common;

use common::{Backend, Kind, generate};
use redis::AsyncCommands;

const N: usize = 20_000;
const BUDGET_OVERHEAD_BYTES: f64 = 800.0;

async fn used_memory(conn: &mut redis::aio::MultiplexedConnection) -> i64 {
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

async fn usage(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(key)
        .arg("SAMPLES")
        .arg(0)
        .query_async::<Option<i64>>(conn)
        .await
        .unwrap()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_memory_per_record_is_within_budget() {
    let backend = Backend::start(Kind::Redis).await;
    let client = redis::Client::open(backend.redis_url().unwrap()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let events = generate(N, 3);
    // The script cache and allocator warm-up are not per record.
    backend.store.apply(&events[..2]).await.unwrap();
    let before = used_memory(&mut conn).await;
    for chunk in events[2..].chunks(4000) {
        backend.store.apply(chunk).await.unwrap();
    }
    let after = used_memory(&mut conn).await;
    let ids: Vec<String> = common::fold(&events)
        .into_iter()
        .map(|r| r.message_id)
        .collect();
    let mut data = 0i64;
    let mut record_key = 0i64;
    for id in &ids {
        let key = format!("wxpush:log:r:{id}");
        data += conn.strlen::<_, i64>(&key).await.unwrap();
    }
    for id in ids.iter().take(200) {
        record_key += usage(&mut conn, &format!("wxpush:log:r:{id}")).await;
    }
    let n = ids.len() as f64 - 1.0;
    let per_record = (after - before) as f64 / n;
    let data_per_record = data as f64 / ids.len() as f64;
    let overhead = per_record - data_per_record;
    let all = usage(&mut conn, "wxpush:log:all").await as f64 / n;
    let combos: Vec<String> = conn.smembers("wxpush:log:combos").await.unwrap();
    let mut combo_bytes = 0;
    for c in &combos {
        combo_bytes += usage(&mut conn, &format!("wxpush:log:c:{c}")).await;
    }
    eprintln!(
        "redis memory for {N} records: {per_record:.0} bytes/record = {data_per_record:.0} data (record value) + {overhead:.0} overhead; \
         MEMORY USAGE: record key {:.0} (incl. value), log:all {all:.0}/record, {} combos {:.0}/record",
        record_key as f64 / 200.0,
        combos.len(),
        combo_bytes as f64 / n
    );
    assert!(
        per_record > data_per_record,
        "the measurement sees the records"
    );
    assert!(
        overhead <= BUDGET_OVERHEAD_BYTES,
        "{overhead:.0} bytes of overhead per record, budget {BUDGET_OVERHEAD_BYTES}"
    );
}
