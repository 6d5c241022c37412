//! The callback stream's reader on a real redis-server: a push released
//! (e.g. a receipt waiting for its message) is handed out again even while
//! new pushes keep coming, so a busy stream does not starve it.

use std::time::{Duration, Instant};
use wxpush_events::callbacks::{CallbackSource, FIELD, HandedOn, PushSource, stream_key};
use wxpush_testkit::RedisServer;
use wxpush_wechat::push::Push;

fn push(n: usize) -> HandedOn {
    let body = format!(
        "<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><CreateTime>1</CreateTime>\
         <MsgType>event</MsgType><Event>TEMPLATESENDJOBFINISH</Event><MsgID>{n}</MsgID>\
         <Status>success</Status></xml>"
    );
    HandedOn::new(
        "wx",
        body.as_bytes(),
        Push::parse(body.as_bytes()).unwrap(),
        0,
    )
}

async fn append(conn: &mut redis::aio::MultiplexedConnection, n: usize) {
    let _: String = redis::cmd("XADD")
        .arg(stream_key("t:"))
        .arg("*")
        .arg(FIELD)
        .arg(serde_json::to_string(&push(n)).unwrap())
        .query_async(conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_released_push_comes_back_while_new_ones_keep_coming() {
    let redis = RedisServer::start();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let source =
        CallbackSource::open(&redis.url(), "t:", "g", "c1", Duration::from_secs(60)).unwrap();
    append(&mut conn, 0).await;
    let first = source.next_batch(10).await.unwrap();
    assert_eq!(first.len(), 1);
    source.release(&[first[0].entry.clone()]);
    // A new push every 100 ms: the reader is never idle.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut n = 1;
    loop {
        append(&mut conn, n).await;
        n += 1;
        let batch = source.next_batch(10).await.unwrap();
        if batch.iter().any(|r| r.entry == first[0].entry) {
            break;
        }
        let done: Vec<String> = batch.into_iter().map(|r| r.entry).collect();
        source.ack(&done).await.unwrap();
        assert!(
            Instant::now() < deadline,
            "the released push was not handed out again in 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
