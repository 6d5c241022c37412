//! The consent ledger on every backend, a Redis Cluster too: accepts are
//! counted (the same push once), spent by sends, given back, and turned
//! off by a reject; users and apps are apart.

use wxpush_delivery::consent::{ConsentLedger, MemoryConsent, RedisConsent, Subject};
use wxpush_testkit::{RedisCluster, RedisServer};

const WHO: Subject<'static> = Subject {
    app_id: "wx",
    openid: "o",
    template_id: "T",
};

async fn left(l: &dyn ConsentLedger) -> (u32, bool) {
    let read = l.read("wx", "o").await.unwrap();
    assert_eq!(read.len(), 1, "{read:?}");
    (read[0].accepts_left, read[0].rejected)
}

async fn counts_spends_and_turns_off(l: &dyn ConsentLedger) {
    assert!(!l.take(WHO).await.unwrap(), "nothing known: nothing left");
    assert!(
        l.read("wx", "o").await.unwrap().is_empty(),
        "a take records nothing"
    );
    l.answer(WHO, true, "e1", 1_000).await.unwrap();
    l.answer(WHO, true, "e1", 1_000).await.unwrap();
    l.answer(WHO, true, "e2", 2_000).await.unwrap();
    assert_eq!(left(l).await, (2, false), "the same push counts once");
    let read = l.read("wx", "o").await.unwrap();
    assert_eq!(read[0].template_id, "T");
    assert_eq!(read[0].updated_at.unwrap().seconds, 2);
    assert!(l.take(WHO).await.unwrap());
    l.give_back(WHO).await.unwrap();
    assert!(l.take(WHO).await.unwrap());
    assert!(l.take(WHO).await.unwrap());
    assert!(!l.take(WHO).await.unwrap());
    assert_eq!(left(l).await, (0, false));
    l.answer(WHO, true, "e3", 3_000).await.unwrap();
    l.answer(WHO, false, "e4", 4_000).await.unwrap();
    assert_eq!(left(l).await, (0, true));
    assert!(!l.take(WHO).await.unwrap());
    l.answer(WHO, true, "e5", 5_000).await.unwrap();
    assert_eq!(left(l).await, (1, false), "accepted again after a reject");
    assert!(l.read("wx", "other").await.unwrap().is_empty());
    assert!(l.read("wx2", "o").await.unwrap().is_empty());
}

#[tokio::test]
async fn memory_ledger() {
    counts_spends_and_turns_off(&MemoryConsent::default()).await;
}

#[tokio::test]
async fn redis_ledger() {
    let redis = RedisServer::start();
    let conn = wxpush_redis::connect(&redis.url(), wxpush_redis::Timeouts::Commands).unwrap();
    counts_spends_and_turns_off(&RedisConsent::new(conn, "t:")).await;
}

#[tokio::test]
async fn redis_cluster_ledger() {
    let cluster = RedisCluster::start();
    let conn = wxpush_redis::connect(&cluster.url(), wxpush_redis::Timeouts::Commands).unwrap();
    counts_spends_and_turns_off(&RedisConsent::new(conn, "t:")).await;
}
