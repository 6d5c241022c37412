//! Issue 19, items 2 and 9: the dead-letter store had no retention and no
//! cap (a few bad batches could fill a `noeviction` Redis for good), and
//! the Redis listing rescanned from an offset on every batch. On both
//! backends (and in PostgreSQL): the oldest go past the cap or the
//! retention, and a listing of many tied entries reads each exactly once.

use std::collections::HashSet;
use std::sync::Arc;
use wxpush_delivery::config::QueueSettings;
use wxpush_delivery::queue::{
    DeadLetterBounds, DeadLettersOnPostgres, DeadRecord, MemoryQueue, Queue, QueuedMessage,
    RedisQueue, now_ms,
};
use wxpush_proto::v1::DeadLetterFilter;
use wxpush_redis::Partitions;
use wxpush_testkit::{PostgresServer, RedisCluster, RedisServer};

fn record(id: usize, dead_at_ms: i64) -> DeadRecord {
    DeadRecord {
        message: QueuedMessage {
            message_id: format!("m{id:05}"),
            app_id: "wx1".into(),
            ..Default::default()
        },
        template_id: String::new(),
        trace_id: String::new(),
        dead_at_ms,
    }
}

fn bounded(max: u64) -> QueueSettings {
    QueueSettings {
        max_dead_letters: max,
        dead_letter_retention_secs: 86_400,
        ..Default::default()
    }
}

async fn all_ids(queue: &dyn Queue) -> Vec<String> {
    let mut ids = Vec::new();
    let mut token = String::new();
    loop {
        let page = queue
            .dead_letters(&DeadLetterFilter::default(), 37, &token)
            .await
            .unwrap();
        ids.extend(page.records.iter().map(|r| r.message.message_id.clone()));
        if page.next_page_token.is_empty() {
            return ids;
        }
        token = page.next_page_token;
    }
}

async fn the_oldest_go_past_the_cap_and_the_retention(queue: Arc<dyn Queue>) {
    let now = now_ms();
    // Two days old: past the one-day retention once anything is buried.
    queue.bury(&record(0, now - 2 * 86_400_000)).await.unwrap();
    for i in 1..=30 {
        queue.bury(&record(i, now + i as i64)).await.unwrap();
    }
    let ids = all_ids(queue.as_ref()).await;
    assert_eq!(ids.len(), 20, "{ids:?}");
    assert_eq!(ids.first().map(String::as_str), Some("m00030"));
    assert_eq!(ids.last().map(String::as_str), Some("m00011"));
}

async fn a_listing_of_ties_reads_each_once(queue: Arc<dyn Queue>) {
    let at = now_ms();
    for i in 0..1000 {
        // A batch dead-lettered in one millisecond: all tied.
        queue.bury(&record(i, at + (i / 400) as i64)).await.unwrap();
    }
    let ids = all_ids(queue.as_ref()).await;
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(ids.len(), 1000);
    assert_eq!(distinct.len(), 1000);
}

#[tokio::test]
async fn memory_dead_letters_are_bounded() {
    the_oldest_go_past_the_cap_and_the_retention(Arc::new(MemoryQueue::new(&bounded(20)))).await;
    a_listing_of_ties_reads_each_once(Arc::new(MemoryQueue::new(&bounded(5000)))).await;
}

#[tokio::test]
async fn redis_dead_letters_are_bounded() {
    let redis = RedisServer::start();
    let open = |prefix: &str, max| {
        Arc::new(RedisQueue::open(&redis.url(), prefix, Partitions::ONE, &bounded(max)).unwrap())
            as Arc<dyn Queue>
    };
    the_oldest_go_past_the_cap_and_the_retention(open("a:", 20)).await;
    a_listing_of_ties_reads_each_once(open("b:", 5000)).await;
}

#[tokio::test]
async fn redis_cluster_dead_letters_are_bounded() {
    let cluster = RedisCluster::start();
    let open = |prefix: &str, max| {
        let p = Partitions::new(3).unwrap();
        Arc::new(RedisQueue::open(&cluster.url(), prefix, p, &bounded(max)).unwrap())
            as Arc<dyn Queue>
    };
    the_oldest_go_past_the_cap_and_the_retention(open("a:", 20)).await;
    a_listing_of_ties_reads_each_once(open("b:", 5000)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_dead_letters_are_bounded_and_replayable() {
    let redis = RedisServer::start();
    let pg = PostgresServer::start();
    wxpush_delivery::queue::MIGRATIONS
        .apply_at(&pg.url())
        .await
        .expect("schema");
    let open = async |prefix: &str, max| {
        let settings = bounded(max);
        let redis =
            Arc::new(RedisQueue::open(&redis.url(), prefix, Partitions::ONE, &settings).unwrap());
        Arc::new(
            DeadLettersOnPostgres::open(redis, &pg.url(), DeadLetterBounds::of(&settings)).unwrap(),
        ) as Arc<dyn Queue>
    };
    the_oldest_go_past_the_cap_and_the_retention(open("a:", 20).await).await;
    pg.psql("TRUNCATE dead_letters");
    let queue = open("b:", 5000).await;
    a_listing_of_ties_reads_each_once(queue.clone()).await;
    assert_eq!(
        pg.psql("SELECT count(*) FROM dead_letters"),
        "1000",
        "on disk, not in Redis"
    );
    assert_eq!(queue.depth(now_ms()).await.unwrap().dead, 1000);
    // Replay takes them out, once.
    let ids = vec![
        "m00007".to_string(),
        "m00008".to_string(),
        "nope".to_string(),
    ];
    let back = queue.exhume(&ids).await.unwrap();
    let mut got: Vec<&str> = back.iter().map(|r| r.message.message_id.as_str()).collect();
    got.sort();
    assert_eq!(got, ["m00007", "m00008"]);
    assert!(queue.exhume(&ids).await.unwrap().is_empty());
    // A filter narrows the listing.
    let page = queue
        .dead_letters(
            &DeadLetterFilter {
                app_id: "wx_other".into(),
                ..Default::default()
            },
            10,
            "",
        )
        .await
        .unwrap();
    assert!(page.records.is_empty());
}
