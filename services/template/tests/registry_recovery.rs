//! Templates are configuration and must not vanish with Redis (issue 13):
//! after Redis restarts empty, the registry rebuilds itself from the
//! templates file and from each replica's last-known copies, with no
//! restart of the service; while Redis is down, reads are served from the
//! copies. A private `redis-server` per test.

use wxpush_proto::v1::{MessageKind, Template};
use wxpush_server::config::{BackendKind, BackendSettings};
use wxpush_template::TemplateRegistry;
use wxpush_template::error::TemplateError;
use wxpush_testkit::RedisServer;

fn tpl(key: &str) -> Template {
    Template {
        key: key.into(),
        app_id: "wx1".into(),
        kind: MessageKind::Template as i32,
        template_id: "T1".into(),
        fields: [("keyword1".to_string(), "{{a}}".to_string())].into(),
        ..Default::default()
    }
}

async fn replica(redis: &RedisServer) -> TemplateRegistry {
    TemplateRegistry::open(&BackendSettings {
        kind: BackendKind::Redis,
        redis_url: redis.url(),
        key_prefix: "t:".into(),
        ..Default::default()
    })
    .await
    .unwrap()
}

fn keys(list: &[Template]) -> Vec<&str> {
    list.iter().map(|t| t.key.as_str()).collect()
}

#[tokio::test]
async fn a_registry_lost_with_redis_is_rebuilt_from_the_file_and_every_replicas_copies() {
    let mut redis = RedisServer::start();
    let a = replica(&redis).await;
    let b = replica(&redis).await;
    // Both replicas start from the same file; each creates one template
    // through the API and reads the other's.
    a.seed(vec![tpl("from_file")]).await.unwrap();
    b.seed(vec![tpl("from_file")]).await.unwrap();
    a.upsert(tpl("made_on_a"), 0).await.unwrap();
    b.upsert(tpl("made_on_b"), 0).await.unwrap();
    assert_eq!(
        keys(&a.list(None).await.unwrap()),
        ["from_file", "made_on_a", "made_on_b"]
    );

    redis.restart(); // empty: it keeps nothing on disk

    // A read of a known template notices the loss and rebuilds at once.
    assert_eq!(a.get("from_file").await.unwrap().key, "from_file");
    assert_eq!(a.get("made_on_a").await.unwrap().version, 1);
    // a knew made_on_b too (it listed it), so it is back already; b sees
    // the new epoch, and its own pass must not fail on what a restored.
    assert!(b.recover_if_lost().await.unwrap(), "b notices the rebuild");
    assert_eq!(
        keys(&b.list(None).await.unwrap()),
        ["from_file", "made_on_a", "made_on_b"]
    );
    // Nothing lost twice: a further look finds the same epoch.
    assert!(!a.recover_if_lost().await.unwrap());
    assert!(!b.recover_if_lost().await.unwrap());
}

#[tokio::test]
async fn a_template_only_one_replica_knew_comes_back_from_that_replica() {
    let mut redis = RedisServer::start();
    let a = replica(&redis).await;
    let b = replica(&redis).await;
    a.seed(vec![tpl("from_file")]).await.unwrap();
    b.seed(vec![tpl("from_file")]).await.unwrap();
    b.upsert(tpl("only_b_knows"), 0).await.unwrap();

    redis.restart();

    // a rebuilds first (its watchdog, or a read): only what it knew.
    assert!(a.recover_if_lost().await.unwrap());
    assert!(matches!(
        a.get("only_b_knows").await,
        Err(TemplateError::NotFound(_))
    ));
    // b's pass restores its own.
    assert!(b.recover_if_lost().await.unwrap());
    assert_eq!(a.get("only_b_knows").await.unwrap().key, "only_b_knows");
}

#[tokio::test]
async fn while_redis_is_down_reads_are_served_from_the_copies() {
    let mut redis = RedisServer::start();
    let a = replica(&redis).await;
    a.seed(vec![tpl("from_file")]).await.unwrap();
    redis.stop();
    assert_eq!(a.get("from_file").await.unwrap().key, "from_file");
    assert_eq!(keys(&a.list(None).await.unwrap()), ["from_file"]);
    // A template it never saw is still an error, and a write cannot land.
    assert!(matches!(
        a.get("never_seen").await,
        Err(TemplateError::Backend(_))
    ));
    assert!(matches!(
        a.upsert(tpl("new"), 0).await,
        Err(TemplateError::Backend(_))
    ));
}

#[tokio::test]
async fn a_deleted_template_stays_deleted() {
    let redis = RedisServer::start();
    let a = replica(&redis).await;
    let b = replica(&redis).await;
    a.seed(vec![]).await.unwrap();
    b.seed(vec![]).await.unwrap();
    a.upsert(tpl("gone"), 0).await.unwrap();
    assert_eq!(b.get("gone").await.unwrap().key, "gone");
    a.delete("gone", 0).await.unwrap();
    // b's copy is not a reason to bring it back: the data was not lost.
    assert!(matches!(
        b.get("gone").await,
        Err(TemplateError::NotFound(_))
    ));
    assert!(!b.recover_if_lost().await.unwrap());
    assert!(matches!(
        b.get("gone").await,
        Err(TemplateError::NotFound(_))
    ));
}
