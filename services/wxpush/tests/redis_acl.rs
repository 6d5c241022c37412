//! Issue 19, item 9: every pod had the same Redis credentials, so a
//! logquery pod could read the tokens the token service guards. With one
//! ACL user per service (`wxpush_redis::acl`, what `wxpush redis-acl`
//! prints and the chart wires), each service's real store works with its
//! own user on a real Redis, and reaching another service's keys or a
//! dangerous command is refused.

use std::sync::Arc;
use std::time::Duration;
use wxpush_delivery::{Backends, DeliveryConfig};
use wxpush_events::{EventSource, RedisStreamSource, StreamSettings};
use wxpush_logquery::{LogStore, RedisLogStore, Retention, Tail};
use wxpush_proto::v1::*;
use wxpush_redis::acl::Service;
use wxpush_server::config::{BackendKind, BackendSettings};
use wxpush_testkit::RedisServer;
use wxpush_token::store::{RedisTokenStore, StoredToken, TokenStore};

const PREFIX: &str = "wxpush:";

fn url(redis: &RedisServer, s: Service) -> String {
    format!(
        "redis://{}:pw-{}@127.0.0.1:{}/",
        s.user(),
        s.name(),
        redis.port()
    )
}

async fn refused(url: &str, cmd: &mut redis::Cmd) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let r: redis::RedisResult<redis::Value> = cmd.query_async(&mut conn).await;
    let e = r.expect_err("refused");
    assert_eq!(e.code(), Some("NOPERM"), "{e:?}");
}

#[tokio::test]
async fn each_service_works_with_its_own_user_and_reaches_nothing_else() {
    let redis = RedisServer::start();
    let admin = redis::Client::open(redis.url()).unwrap();
    let mut admin = admin.get_multiplexed_async_connection().await.unwrap();
    for s in Service::ALL {
        let mut cmd = redis::cmd("ACL");
        cmd.arg("SETUSER").arg(s.user()).arg(s.rules(PREFIX));
        cmd.arg(format!(">pw-{}", s.name()));
        let _: () = cmd.query_async(&mut admin).await.unwrap();
    }

    // token
    let tokens = RedisTokenStore::connect(&url(&redis, Service::Token), PREFIX)
        .await
        .unwrap();
    let t = StoredToken {
        access_token: "tok".into(),
        expires_at_ms: i64::MAX / 2,
        refreshed_at_ms: 0,
    };
    tokens.save("wx1", &t).await.unwrap();
    assert!(
        tokens
            .try_lock("wx1", "me", Duration::from_secs(5))
            .await
            .unwrap()
    );
    tokens.unlock("wx1", "me").await.unwrap();
    assert_eq!(tokens.count_fetch("wx1", 1).await.unwrap(), 1);
    assert!(tokens.load("wx1").await.unwrap().is_some());

    // template
    let templates =
        wxpush_template::store::redis::RedisStore::connect(&url(&redis, Service::Template), PREFIX)
            .await
            .unwrap();
    use wxpush_template::TemplateStore;
    let tpl = Template {
        key: "k".into(),
        app_id: "wx1".into(),
        version: 1,
        ..Default::default()
    };
    templates.put(&tpl, 0).await.unwrap();
    assert_eq!(templates.list(Some("wx1")).await.unwrap().len(), 1);
    templates.set_wechat_templates("wx1", &[]).await.unwrap();

    // delivery: queue, statuses, dead letters, idempotency, rate limit, events
    let config = DeliveryConfig {
        backend: BackendSettings {
            kind: BackendKind::Redis,
            redis_url: url(&redis, Service::Delivery),
            key_prefix: PREFIX.into(),
            ..Default::default()
        },
        ..Default::default()
    };
    let b = Backends::open(&config, None).await.unwrap();
    let m = wxpush_delivery::queue::QueuedMessage {
        message_id: "m1".into(),
        template_key: "t".into(),
        ..Default::default()
    };
    b.queue.push(std::slice::from_ref(&m), 0).await.unwrap();
    let got = b.queue.next_batch(1).await.unwrap();
    b.queue.ack(&got[0].id).await.unwrap();
    b.queue
        .set_status(&DeliveryResult {
            message_id: "m1".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(b.queue.status("m1").await.unwrap().is_some());
    b.queue
        .bury(&wxpush_delivery::queue::DeadRecord {
            message: m,
            template_id: String::new(),
            trace_id: String::new(),
            dead_at_ms: wxpush_delivery::queue::now_ms(),
        })
        .await
        .unwrap();
    assert_eq!(b.queue.exhume(&["m1".into()]).await.unwrap().len(), 1);
    b.queue.promote_due(0).await.unwrap();
    b.queue.depth(0).await.unwrap();
    b.idempotency.claim("k", "m1").await.unwrap();
    b.limiter.check("wx1").await.unwrap();
    let event = DeliveryEvent {
        event_id: "m1/1".into(),
        message_id: "m1".into(),
        app_id: "wx1".into(),
        status: DeliveryStatus::Sent.into(),
        attempt: 1,
        accepted_at: Some(wxpush_proto::Timestamp {
            seconds: 1_800_000_000,
            nanos: 0,
        }),
        ..Default::default()
    };
    b.events.publish(event).await.unwrap();

    // logquery: the event stream, the store, the live tail
    let lq = url(&redis, Service::Logquery);
    let source = RedisStreamSource::connect(&StreamSettings {
        redis_url: lq.clone(),
        key_prefix: PREFIX.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let batch = source.next_batch(10).await.unwrap().unwrap();
    let store = RedisLogStore::connect(
        &lq,
        PREFIX,
        wxpush_redis::Partitions::ONE,
        Retention(Duration::from_secs(86_400 * 365 * 100)),
    )
    .await
    .unwrap();
    let events: Vec<_> = batch.iter().map(|r| r.event.clone()).collect();
    assert_eq!(store.apply(&events).await.unwrap().len(), 1);
    assert!(store.get("m1").await.unwrap().is_some());
    store.enforce_retention().await.unwrap();
    let receipts: Vec<_> = batch.iter().map(|r| r.receipt.clone()).collect();
    source.ack(&receipts).await.unwrap();
    let tail = Tail::over_redis(&lq, PREFIX).await.unwrap();
    tail.publish(Vec::new()).await;
    let _ = Arc::new(tail);

    // callback: a push handed on once (the script), and delivery reads it
    // from the callback stream into its consent ledger
    use wxpush_callback::handoff::{HandedOn, PushSink, RedisSink};
    let cb = url(&redis, Service::Callback);
    let sink = RedisSink::open(&cb, PREFIX).unwrap();
    let body = b"<xml><ToUserName>gh</ToUserName><FromUserName>o1</FromUserName><CreateTime>1</CreateTime><MsgType>event</MsgType><Event>subscribe_msg_popup_event</Event><SubscribeMsgPopupEvent><List><TemplateId>T1</TemplateId><SubscribeStatusString>accept</SubscribeStatusString></List></SubscribeMsgPopupEvent></xml>";
    let push = wxpush_wechat::push::Push::parse(body).unwrap();
    let record = HandedOn::new("wx1", body, push, 1_000);
    assert!(sink.hand_on(&record).await.unwrap());
    assert!(!sink.hand_on(&record).await.unwrap(), "a repeat");
    let source = wxpush_events::callbacks::CallbackSource::open(
        &url(&redis, Service::Delivery),
        PREFIX,
        "delivery",
        "delivery-0",
        Duration::from_secs(60),
    )
    .unwrap();
    let ledger = b.consent.clone();
    let follow = tokio::spawn(wxpush_delivery::pushes::follow(
        Arc::new(source),
        ledger.clone(),
        b.queue.clone(),
        std::future::pending(),
    ));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while ledger.read("wx1", "o1").await.unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the answer never reached the ledger"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    follow.abort();
    refused(&cb, redis::cmd("GET").arg(format!("{PREFIX}token:wx1"))).await;
    refused(
        &cb,
        redis::cmd("XRANGE")
            .arg(wxpush_events::callbacks::stream_key(PREFIX))
            .arg("-")
            .arg("+"),
    )
    .await;
    refused(
        &cb,
        redis::cmd("DEL").arg(wxpush_events::callbacks::stream_key(PREFIX)),
    )
    .await;

    // and nothing else
    let token_key = format!("{PREFIX}token:wx1");
    refused(&lq, redis::cmd("GET").arg(&token_key)).await;
    refused(
        &url(&redis, Service::Delivery),
        redis::cmd("GET").arg(&token_key),
    )
    .await;
    refused(
        &url(&redis, Service::Template),
        redis::cmd("GET").arg(&token_key),
    )
    .await;
    refused(
        &url(&redis, Service::Token),
        redis::cmd("XADD")
            .arg(format!("{PREFIX}events"))
            .arg("*")
            .arg("d")
            .arg("x"),
    )
    .await;
    refused(
        &url(&redis, Service::Delivery),
        redis::cmd("XRANGE")
            .arg(format!("{PREFIX}events"))
            .arg("-")
            .arg("+"),
    )
    .await;
    refused(&url(&redis, Service::Token), &mut redis::cmd("FLUSHALL")).await;
    refused(&lq, redis::cmd("KEYS").arg("*")).await;
}
