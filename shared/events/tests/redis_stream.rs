//! The Redis Streams event stream against a real redis-server: at-least-once
//! reading across consumer restarts, claiming from dead consumers, and
//! recovery after Redis itself restarts.

use std::time::Duration;
use wxpush_events::{
    DeliveryEvent, EventSink, EventSource, Received, RedisStreamSink, RedisStreamSource,
    StreamSettings,
};
use wxpush_testkit::RedisServer;

fn settings(redis: &RedisServer, consumer: &str) -> StreamSettings {
    StreamSettings {
        redis_url: redis.url(),
        key_prefix: "t:".into(),
        consumer: consumer.into(),
        claim_idle: Duration::from_millis(200),
        block: Duration::from_millis(100),
        ..Default::default()
    }
}

fn ev(i: usize) -> DeliveryEvent {
    DeliveryEvent {
        event_id: format!("e{i}"),
        message_id: format!("m{i}"),
        ..Default::default()
    }
}

fn ids(batch: &[Received]) -> Vec<String> {
    batch.iter().map(|r| r.event.event_id.clone()).collect()
}

async fn read_all(src: &RedisStreamSource, n: usize) -> Vec<Received> {
    let mut got = Vec::new();
    while got.len() < n {
        let batch = tokio::time::timeout(Duration::from_secs(5), src.next_batch(n))
            .await
            .expect("events within 5 s")
            .unwrap()
            .unwrap();
        got.extend(batch);
    }
    got
}

#[tokio::test]
async fn unacknowledged_events_are_read_again_after_a_restart() {
    let redis = RedisServer::start();
    let sink = RedisStreamSink::connect(&settings(&redis, "c1"))
        .await
        .unwrap();
    for i in 0..5 {
        sink.publish(ev(i)).await.unwrap();
    }
    let first = RedisStreamSource::connect(&settings(&redis, "c1"))
        .await
        .unwrap();
    let got = read_all(&first, 5).await;
    assert_eq!(ids(&got), ["e0", "e1", "e2", "e3", "e4"]);
    first
        .ack(&[got[0].receipt.clone(), got[1].receipt.clone()])
        .await
        .unwrap();
    drop(first);

    // The same consumer restarted: its pending e2..e4 come back first.
    let again = RedisStreamSource::connect(&settings(&redis, "c1"))
        .await
        .unwrap();
    sink.publish(ev(5)).await.unwrap();
    let got = read_all(&again, 4).await;
    assert_eq!(ids(&got), ["e2", "e3", "e4", "e5"]);
    let receipts: Vec<_> = got.iter().map(|r| r.receipt.clone()).collect();
    again.ack(&receipts).await.unwrap();
    let nothing = tokio::time::timeout(Duration::from_millis(400), again.next_batch(10)).await;
    assert!(nothing.is_err(), "no event is read twice once acknowledged");
}

#[tokio::test]
async fn another_consumer_claims_what_a_dead_one_left() {
    let redis = RedisServer::start();
    let sink = RedisStreamSink::connect(&settings(&redis, "a"))
        .await
        .unwrap();
    for i in 0..3 {
        sink.publish(ev(i)).await.unwrap();
    }
    let dead = RedisStreamSource::connect(&settings(&redis, "a"))
        .await
        .unwrap();
    assert_eq!(read_all(&dead, 3).await.len(), 3);
    drop(dead);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let other = RedisStreamSource::connect(&settings(&redis, "b"))
        .await
        .unwrap();
    let got = read_all(&other, 3).await;
    assert_eq!(ids(&got), ["e0", "e1", "e2"]);
}

#[tokio::test]
async fn reading_recovers_after_redis_restarts() {
    let mut redis = RedisServer::start();
    let s = settings(&redis, "c");
    let sink = RedisStreamSink::connect(&s).await.unwrap();
    let src = RedisStreamSource::connect(&s).await.unwrap();
    sink.publish(ev(0)).await.unwrap();
    assert_eq!(ids(&read_all(&src, 1).await), ["e0"]);
    redis.restart();
    // Errors while the connection is re-established, then events again.
    let mut got = None;
    for _ in 0..50 {
        if sink.publish(ev(1)).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..50 {
        match tokio::time::timeout(Duration::from_secs(2), src.next_batch(10)).await {
            Ok(Ok(Some(batch))) => {
                got = Some(batch);
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let got = got.expect("reads again after the restart");
    assert!(ids(&got).contains(&"e1".to_string()), "{:?}", ids(&got));
}

#[tokio::test]
async fn an_undecodable_entry_is_kept_aside_with_its_bytes_and_never_read_again() {
    let redis = RedisServer::start();
    let s = settings(&redis, "c");
    let sink = RedisStreamSink::connect(&s).await.unwrap();
    let src = RedisStreamSource::connect(&s).await.unwrap();
    // Not a protobuf DeliveryEvent: a truncated varint field.
    let garbage: &[u8] = &[0x0a, 0xff, 0xff];
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: String = redis::cmd("XADD")
        .arg("t:events")
        .arg("*")
        .arg("d")
        .arg(garbage)
        .query_async(&mut conn)
        .await
        .unwrap();
    sink.publish(ev(1)).await.unwrap();
    assert_eq!(ids(&read_all(&src, 1).await), ["e1"]);
    /// An XRANGE entry: its id and its field-value pairs.
    type Entry = (String, Vec<(String, Vec<u8>)>);
    let rejected: Vec<Entry> = redis::cmd("XRANGE")
        .arg(src.rejected_key())
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(rejected.len(), 1);
    let raw = rejected[0].1.iter().find(|(k, _)| k == "raw").unwrap();
    assert_eq!(raw.1, garbage);
    let pending: Vec<redis::Value> = redis::cmd("XPENDING")
        .arg("t:events")
        .arg("logquery")
        .arg("-")
        .arg("+")
        .arg(10)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        pending.len(),
        1,
        "only e1 is pending, the garbage was acknowledged"
    );
}
