//! One contract for every template backend: the same checks run on the
//! memory store, on Redis and on PostgreSQL (a private server per test,
//! from `wxpush-testkit`), through the registry as the gRPC handlers use it.

use std::sync::Mutex;
use tonic::{Code, Status};
use wxpush_proto::v1::{AppKind, MessageKind, Template, WechatTemplate};
use wxpush_server::config::{BackendKind, BackendSettings};
use wxpush_server::trace_context::TraceContext;
use wxpush_template::TemplateRegistry;
use wxpush_template::error::TemplateError;
use wxpush_template::sync::{TemplateSource, parse, sync_app};
use wxpush_testkit::{PostgresServer, RedisServer};

fn tpl(key: &str, app_id: &str) -> Template {
    Template {
        key: key.into(),
        app_id: app_id.into(),
        kind: MessageKind::Template as i32,
        template_id: "T1".into(),
        fields: [("keyword1".to_string(), "{{a}}".to_string())].into(),
        ..Default::default()
    }
}

fn keys(list: &[Template]) -> Vec<&str> {
    list.iter().map(|t| t.key.as_str()).collect()
}

async fn crud_with_versions(r: TemplateRegistry) {
    let v1 = r.upsert(tpl("a", "wx1"), 0).await.unwrap();
    assert_eq!(v1.version, 1);
    assert!(v1.updated_at.is_some());
    assert!(matches!(
        r.upsert(tpl("a", "wx1"), 0).await,
        Err(TemplateError::AlreadyExists(_))
    ));
    let v2 = r.upsert(tpl("a", "wx1"), 1).await.unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(r.get("a").await.unwrap(), v2, "stored exactly as returned");
    let stale = r.upsert(tpl("a", "wx1"), 1).await.unwrap_err();
    assert!(matches!(
        stale,
        TemplateError::VersionConflict { actual: 2, .. }
    ));
    assert_eq!(Status::from(stale).code(), Code::Aborted);
    assert!(matches!(
        r.upsert(tpl("nope", "wx1"), 3).await,
        Err(TemplateError::VersionConflict { actual: 0, .. })
    ));

    r.upsert(tpl("c", "wx2"), 0).await.unwrap();
    r.upsert(tpl("b", "wx1"), 0).await.unwrap();
    assert_eq!(keys(&r.list(None).await.unwrap()), ["a", "b", "c"]);
    assert_eq!(keys(&r.list(Some("wx1")).await.unwrap()), ["a", "b"]);
    // Moving a template to another app moves it between app indexes.
    r.upsert(tpl("b", "wx2"), 1).await.unwrap();
    assert_eq!(keys(&r.list(Some("wx1")).await.unwrap()), ["a"]);
    assert_eq!(keys(&r.list(Some("wx2")).await.unwrap()), ["b", "c"]);

    assert!(matches!(
        r.delete("a", 1).await,
        Err(TemplateError::VersionConflict { actual: 2, .. })
    ));
    r.delete("a", 2).await.unwrap();
    r.delete("c", 0).await.unwrap();
    assert!(matches!(r.get("a").await, Err(TemplateError::NotFound(_))));
    assert!(matches!(
        r.delete("a", 0).await,
        Err(TemplateError::NotFound(_))
    ));
    assert_eq!(keys(&r.list(None).await.unwrap()), ["b"]);
    assert!(r.list(Some("wx1")).await.unwrap().is_empty());
    // A deleted key can be created again, from version 1.
    assert_eq!(r.upsert(tpl("a", "wx1"), 0).await.unwrap().version, 1);
}

async fn concurrent_upserts_one_wins(r: TemplateRegistry) {
    r.upsert(tpl("hot", "wx1"), 0).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let r = r.clone();
            tokio::spawn(async move {
                let mut t = tpl("hot", "wx1");
                t.url = format!("https://e.com/{i}");
                r.upsert(t, 1).await.map_err(Status::from)
            })
        })
        .collect();
    let mut won = Vec::new();
    let mut aborted = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(t) => won.push(t),
            Err(s) => {
                assert_eq!(s.code(), Code::Aborted, "{s:?}");
                aborted += 1;
            }
        }
    }
    assert_eq!(won.len(), 1, "exactly one write wins");
    assert_eq!(aborted, 7);
    let stored = r.get("hot").await.unwrap();
    assert_eq!(stored.version, 2);
    assert_eq!(
        stored.url, won[0].url,
        "the winner's write is the one stored"
    );

    // Concurrent creates: one wins, the others find the key taken.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let r = r.clone();
            tokio::spawn(async move { r.upsert(tpl("new", "wx1"), 0).await })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => created += 1,
            Err(e) => assert!(matches!(e, TemplateError::AlreadyExists(_)), "{e:?}"),
        }
    }
    assert_eq!(created, 1);
}

async fn wechat_templates_round_trip(r: TemplateRegistry) {
    assert_eq!(r.wechat_templates("wx1").await.unwrap(), None);
    r.set_wechat_templates("wx1", &[]).await.unwrap();
    assert_eq!(r.wechat_templates("wx1").await.unwrap(), Some(vec![]));
    let list = vec![parse(
        "T1".into(),
        "标题".into(),
        "{{keyword1.DATA}}".into(),
    )];
    r.set_wechat_templates("wx1", &list).await.unwrap();
    assert_eq!(r.wechat_templates("wx1").await.unwrap(), Some(list));
    assert_eq!(r.wechat_templates("wx2").await.unwrap(), None);
}

async fn seeding_is_idempotent(r: TemplateRegistry) {
    r.seed(vec![tpl("a", "wx1"), tpl("b", "wx1")])
        .await
        .unwrap();
    r.seed(vec![tpl("a", "wx1"), tpl("b", "wx1")])
        .await
        .unwrap();
    assert_eq!(r.get("a").await.unwrap().version, 1);
    let mut changed = tpl("a", "wx1");
    changed.url = "https://e.com".into();
    r.seed(vec![changed]).await.unwrap();
    assert_eq!(r.get("a").await.unwrap().version, 2);
    let bad = Template {
        key: "Bad Key".into(),
        ..tpl("x", "wx1")
    };
    assert!(matches!(
        r.seed(vec![bad]).await,
        Err(TemplateError::InvalidArgument(_))
    ));
}

struct Fixed(Mutex<Vec<WechatTemplate>>);

#[async_trait::async_trait]
impl TemplateSource for Fixed {
    async fn fetch(
        &self,
        _app_id: &str,
        _kind: AppKind,
        _trace: &TraceContext,
    ) -> Result<Vec<WechatTemplate>, TemplateError> {
        Ok(self.0.lock().unwrap().clone())
    }
}

async fn sync_flags_vanished_templates(r: TemplateRegistry) {
    r.upsert(tpl("a", "wx1"), 0).await.unwrap();
    let source = Fixed(Mutex::new(vec![parse(
        "T1".into(),
        "t".into(),
        "{{keyword1.DATA}}".into(),
    )]));
    let trace = TraceContext::new_root();
    let first = sync_app(&r, &source, "wx1", AppKind::OfficialAccount, &trace)
        .await
        .unwrap();
    assert_eq!(first.added, ["T1"]);
    assert_eq!(
        r.get("a").await.unwrap().wechat_content,
        "{{keyword1.DATA}}"
    );
    source.0.lock().unwrap().clear();
    let second = sync_app(&r, &source, "wx1", AppKind::OfficialAccount, &trace)
        .await
        .unwrap();
    assert_eq!(second.removed, ["T1"]);
    assert_eq!(second.flagged_keys, ["a"]);
    let a = r.get("a").await.unwrap();
    assert!(a.wechat_template_missing);
    assert_eq!(a.version, 3);
}

/// The memory backend, through the same configuration path as the binary.
async fn memory() -> (TemplateRegistry, Option<RedisServer>) {
    let r = TemplateRegistry::open(&BackendSettings::default())
        .await
        .unwrap();
    (r, None)
}

/// A private Redis, with a prefix so keys of other owners would not clash.
async fn redis() -> (TemplateRegistry, Option<RedisServer>) {
    let server = RedisServer::start();
    let settings = BackendSettings {
        kind: BackendKind::Redis,
        redis_url: server.url(),
        key_prefix: "test:wxpush:".into(),
        ..Default::default()
    };
    let r = TemplateRegistry::open(&settings).await.unwrap();
    (r, Some(server))
}

/// A private PostgreSQL with the schema applied, as the service's start-up
/// step applies it.
async fn postgres() -> (TemplateRegistry, PostgresServer) {
    let server = PostgresServer::start();
    wxpush_template::store::postgres::MIGRATIONS
        .apply_at(&server.url())
        .await
        .expect("schema");
    let settings = BackendSettings {
        kind: BackendKind::Postgres,
        postgres_url: wxpush_server::config::Secret::new(server.url()),
        ..Default::default()
    };
    let r = TemplateRegistry::open(&settings).await.unwrap();
    (r, server)
}

macro_rules! on_both_backends {
    ($($check:ident),* $(,)?) => {
        mod memory_backend {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                let (r, _server) = super::memory().await;
                super::$check(r).await;
            })*
        }
        mod redis_backend {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                let (r, _server) = super::redis().await;
                super::$check(r).await;
            })*
        }
        mod postgres_backend {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                let (r, _server) = super::postgres().await;
                super::$check(r).await;
            })*
        }
    };
}

on_both_backends!(
    crud_with_versions,
    concurrent_upserts_one_wins,
    wechat_templates_round_trip,
    seeding_is_idempotent,
    sync_flags_vanished_templates,
);

#[tokio::test]
async fn redis_keys_live_under_the_prefix() {
    let (r, server) = redis().await;
    r.upsert(tpl("a", "wx1"), 0).await.unwrap();
    let client = redis::Client::open(server.as_ref().unwrap().url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut all: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    all.sort();
    assert_eq!(
        all,
        [
            "test:wxpush:template:a",
            "test:wxpush:templates:all",
            "test:wxpush:templates:app:wx1"
        ]
    );
}

/// PostgreSQL keeps every version, deletions included, newest first and
/// paged; the other backends say they keep none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_every_revision() {
    use wxpush_proto::v1::TemplateChange;
    let (r, _pg) = postgres().await;
    r.upsert(tpl("a", "wx1"), 0).await.unwrap();
    let mut moved = tpl("a", "wx2");
    moved.template_id = "T2".into();
    r.upsert(moved, 1).await.unwrap();
    r.upsert(tpl("other", "wx1"), 0).await.unwrap();
    r.delete("a", 2).await.unwrap();
    r.upsert(tpl("a", "wx1"), 0).await.unwrap();
    let mut all = Vec::new();
    let mut before = None;
    loop {
        let page = r.revisions("a", 2, before).await.unwrap();
        assert!(page.revisions.len() <= 2);
        before = page.revisions.last().map(|v| v.id);
        all.extend(page.revisions);
        if !page.more {
            break;
        }
    }
    let seen: Vec<(u64, &str, TemplateChange)> = all
        .iter()
        .map(|v| (v.template.version, v.template.app_id.as_str(), v.change))
        .collect();
    assert_eq!(
        seen,
        [
            (1, "wx1", TemplateChange::Put),
            (2, "wx2", TemplateChange::Delete),
            (2, "wx2", TemplateChange::Put),
            (1, "wx1", TemplateChange::Put),
        ]
    );
    assert_eq!(all[2].template.template_id, "T2", "what changed is kept");
    assert!(
        all.windows(2)
            .all(|w| w[0].changed_at_micros >= w[1].changed_at_micros)
    );
    let (memory, _) = memory().await;
    assert!(matches!(
        memory.revisions("a", 10, None).await,
        Err(TemplateError::FailedPrecondition(_))
    ));
}

/// Every committed change is announced on `wxpush_templates` with its key,
/// to a listener on its own connection, as delivery listens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_announces_each_change() {
    let (r, pg) = postgres().await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let listener = tokio::spawn(wxpush_postgres::listen(
        pg.url(),
        "wxpush_templates",
        move |key| {
            let _ = tx.send(key.map(str::to_string));
        },
        std::future::pending(),
    ));
    let next = async |rx: &mut tokio::sync::mpsc::UnboundedReceiver<Option<String>>| {
        tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
            .await
            .expect("a notice within 10 s")
            .unwrap()
    };
    assert_eq!(next(&mut rx).await, None, "connected: forget everything");
    r.upsert(tpl("a", "wx1"), 0).await.unwrap();
    assert_eq!(next(&mut rx).await.as_deref(), Some("a"));
    r.delete("a", 0).await.unwrap();
    assert_eq!(next(&mut rx).await.as_deref(), Some("a"));
    listener.abort();
}

/// A stalled PostgreSQL (every process stopped: sockets open, no answer)
/// never hangs the registry: reads give up after the store's timeout and
/// are answered from the last-known copies; once it goes on, so does the
/// store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stalled_serves_last_known_copies() {
    let (r, pg) = postgres().await;
    let stored = r.upsert(tpl("a", "wx1"), 0).await.unwrap();
    pg.pause();
    let bound = std::time::Duration::from_secs(10);
    let got = tokio::time::timeout(bound, r.get("a"))
        .await
        .expect("an answer, not a hang")
        .expect("the last-known copy");
    assert_eq!(got, stored);
    let listed = tokio::time::timeout(bound, r.list(None))
        .await
        .expect("an answer, not a hang")
        .unwrap();
    assert_eq!(keys(&listed), ["a"]);
    let write = tokio::time::timeout(bound, r.upsert(tpl("b", "wx1"), 0))
        .await
        .expect("an answer, not a hang");
    assert!(matches!(write, Err(TemplateError::Backend(_))), "{write:?}");
    pg.resume();
    r.upsert(tpl("b", "wx1"), 0).await.expect("writes again");
}
