//! The Redis Streams event stream against a real redis-server and a real
//! three-master Redis Cluster (the stream in partitions spread over the
//! masters): at-least-once reading across consumer restarts, claiming from
//! dead consumers, and recovery after Redis itself restarts empty.

use std::time::Duration;
use wxpush_events::{
    DeliveryEvent, EventSink, EventSource, Received, RedisStreamSink, RedisStreamSource,
    StreamSettings,
};
use wxpush_redis::Partitions;
use wxpush_testkit::{RedisCluster, RedisServer};

/// Where the stream lives in one test.
enum Target {
    Node(RedisServer),
    Cluster(RedisCluster),
}

impl Target {
    fn url(&self) -> String {
        match self {
            Target::Node(r) => r.url(),
            Target::Cluster(c) => c.url(),
        }
    }

    /// One partition on a node; two per master on the cluster.
    fn partitions(&self) -> Partitions {
        match self {
            Target::Node(_) => Partitions::ONE,
            Target::Cluster(_) => Partitions::new(6).unwrap(),
        }
    }

    /// Every server killed and started again empty.
    fn restart_empty(&mut self) {
        match self {
            Target::Node(r) => r.restart(),
            Target::Cluster(c) => {
                for i in 0..wxpush_testkit::redis_cluster::MASTERS {
                    c.node(i).restart();
                }
                c.wait_ok();
            }
        }
    }

    fn settings(&self, consumer: &str) -> StreamSettings {
        StreamSettings {
            redis_url: self.url(),
            key_prefix: "t:".into(),
            partitions: self.partitions(),
            consumer: consumer.into(),
            claim_idle: Duration::from_millis(200),
            block: Duration::from_millis(100),
            ..Default::default()
        }
    }

    /// The ids read, in order on one partition (a stream keeps order),
    /// sorted over several (each partition keeps its own).
    fn ids(&self, batch: &[Received]) -> Vec<String> {
        let mut ids: Vec<String> = batch.iter().map(|r| r.event.event_id.clone()).collect();
        if self.partitions() != Partitions::ONE {
            ids.sort();
        }
        ids
    }
}

fn node() -> Target {
    Target::Node(RedisServer::start())
}

fn cluster() -> Target {
    Target::Cluster(RedisCluster::start())
}

fn ev(i: usize) -> DeliveryEvent {
    DeliveryEvent {
        event_id: format!("e{i}"),
        message_id: format!("m{i}"),
        ..Default::default()
    }
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

async fn unacknowledged_events_are_read_again_after_a_restart(redis: Target) {
    let sink = RedisStreamSink::connect(&redis.settings("c1"))
        .await
        .unwrap();
    for i in 0..5 {
        sink.publish(ev(i)).await.unwrap();
    }
    let first = RedisStreamSource::connect(&redis.settings("c1"))
        .await
        .unwrap();
    let got = read_all(&first, 5).await;
    assert_eq!(redis.ids(&got), ["e0", "e1", "e2", "e3", "e4"]);
    let first_two: Vec<_> = got
        .iter()
        .filter(|r| ["e0", "e1"].contains(&r.event.event_id.as_str()))
        .map(|r| r.receipt.clone())
        .collect();
    first.ack(&first_two).await.unwrap();
    drop(first);

    // The same consumer restarted: its pending e2..e4 come back first.
    let again = RedisStreamSource::connect(&redis.settings("c1"))
        .await
        .unwrap();
    sink.publish(ev(5)).await.unwrap();
    let got = read_all(&again, 4).await;
    assert_eq!(redis.ids(&got), ["e2", "e3", "e4", "e5"]);
    let receipts: Vec<_> = got.iter().map(|r| r.receipt.clone()).collect();
    again.ack(&receipts).await.unwrap();
    let nothing = tokio::time::timeout(Duration::from_millis(400), again.next_batch(10)).await;
    assert!(nothing.is_err(), "no event is read twice once acknowledged");
}

async fn another_consumer_claims_what_a_dead_one_left(redis: Target) {
    let sink = RedisStreamSink::connect(&redis.settings("a"))
        .await
        .unwrap();
    for i in 0..3 {
        sink.publish(ev(i)).await.unwrap();
    }
    let dead = RedisStreamSource::connect(&redis.settings("a"))
        .await
        .unwrap();
    assert_eq!(read_all(&dead, 3).await.len(), 3);
    drop(dead);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let other = RedisStreamSource::connect(&redis.settings("b"))
        .await
        .unwrap();
    let got = read_all(&other, 3).await;
    assert_eq!(redis.ids(&got), ["e0", "e1", "e2"]);
}

async fn reading_recovers_after_redis_restarts_empty(mut redis: Target) {
    let s = redis.settings("c");
    let sink = RedisStreamSink::connect(&s).await.unwrap();
    let src = RedisStreamSource::connect(&s).await.unwrap();
    sink.publish(ev(0)).await.unwrap();
    assert_eq!(redis.ids(&read_all(&src, 1).await), ["e0"]);
    redis.restart_empty();
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
    assert!(
        redis.ids(&got).contains(&"e1".to_string()),
        "{:?}",
        redis.ids(&got)
    );
}

async fn an_undecodable_entry_is_kept_aside_with_its_bytes_and_never_read_again(redis: Target) {
    let s = redis.settings("c");
    let sink = RedisStreamSink::connect(&s).await.unwrap();
    let src = RedisStreamSource::connect(&s).await.unwrap();
    // Not a protobuf DeliveryEvent: a truncated varint field.
    let stream = wxpush_events::stream_keys("t:", redis.partitions()).remove(0);
    let garbage: &[u8] = &[0x0a, 0xff, 0xff];
    let mut conn = wxpush_redis::connect(&redis.url(), wxpush_redis::Timeouts::Commands).unwrap();
    let _: String = ::redis::cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("d")
        .arg(garbage)
        .query_async(&mut conn)
        .await
        .unwrap();
    sink.publish(ev(1)).await.unwrap();
    assert_eq!(redis.ids(&read_all(&src, 1).await), ["e1"]);
    /// An XRANGE entry: its id and its field-value pairs.
    type Entry = (String, Vec<(String, Vec<u8>)>);
    // Partitions are read concurrently: the garbage's partition may be read
    // after e1's; keep reading until it is set aside (5 s at most).
    let until = std::time::Instant::now() + Duration::from_secs(5);
    let rejected: Vec<Entry> = loop {
        let rejected: Vec<Entry> = ::redis::cmd("XRANGE")
            .arg(&src.rejected_keys()[0])
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap();
        if !rejected.is_empty() || std::time::Instant::now() > until {
            break rejected;
        }
        let _ = tokio::time::timeout(Duration::from_millis(200), src.next_batch(10)).await;
    };
    assert_eq!(rejected.len(), 1);
    let raw = rejected[0].1.iter().find(|(k, _)| k == "raw").unwrap();
    assert_eq!(raw.1, garbage);
    let mut pending = 0;
    for partition in wxpush_events::stream_keys("t:", redis.partitions()) {
        let entries: Vec<::redis::Value> = ::redis::cmd("XPENDING")
            .arg(&partition)
            .arg("logquery")
            .arg("-")
            .arg("+")
            .arg(10)
            .query_async(&mut conn)
            .await
            .unwrap();
        pending += entries.len();
    }
    assert_eq!(
        pending, 1,
        "only e1 is pending, the garbage was acknowledged"
    );
}

async fn entries_in_progress_are_not_handed_out_again(redis: Target) {
    let sink = RedisStreamSink::connect(&redis.settings("w"))
        .await
        .unwrap();
    for i in 0..3 {
        sink.publish(ev(i)).await.unwrap();
    }
    let src = RedisStreamSource::connect(&redis.settings("w"))
        .await
        .unwrap();
    assert_eq!(read_all(&src, 3).await.len(), 3);
    // Not acknowledged (still being worked on): idle reads re-read the own
    // backlog, and must skip them.
    let again = tokio::time::timeout(Duration::from_millis(1500), src.next_batch(10)).await;
    assert!(
        again.is_err(),
        "handed out twice: {:?}",
        again.map(|b| b.map(|b| b.map(|b| redis.ids(&b))))
    );
    drop(src);
    // A restarted consumer of the same name does get them back.
    let restarted = RedisStreamSource::connect(&redis.settings("w"))
        .await
        .unwrap();
    assert_eq!(
        redis.ids(&read_all(&restarted, 3).await),
        ["e0", "e1", "e2"]
    );
}

/// Each case on one Redis and on the cluster.
macro_rules! on_node_and_cluster {
    ($($case:ident),* $(,)?) => {
        mod on_node {
            $(#[tokio::test]
            async fn $case() {
                super::$case(super::node()).await;
            })*
        }
        mod on_cluster {
            $(#[tokio::test]
            async fn $case() {
                super::$case(super::cluster()).await;
            })*
        }
    };
}

on_node_and_cluster!(
    unacknowledged_events_are_read_again_after_a_restart,
    another_consumer_claims_what_a_dead_one_left,
    reading_recovers_after_redis_restarts_empty,
    an_undecodable_entry_is_kept_aside_with_its_bytes_and_never_read_again,
    entries_in_progress_are_not_handed_out_again,
);
