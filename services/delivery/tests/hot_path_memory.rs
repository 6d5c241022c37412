//! Redis memory of the hot path per message, on a real redis-server: what a
//! message costs while in flight (its queue entry, its live status, its
//! idempotency reservation and, for a subscribe message, the note of its
//! attempt) and what stays once it is final (its status and the note that
//! finds it by WeChat's msgid until the status TTL, and the caller's
//! idempotency record for its window — nothing else).
//!
//! `cargo test -p wxpush-delivery --test hot_path_memory -- --nocapture`
//! prints the bytes (README, sizing); the test asserts what stays.

use std::collections::HashMap;
use std::time::Duration;
use wxpush_delivery::config::QueueSettings;
use wxpush_delivery::idempotency::{IdempotencyStore, RedisIdempotency, record_key};
use wxpush_delivery::queue::{Queue, QueuedMessage, RedisQueue, now_ms};
use wxpush_proto::v1::{DeliveryResult, DeliveryStatus};
use wxpush_redis::{Connection, Partitions, Timeouts};
use wxpush_testkit::RedisServer;

const N: usize = 5_000;

/// A message as `SendAsync` accepts one in the demo: three variables, a
/// trace context, a 28-character openid, a 32-character message id.
fn message(i: usize) -> QueuedMessage {
    let traceparent = format!("00-{:032x}-{:016x}-01", i as u128 * 7919, i * 31);
    QueuedMessage {
        message_id: format!("{:032x}", i as u128 * 104_729 + 1),
        carrier: HashMap::from([("traceparent".to_string(), traceparent.clone())]),
        traceparent,
        app_id: "wx_demo_oa".into(),
        template_key: "order_shipped".into(),
        openid: format!("o6_bmjrPTlm6_2sgVt7hMZ{i:06}"),
        variables: HashMap::from([
            ("order_id".to_string(), format!("SF{i:010}")),
            ("ship_time".to_string(), "2026-11-30 10:00".to_string()),
            ("carrier".to_string(), "顺丰速运".to_string()),
        ]),
        accepted_at_ms: now_ms(),
        ..Default::default()
    }
}

fn result(m: &QueuedMessage, status: DeliveryStatus) -> DeliveryResult {
    DeliveryResult {
        message_id: m.message_id.clone(),
        app_id: m.app_id.clone(),
        status: status.into(),
        attempts: 1,
        // WeChat's msgids are 19-digit numbers.
        wechat_msgid: if status == DeliveryStatus::Sent {
            format!("31415926535{}", &m.message_id[24..])
        } else {
            String::new()
        },
        ..Default::default()
    }
}

async fn used_memory(conn: &Connection) -> i64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut conn.clone())
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

async fn keys(conn: &Connection, pattern: &str) -> Vec<String> {
    redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut conn.clone())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_final_message_leaves_only_its_status_and_the_callers_idempotency_record() {
    let redis = RedisServer::start();
    let conn = wxpush_redis::connect(&redis.url(), Timeouts::Commands).unwrap();
    let queue = RedisQueue::open(
        &redis.url(),
        "wxpush:",
        Partitions::ONE,
        &QueueSettings::default(),
    )
    .unwrap();
    let idempotency = RedisIdempotency::new(conn.clone(), "wxpush:");
    let messages: Vec<QueuedMessage> = (0..N).map(message).collect();
    // The consumer group and the stream exist before the baseline.
    queue.push(&messages[..1], 0).await.unwrap();
    for d in queue.next_batch(1).await.unwrap() {
        queue.ack(&d.id).await.unwrap();
    }
    let empty = used_memory(&conn).await;

    for chunk in messages.chunks(500) {
        queue.push(chunk, 0).await.unwrap();
    }
    let queued = used_memory(&conn).await;
    for m in &messages {
        queue
            .set_status(&result(m, DeliveryStatus::Queued))
            .await
            .unwrap();
    }
    let with_status = used_memory(&conn).await;
    for (i, m) in messages.iter().enumerate() {
        let key = record_key(&m.app_id, &format!("order-{i:08}"));
        idempotency.claim(&key, &m.message_id).await.unwrap();
    }
    let reserved = used_memory(&conn).await;
    for m in &messages {
        queue.begin_attempt(&m.message_id, 1).await.unwrap();
    }
    let in_flight = used_memory(&conn).await;

    // Each one delivered: acknowledged (its entry deleted), final, the
    // caller's key completed for its window.
    let mut done = 0;
    while done < N {
        for d in queue.next_batch(500).await.unwrap() {
            let m = &d.message;
            queue
                .set_status(&result(m, DeliveryStatus::Sent))
                .await
                .unwrap();
            queue.ack(&d.id).await.unwrap();
            let i = messages
                .iter()
                .position(|x| x.message_id == m.message_id)
                .unwrap();
            let key = record_key(&m.app_id, &format!("order-{i:08}"));
            idempotency
                .complete(
                    &key,
                    &result(m, DeliveryStatus::Sent),
                    Duration::from_secs(86_400),
                )
                .await
                .unwrap();
            done += 1;
        }
    }
    let finished = used_memory(&conn).await;

    let per = |a: i64, b: i64| (b - a) as f64 / N as f64;
    eprintln!(
        "hot path, {N} messages in flight: {:.0} bytes/message = queue entry {:.0} + live status {:.0} + idempotency reservation {:.0} + attempt note (subscribe) {:.0}; once final: {:.0} bytes/message (status {:.0} and its msgid note until the status TTL, and the caller's idempotency record for its window)",
        per(empty, in_flight),
        per(empty, queued),
        per(queued, with_status),
        per(with_status, reserved),
        per(reserved, in_flight),
        per(empty, finished),
        per(queued, with_status),
    );
    // What stays per message: its status and its idempotency record.
    assert_eq!(
        keys(&conn, "wxpush:msg:*:attempt").await.len(),
        0,
        "attempt notes gone"
    );
    assert_eq!(
        keys(&conn, "wxpush:msg:{*").await.len(),
        N,
        "one status each"
    );
    assert_eq!(
        keys(&conn, "wxpush:msg:wx:*").await.len(),
        N,
        "one msgid note each"
    );
    assert_eq!(
        keys(&conn, "wxpush:idem:*").await.len(),
        N,
        "one idempotency record each"
    );
    let depth = queue.depth(now_ms()).await.unwrap();
    assert_eq!((depth.ready, depth.delayed), (0, 0), "no queue entry left");
    assert!(finished < in_flight, "finishing frees the entries");
}
