//! A final status (SENT, FAILED, DEAD) never moves back, and a receipt
//! (DELIVERED, BLOCKED, UNDELIVERED) is moved by nothing but a receipt: a worker holding a
//! stale copy of a message (left by a killed worker, then reclaimed) must not
//! turn SENT into DEFERRED. Only a replay reopens a message. Every backend,
//! a Redis Cluster too.

use std::sync::Arc;
use wxpush_delivery::config::QueueSettings;
use wxpush_delivery::queue::{MemoryQueue, Queue, RedisQueue};
use wxpush_proto::v1::{DeliveryResult, DeliveryStatus};
use wxpush_redis::Partitions;
use wxpush_testkit::{RedisCluster, RedisServer};

fn with(status: DeliveryStatus) -> DeliveryResult {
    DeliveryResult {
        message_id: "m1".into(),
        status: status.into(),
        ..Default::default()
    }
}

async fn a_final_status_stays(queue: Arc<dyn Queue>) {
    assert!(
        queue
            .set_status(&with(DeliveryStatus::Queued))
            .await
            .unwrap()
    );
    assert!(queue.set_status(&with(DeliveryStatus::Sent)).await.unwrap());
    assert!(
        !queue
            .set_status(&with(DeliveryStatus::Deferred))
            .await
            .unwrap()
    );
    let kept = queue.status("m1").await.unwrap().unwrap();
    assert_eq!(kept.status, DeliveryStatus::Sent as i32);
    // Final over final is a correction and is stored.
    assert!(queue.set_status(&with(DeliveryStatus::Dead)).await.unwrap());
    queue.reopen(&with(DeliveryStatus::Queued)).await.unwrap();
    let reopened = queue.status("m1").await.unwrap().unwrap();
    assert_eq!(reopened.status, DeliveryStatus::Queued as i32);
    // WeChat's receipt after SENT is stored; nothing but another receipt
    // replaces it (a late SENT, a stale copy held back).
    assert!(queue.set_status(&with(DeliveryStatus::Sent)).await.unwrap());
    assert!(
        queue
            .set_status(&with(DeliveryStatus::Blocked))
            .await
            .unwrap()
    );
    for later in [
        DeliveryStatus::Sent,
        DeliveryStatus::Deferred,
        DeliveryStatus::Failed,
    ] {
        assert!(!queue.set_status(&with(later)).await.unwrap(), "{later:?}");
    }
    let kept = queue.status("m1").await.unwrap().unwrap();
    assert_eq!(kept.status, DeliveryStatus::Blocked as i32);
    // A SENT message is found by the msgid WeChat's receipt names, per
    // app; a live or failed one is noted under no msgid.
    for (id, status, msgid) in [
        ("m2", DeliveryStatus::Sent, "2000001"),
        ("m3", DeliveryStatus::Sending, "2000003"),
        ("m4", DeliveryStatus::Failed, "2000004"),
    ] {
        let r = DeliveryResult {
            message_id: id.into(),
            app_id: "wx1".into(),
            wechat_msgid: msgid.into(),
            status: status.into(),
            ..Default::default()
        };
        assert!(queue.set_status(&r).await.unwrap());
    }
    assert_eq!(
        queue.by_msgid("wx1", "2000001").await.unwrap().as_deref(),
        Some("m2")
    );
    assert_eq!(queue.by_msgid("wx2", "2000001").await.unwrap(), None);
    assert_eq!(queue.by_msgid("wx1", "2000003").await.unwrap(), None);
    assert_eq!(queue.by_msgid("wx1", "2000004").await.unwrap(), None);
    // A late SENT refused under the receipt of m1 notes nothing either.
    let late = DeliveryResult {
        app_id: "wx1".into(),
        wechat_msgid: "2000009".into(),
        ..with(DeliveryStatus::Sent)
    };
    assert!(!queue.set_status(&late).await.unwrap());
    assert_eq!(queue.by_msgid("wx1", "2000009").await.unwrap(), None);
}

#[tokio::test]
async fn memory_final_status_never_moves_back() {
    a_final_status_stays(Arc::new(MemoryQueue::new(&QueueSettings::default()))).await;
}

#[tokio::test]
async fn redis_final_status_never_moves_back() {
    let redis = RedisServer::start();
    let queue = RedisQueue::open(
        &redis.url(),
        "t:",
        Partitions::ONE,
        &QueueSettings::default(),
    )
    .unwrap();
    a_final_status_stays(Arc::new(queue)).await;
}

#[tokio::test]
async fn redis_cluster_final_status_never_moves_back() {
    let cluster = RedisCluster::start();
    let queue = RedisQueue::open(
        &cluster.url(),
        "t:",
        Partitions::new(6).unwrap(),
        &QueueSettings::default(),
    )
    .unwrap();
    a_final_status_stays(Arc::new(queue)).await;
}

/// A live status outlives `queue.status_ttl_secs` by as long as a message
/// may be scheduled ahead (`send_at`), so a message waiting longer than the
/// TTL still has one; a final status keeps the TTL.
#[tokio::test]
async fn a_waiting_message_keeps_its_status_as_long_as_it_may_wait() {
    let redis = RedisServer::start();
    let settings = QueueSettings {
        status_ttl_secs: 3_600,
        ..Default::default()
    };
    let queue = RedisQueue::open(&redis.url(), "t:", Partitions::ONE, &settings).unwrap();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut ttl = async |id: &str| -> i64 {
        redis::cmd("TTL")
            .arg(format!("t:msg:{{{id}}}"))
            .query_async(&mut conn)
            .await
            .unwrap()
    };
    assert!(
        queue
            .set_status(&with(DeliveryStatus::Deferred))
            .await
            .unwrap()
    );
    let ahead = wxpush_server::limits::MAX_SEND_AT_AHEAD_SECS;
    let live = ttl("m1").await;
    assert!(live > ahead && live <= ahead + 3_600, "{live}");
    assert!(queue.set_status(&with(DeliveryStatus::Sent)).await.unwrap());
    let done = ttl("m1").await;
    assert!(done > 3_500 && done <= 3_600, "{done}");
}
