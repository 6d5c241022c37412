//! WeChat's receipts in the log, on each backend: a receipt gives the
//! record of its msgid its final status; one that comes before the SENT
//! record waits; a repeated receipt, a late SENT and a later replay of the
//! attempts never move the status back; receipts name a message per app.

#[macro_use]
mod common;

use common::{Backend, Kind};
use wxpush_events::callbacks::HandedOn;
use wxpush_logquery::Tail;
use wxpush_logquery::receipts::{self, Receipt};
use wxpush_proto::v1::{DeliveryEvent, DeliveryStatus};
use wxpush_wechat::push::Push;

fn sent(message_id: &str, app_id: &str, msgid: &str, at_secs: i64) -> DeliveryEvent {
    let ts = |s: i64| {
        Some(wxpush_proto::Timestamp {
            seconds: s,
            nanos: 0,
        })
    };
    DeliveryEvent {
        event_id: format!("{message_id}/1"),
        message_id: message_id.into(),
        app_id: app_id.into(),
        openid: "o_user".into(),
        template_key: "order_shipped".into(),
        attempt: 1,
        status: DeliveryStatus::Sent as i32,
        wechat_msgid: msgid.into(),
        accepted_at: ts(at_secs - 1),
        occurred_at: ts(at_secs),
        ..Default::default()
    }
}

fn receipt(app_id: &str, msgid: &str, status: &str, create_time: i64) -> HandedOn {
    let xml = format!(
        "<xml><ToUserName>gh_x</ToUserName><FromUserName>o_user</FromUserName>\
         <CreateTime>{create_time}</CreateTime><MsgType>event</MsgType>\
         <Event>TEMPLATESENDJOBFINISH</Event><MsgID>{msgid}</MsgID><Status>{status}</Status></xml>"
    );
    HandedOn::new(
        app_id,
        xml.as_bytes(),
        Push::parse(xml.as_bytes()).unwrap(),
        create_time * 1000,
    )
}

async fn status(b: &Backend, message_id: &str) -> i32 {
    b.store.get(message_id).await.unwrap().unwrap().status
}

async fn receipts_give_the_final_status(kind: Kind) {
    let b = Backend::start(kind).await;
    let now = wxpush_logquery::store::now_micros() / 1_000_000;
    let store = b.store.as_ref();

    // Before its SENT record: waits.
    let early = receipt("wx_a", "9001", "success", now);
    assert_eq!(
        receipts::apply(store, &Tail::default(), &early)
            .await
            .unwrap(),
        Receipt::NoRecord
    );
    store
        .apply(&[sent("m1", "wx_a", "9001", now)])
        .await
        .unwrap();
    assert_eq!(
        receipts::apply(store, &Tail::default(), &early)
            .await
            .unwrap(),
        Receipt::Applied
    );
    assert_eq!(status(&b, "m1").await, DeliveryStatus::Delivered as i32);

    // Repeated, and the SENT replayed late: DELIVERED stays.
    assert_eq!(
        receipts::apply(store, &Tail::default(), &early)
            .await
            .unwrap(),
        Receipt::Applied
    );
    store
        .apply(&[sent("m1", "wx_a", "9001", now)])
        .await
        .unwrap();
    let r = b.store.get("m1").await.unwrap().unwrap();
    assert_eq!(r.status, DeliveryStatus::Delivered as i32);
    assert_eq!(r.history.len(), 1, "a receipt adds no attempt");
    // A SENT that looks newer (another event, a later time) does not undo it.
    let mut later = sent("m1", "wx_a", "9001", now + 5);
    (later.event_id, later.attempt) = ("m1/2".into(), 2);
    store.apply(&[later]).await.unwrap();
    assert_eq!(status(&b, "m1").await, DeliveryStatus::Delivered as i32);

    // Blocked and undelivered, either spacing; the same msgid in another app
    // is another message.
    store
        .apply(&[
            sent("m2", "wx_a", "9002", now),
            sent("m3", "wx_b", "9001", now),
        ])
        .await
        .unwrap();
    receipts::apply(
        store,
        &Tail::default(),
        &receipt("wx_a", "9002", "failed:user block", now),
    )
    .await
    .unwrap();
    receipts::apply(
        store,
        &Tail::default(),
        &receipt("wx_b", "9001", "failed: system failed", now),
    )
    .await
    .unwrap();
    assert_eq!(status(&b, "m2").await, DeliveryStatus::Blocked as i32);
    assert_eq!(status(&b, "m3").await, DeliveryStatus::Undelivered as i32);
    assert_eq!(status(&b, "m1").await, DeliveryStatus::Delivered as i32);

    let subscribe = r#"{"ToUserName":"gh","FromUserName":"o","CreateTime":1,"MsgType":"event",
        "Event":"subscribe_msg_popup_event","SubscribeMsgPopupEvent":{"List":[]}}"#;
    let other = HandedOn::new(
        "wx_a",
        subscribe.as_bytes(),
        Push::parse(subscribe.as_bytes()).unwrap(),
        1,
    );
    assert_eq!(
        receipts::apply(store, &Tail::default(), &other)
            .await
            .unwrap(),
        Receipt::NotAReceipt
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_receipts_give_the_final_status() {
    receipts_give_the_final_status(Kind::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_receipts_give_the_final_status() {
    receipts_give_the_final_status(Kind::Postgres).await;
}

/// The Redis log keeps no msgid index yet: a receipt finds no record
/// there (it waits in the stream, then is dropped after a day). Shown so
/// the gap fails this test once it is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_receipts_find_no_record_yet() {
    let b = Backend::start(Kind::Redis).await;
    let now = wxpush_logquery::store::now_micros() / 1_000_000;
    b.store
        .apply(&[sent("m1", "wx_a", "9001", now)])
        .await
        .unwrap();
    let r = receipts::apply(
        b.store.as_ref(),
        &Tail::default(),
        &receipt("wx_a", "9001", "success", now),
    )
    .await;
    assert_eq!(r.unwrap(), Receipt::NoRecord);
}

/// The reading task on a real Redis: a receipt appended to the callback
/// stream before its record is held, and gives the record its status once
/// the record is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callback_stream_reader_applies_a_receipt_that_came_first() {
    let redis = wxpush_testkit::RedisServer::start();
    let store = std::sync::Arc::new(wxpush_logquery::MemoryLogStore::new(
        1_000,
        common::RETENTION,
    ));
    let now = wxpush_logquery::store::now_micros() / 1_000_000;
    let pushed = receipt("wx_a", "7001", "failed:user block", now);
    let mut conn = wxpush_redis::connect(&redis.url(), wxpush_redis::Timeouts::Commands).unwrap();
    let _: String = redis::cmd("XADD")
        .arg(wxpush_events::callbacks::stream_key("wxpush:"))
        .arg("*")
        .arg(wxpush_events::callbacks::FIELD)
        .arg(serde_json::to_string(&pushed).unwrap())
        .query_async(&mut conn)
        .await
        .unwrap();
    let source = wxpush_events::callbacks::CallbackSource::open(
        &redis.url(),
        "wxpush:",
        "logquery",
        "logquery-test",
        std::time::Duration::from_secs(60),
    )
    .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(receipts::run(
        std::sync::Arc::new(source),
        store.clone(),
        Tail::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    use wxpush_logquery::LogStore;
    store
        .apply(&[sent("m9", "wx_a", "7001", now)])
        .await
        .unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let status = store.get("m9").await.unwrap().unwrap().status;
        if status == DeliveryStatus::Blocked as i32 {
            break;
        }
        assert!(std::time::Instant::now() < until, "still {status}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = stop.send(());
    task.await.unwrap();
}
