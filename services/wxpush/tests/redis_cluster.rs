//! The production topology at scale: the four services as processes, the
//! log, templates and dead letters in a private PostgreSQL, and the hot
//! path (tokens, queue, rate limits, idempotency, statuses, the event
//! stream) on a private three-master Redis Cluster, with the queue and the
//! event stream in six partitions. The same behaviour as on one Redis;
//! a master's crash counted, a master stalled and emptied.

mod faults;
mod topology;

use faults::*;
use std::time::{Duration, Instant};
use tonic::Code;
use topology::{CLUSTER_PARTITIONS, Topology};
use wxpush_proto::v1::delivery_service_client::DeliveryServiceClient;
use wxpush_proto::v1::log_query_service_client::LogQueryServiceClient;
use wxpush_proto::v1::*;
use wxpush_testkit::RedisCluster;

/// Keys matching `pattern` on one node (`KEYS` is fine on a test node).
async fn keys_on(node_url: &str, pattern: &str) -> Vec<String> {
    let mut conn = wxpush_redis::connect(node_url, wxpush_redis::Timeouts::Commands).unwrap();
    redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_async_and_batch_sends_are_delivered_and_logged_on_a_cluster() {
    const OPENID: &str = "o_demo_follower";
    let t = Topology::start_on_cluster(RedisCluster::start()).await;
    let mut d = DeliveryServiceClient::new(t.channel("delivery").await);
    let mut ids = send_sent(&mut d, 0, 10).await;
    for n in 10..40 {
        let queued = d
            .send_async(SendAsyncRequest::from(shipped_to(OPENID, n)))
            .await
            .expect("SendAsync on a cluster")
            .into_inner();
        ids.push(queued.message_id);
    }
    ids.extend(
        send_batches(
            &mut d,
            "order_shipped",
            OPENID,
            &[("ship_time", "2026-11-30 10:00"), ("carrier", "顺丰速运")],
            "C",
            10,
        )
        .await,
    );
    let got = await_received(&t, OPENID, &ids, Duration::from_secs(30)).await;
    let missing: Vec<_> = ids.iter().filter(|id| !got.contains_key(*id)).collect();
    assert!(missing.is_empty(), "never delivered: {missing:?}");
    assert_eq!(got.values().filter(|n| **n > 1).count(), 0, "duplicates");
    let mut logs = LogQueryServiceClient::new(t.channel("logquery").await);
    let (present, doubled) = await_logged(&mut logs, &ids, Duration::from_secs(20)).await;
    assert_eq!((present, doubled), (ids.len(), 0), "every send logged once");
    // The partitions spread evenly: two of the queue's and two of the
    // event stream's on each master.
    let cluster = t.cluster.as_ref().unwrap();
    let per_master = usize::from(CLUSTER_PARTITIONS) / wxpush_testkit::redis_cluster::MASTERS;
    for node in cluster.node_urls() {
        let queue = keys_on(&node, "wxpush:queue:{*}").await;
        let events = keys_on(&node, "wxpush:events:{*}").await;
        assert_eq!(
            (queue.len(), events.len()),
            (per_master, per_master),
            "{node}: {queue:?} {events:?}"
        );
    }
}

/// A master `kill -9`ed and started again (its append-only file fsynced on
/// every write) while SendAsync calls stream in: every acknowledged
/// message is delivered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faultsuite_cluster_master_killed_loses_no_acknowledged_message() {
    const OPENID: &str = "o_demo_follower";
    let messages = 300 * soak();
    let mut t = Topology::start_on_cluster(RedisCluster::start_durable()).await;
    let stream = send_async_through(&mut t, OPENID, messages, |t| {
        let cluster = t.cluster.as_mut().unwrap();
        cluster.node(1).restart();
        cluster.wait_ok();
    })
    .await;
    let what =
        format!("Redis Cluster master kill -9 (1 of 3, appendfsync always), {messages} SendAsync");
    assert_acknowledged_delivered_once(&t, OPENID, &stream, &what).await;
    assert_all_alive(&mut t);
}

/// One master of three stalled (`SIGSTOP`) for a few calls, then restarted
/// empty: a call whose keys live on the stalled master answers
/// `DEADLINE_EXCEEDED` or `UNAVAILABLE` within its deadline, the others go
/// on; after `SIGCONT`, and after the master came back with nothing
/// (consumer groups and partitions re-created), sending resumes by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faultsuite_cluster_master_stalled_then_emptied_heals_by_itself() {
    let mut t = Topology::start_on_cluster(RedisCluster::start()).await;
    let mut d = DeliveryServiceClient::new(t.channel("delivery").await);
    assert_eq!(send(&mut d, 0).await, Ok(SENT));

    t.cluster.as_mut().unwrap().node(2).pause();
    let mut answers = std::collections::BTreeMap::<String, usize>::new();
    for n in 1..=6 {
        let asked = Instant::now();
        let answer = send(&mut d, n).await;
        let took = asked.elapsed();
        assert!(took < Duration::from_secs(5), "call {n} took {took:?}");
        assert!(
            matches!(
                answer,
                Ok(SENT) | Err(Code::Unavailable | Code::DeadlineExceeded)
            ),
            "call {n} during the stall: {answer:?}"
        );
        *answers.entry(format!("{answer:?}")).or_default() += 1;
    }
    t.cluster.as_mut().unwrap().node(2).resume();
    let resumed = serving_again(&mut d, 10).await;

    let cluster = t.cluster.as_mut().unwrap();
    cluster.node(2).restart();
    cluster.wait_ok();
    let emptied = serving_again(&mut d, 100).await;
    // The queue's partitions on the emptied master (their consumer groups
    // gone) work again: messages sent to every partition arrive.
    let back = Instant::now();
    let ids: Vec<String> = {
        let mut ids = Vec::new();
        for n in 0..12 {
            let queued = d
                .send_async(SendAsyncRequest::from(shipped_to(
                    "o_demo_follower",
                    900 + n,
                )))
                .await
                .expect("SendAsync after the empty restart")
                .into_inner();
            ids.push(queued.message_id);
        }
        ids
    };
    let got = await_received(&t, "o_demo_follower", &ids, Duration::from_secs(60)).await;
    let missing = ids.iter().filter(|id| !got.contains_key(*id)).count();
    println!(
        "fault table | Redis Cluster master stalled (SIGSTOP, 1 of 3) | answers during the stall: {answers:?} | serving {resumed:.1} s after SIGCONT | restarted empty: Send serving {emptied:.1} s after it is back, 12 SendAsync over every partition delivered in {:.1} s",
        back.elapsed().as_secs_f64()
    );
    assert_eq!(missing, 0, "async messages after the empty restart");
    assert_all_alive(&mut t);
}

/// Sync sends numbered from `n` until one is SENT (at most 30 s); the
/// seconds that took.
async fn serving_again(d: &mut Delivery, mut n: usize) -> f64 {
    let since = Instant::now();
    while send(d, n).await != Ok(SENT) {
        n += 1;
        assert!(
            since.elapsed() < Duration::from_secs(30),
            "no recovery within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    since.elapsed().as_secs_f64()
}
