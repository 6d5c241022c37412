#![allow(dead_code)]

//! What the fault suite's tests share: the calls they make, the counting
//! (what WeChat received, what finished how), and the faults they inject.

use crate::topology::Topology;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tonic::{Code, Request};
use wxpush_proto::v1::delivery_service_client::DeliveryServiceClient;
use wxpush_proto::v1::log_query_service_client::LogQueryServiceClient;
use wxpush_proto::v1::*;

pub type Delivery = DeliveryServiceClient<Channel>;

pub const SENT: i32 = DeliveryStatus::Sent as i32;
pub const DEAD: i32 = DeliveryStatus::Dead as i32;
pub const TEMPLATE_SEND: &str = "/cgi-bin/message/template/send";
pub const SUBSCRIBE_SEND: &str = "/cgi-bin/message/subscribe/send";

pub fn shipped_to(openid: &str, n: usize) -> SendRequest {
    SendRequest {
        template_key: "order_shipped".into(),
        openid: openid.into(),
        variables: [
            ("order_id".to_string(), format!("SF{n}")),
            ("ship_time".to_string(), "2026-11-23 10:00".to_string()),
            ("carrier".to_string(), "顺丰速运".to_string()),
        ]
        .into(),
        ..Default::default()
    }
}

pub fn within<T>(message: T, deadline: Duration) -> Request<T> {
    let mut r = Request::new(message);
    r.set_timeout(deadline);
    r
}

/// One sync Send: its status, or the error code.
pub async fn send(d: &mut Delivery, n: usize) -> Result<i32, Code> {
    d.send(within(
        shipped_to("o_demo_follower", n),
        Duration::from_secs(2),
    ))
    .await
    .map(|r| r.into_inner().result.map_or(0, |r| r.status))
    .map_err(|s| s.code())
}

/// One SendAsync, then its status until SENT (or 10 s).
pub async fn send_async(d: &mut Delivery, n: usize) -> Result<i32, Code> {
    let queued = d
        .send_async(within(
            SendAsyncRequest::from(shipped_to("o_demo_follower2", n)),
            Duration::from_secs(2),
        ))
        .await
        .map_err(|s| s.code())?
        .into_inner();
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let got = d
            .get_message(within(
                GetMessageRequest {
                    message_id: queued.message_id.clone(),
                },
                Duration::from_secs(2),
            ))
            .await
            .map_err(|s| s.code())?
            .into_inner()
            .result
            .map_or(0, |r| r.status);
        if got == DeliveryStatus::Sent as i32 || Instant::now() > until {
            return Ok(got);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `scripts/fault-suite.sh --soak` sets `WXPUSH_SOAK`: every count and
/// outage is this many times longer than in the test command's short run.
pub fn soak() -> usize {
    std::env::var("WXPUSH_SOAK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1)
}

/// Messages the sandbox received for `openid`, by client_msg_id (the
/// message id): a count above 1 is a duplicate the user would see.
pub async fn received(t: &Topology, openid: &str) -> HashMap<String, usize> {
    let query = wechat_sandbox::MessageQuery {
        openid: Some(openid.into()),
        ..Default::default()
    };
    let list = wechat_sandbox::AdminClient::new(t.sandbox.admin_url())
        .messages(&query)
        .await
        .unwrap();
    let mut by_id = HashMap::new();
    for m in list {
        if let Some(id) = m.client_msg_id {
            *by_id.entry(id).or_insert(0) += 1;
        }
    }
    by_id
}

/// Waits until WeChat received every one of `ids` for `openid`, or
/// `timeout` passed; what it received by then.
pub async fn await_received(
    t: &Topology,
    openid: &str,
    ids: &[String],
    timeout: Duration,
) -> HashMap<String, usize> {
    let until = Instant::now() + timeout;
    loop {
        let got = received(t, openid).await;
        if ids.iter().all(|id| got.contains_key(id)) || Instant::now() > until {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Template sends WeChat answered as repeats of a client_msg_id it had: a
/// resend the id absorbed (the user saw one message).
pub async fn resends_absorbed(t: &Topology) -> u64 {
    let counters = wechat_sandbox::AdminClient::new(t.sandbox.admin_url())
        .counters()
        .await
        .unwrap();
    let posts = counters.api_calls.get(TEMPLATE_SEND).copied().unwrap_or(0);
    posts.saturating_sub(counters.messages_sent)
}

/// Adds faults to the sandbox's WeChat API.
pub async fn inject(t: &Topology, faults: &[wechat_sandbox::Fault]) {
    let admin = wechat_sandbox::AdminClient::new(t.sandbox.admin_url());
    for fault in faults {
        admin.set_fault(fault).await.unwrap();
    }
}

/// `path` answered `ms` later.
pub fn slow(path: &str, ms: u64) -> wechat_sandbox::Fault {
    wechat_sandbox::Fault {
        path: path.into(),
        latency_ms: ms,
        ..Default::default()
    }
}

/// Three batches of `per_batch` recipients of `template_key` for `openid`,
/// each with its own `order_id` (`{tag}{batch}-{i}`); the accepted ids.
pub async fn send_batches(
    d: &mut Delivery,
    template_key: &str,
    openid: &str,
    common: &[(&str, &str)],
    tag: &str,
    per_batch: usize,
) -> Vec<String> {
    let mut accepted = Vec::new();
    for batch in 0..3 {
        let recipients = (0..per_batch)
            .map(|i| BatchRecipient {
                openid: openid.into(),
                variables: [("order_id".to_string(), format!("{tag}{batch}-{i}"))].into(),
                ..Default::default()
            })
            .collect();
        let r = d
            .send_batch(SendBatchRequest {
                template_key: template_key.into(),
                recipients,
                common_variables: common
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.accepted as usize, per_batch, "{r:?}");
        accepted.extend(r.results.into_iter().map(|r| r.message_id));
    }
    accepted
}

/// The delivery process `kill -9`ed and started again three times, 400 ms
/// apart, while its workers deliver.
pub async fn kill_delivery_three_times(t: &mut Topology) {
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        t.kill("delivery");
        t.start_again("delivery").await;
    }
}

/// Polls `GetMessage` until every one of `ids` is SENT or DEAD, or
/// `timeout` passed; the final results by id.
pub async fn await_final(
    d: &mut Delivery,
    ids: &[String],
    timeout: Duration,
) -> HashMap<String, DeliveryResult> {
    let until = Instant::now() + timeout;
    let mut finals = HashMap::new();
    while finals.len() < ids.len() && Instant::now() < until {
        for id in ids {
            if finals.contains_key(id) {
                continue;
            }
            let r = d
                .get_message(GetMessageRequest {
                    message_id: id.clone(),
                })
                .await
                .unwrap()
                .into_inner()
                .result
                .unwrap();
            if r.status == SENT || r.status == DEAD {
                finals.insert(id.clone(), r);
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    finals
}

/// Every service process is still running.
pub fn assert_all_alive(t: &mut Topology) {
    for p in &mut t.processes {
        assert!(p.alive(), "{} exited", p.name);
    }
}

/// What a stream of SendAsync calls got through a Redis crash.
pub struct Stream {
    /// Acknowledged message ids, with when each was acknowledged.
    pub acked: Vec<(String, Instant)>,
    /// Calls answered with an error (never acknowledged).
    pub refused: usize,
    /// When Redis was killed.
    pub crashed: Instant,
}

impl Stream {
    pub fn ids(&self) -> Vec<String> {
        self.acked.iter().map(|(id, _)| id.clone()).collect()
    }
}

/// `messages` SendAsync calls to `openid` from 4 callers; Redis is
/// `kill -9`ed and started again once a third of them are acknowledged.
pub async fn send_async_through_a_redis_crash(
    t: &mut Topology,
    openid: &'static str,
    messages: usize,
) -> Stream {
    send_async_through(t, openid, messages, |t| t.redis.restart()).await
}

/// `messages` SendAsync calls to `openid` from 4 callers; `crash` runs once
/// a third of them are acknowledged.
pub async fn send_async_through(
    t: &mut Topology,
    openid: &'static str,
    messages: usize,
    crash: impl FnOnce(&mut Topology),
) -> Stream {
    type Acks = std::sync::Arc<std::sync::Mutex<Vec<(String, Instant)>>>;
    let d = DeliveryServiceClient::new(t.channel("delivery").await);
    let acked = Acks::default();
    let refused = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let callers: Vec<_> = (0..4)
        .map(|c| {
            let (mut d, acked, refused) = (d.clone(), acked.clone(), refused.clone());
            tokio::spawn(async move {
                for i in (c..messages).step_by(4) {
                    let req = SendAsyncRequest::from(shipped_to(openid, i));
                    match d.send_async(within(req, Duration::from_secs(3))).await {
                        Ok(r) => acked
                            .lock()
                            .unwrap()
                            .push((r.into_inner().message_id, Instant::now())),
                        Err(_) => {
                            refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    while acked.lock().unwrap().len() < messages / 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let crashed = Instant::now();
    crash(t);
    for c in callers {
        c.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    Stream {
        acked,
        refused: refused.load(std::sync::atomic::Ordering::Relaxed),
        crashed,
    }
}

/// Waits until WeChat received every message `stream` acknowledged (up to
/// 60 s), prints the fault table's row for `what`, and asserts that none
/// was lost and none reached the user twice.
pub async fn assert_acknowledged_delivered_once(
    t: &Topology,
    openid: &str,
    stream: &Stream,
    what: &str,
) {
    let accepted = stream.ids();
    let got = await_received(t, openid, &accepted, Duration::from_secs(60)).await;
    let lost: Vec<_> = accepted
        .iter()
        .filter(|id| !got.contains_key(*id))
        .collect();
    let duplicated = got.values().filter(|n| **n > 1).count();
    println!(
        "fault table | {what} | accepted {} | refused {} | delivered {} | resends absorbed by client_msg_id {} | duplicated {duplicated} | lost {}",
        accepted.len(),
        stream.refused,
        accepted.len() - lost.len(),
        resends_absorbed(t).await,
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "acknowledged and never delivered: {lost:?}"
    );
    assert_eq!(duplicated, 0, "a user got a message twice");
}

/// The stored template `key` (the test fails if it is not there).
pub async fn template(
    templates: &mut wxpush_proto::v1::template_service_client::TemplateServiceClient<Channel>,
    key: &str,
) -> Template {
    templates
        .get_template(GetTemplateRequest {
            key: key.into(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("template {key}: {e}"))
        .into_inner()
        .template
        .unwrap()
}

/// Sent messages' log records, once each: how many are there and SENT, and
/// how many have an attempt more than once.
pub async fn logged(logs: &mut LogQueryServiceClient<Channel>, ids: &[String]) -> (usize, usize) {
    let (mut present, mut doubled) = (0, 0);
    for id in ids {
        let Ok(answer) = logs
            .query_logs(QueryLogsRequest {
                filter: Some(LogFilter {
                    message_id: id.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
        else {
            continue;
        };
        if let Some(r) = answer.into_inner().records.first() {
            present += usize::from(r.status == SENT);
            doubled += usize::from(r.history.len() != 1);
        }
    }
    (present, doubled)
}

/// [`logged`] until every one of `ids` is there, or `timeout` passed.
pub async fn await_logged(
    logs: &mut LogQueryServiceClient<Channel>,
    ids: &[String],
    timeout: Duration,
) -> (usize, usize) {
    let until = Instant::now() + timeout;
    let mut counted = logged(logs, ids).await;
    while counted.0 < ids.len() && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(200)).await;
        counted = logged(logs, ids).await;
    }
    counted
}

/// Sync `Send`s numbered `from..from + n` to the demo follower, each SENT
/// within 5 s; their message ids.
pub async fn send_sent(d: &mut Delivery, from: usize, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in from..from + n {
        let r = d
            .send(within(
                shipped_to("o_demo_follower", i),
                Duration::from_secs(5),
            ))
            .await
            .expect("Send answers")
            .into_inner()
            .result
            .unwrap();
        assert_eq!(r.status, SENT);
        ids.push(r.message_id);
    }
    ids
}
