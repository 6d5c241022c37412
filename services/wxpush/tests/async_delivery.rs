//! Async delivery: SendAsync and SendBatch on the durable queue, retries as
//! delayed re-queues, dead letters and replay, send_at and quiet hours,
//! degradation while the breaker is open. Each test twice: on the suite's
//! memory queue, and with delivery's queue, statuses, idempotency and
//! limits on a private three-master Redis Cluster (the queue in three
//! partitions). The Redis queue with real processes: `delivery_processes.rs`.

mod common;

use common::{Harness, SEND_PATH, send_fault, send_outage, shipped_to, vars};
use std::time::Duration;
use tonic::Code;
use wechat_sandbox::MessageQuery;
use wxpush::SuiteOptions;
use wxpush_delivery::DeliveryConfig;
use wxpush_delivery::config::{BreakerSettings, QueueSettings, RateLimitSettings, RetrySettings};
use wxpush_proto::v1::*;
use wxpush_server::config::{BackendKind, BackendSettings};
use wxpush_testkit::RedisCluster;

fn config() -> DeliveryConfig {
    DeliveryConfig {
        retry: RetrySettings {
            max_attempts: 3,
            backoff_base_ms: 20,
            backoff_max_ms: 100,
            total_deadline_ms: 5_000,
        },
        breaker: BreakerSettings {
            failure_threshold: 5,
            open_min_secs: 1,
            open_max_secs: 2,
            ..Default::default()
        },
        rate_limit: RateLimitSettings {
            per_second: 0.0,
            burst: 1,
        },
        queue: QueueSettings {
            concurrency: 16,
            claim_idle_ms: 2_000,
            reclaim_every_ms: 500,
            poll_ms: 50,
            workers: true,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Where delivery keeps its state.
#[derive(Clone, Copy)]
enum On {
    Memory,
    Cluster,
}

/// The suite, and the cluster it uses (stopped when the test ends).
struct Suite {
    h: Harness,
    _cluster: Option<RedisCluster>,
}

impl Suite {
    /// Drains the suite, then stops the cluster.
    async fn shutdown(self) {
        self.h.suite.shutdown().await;
    }
}

impl std::ops::Deref for Suite {
    type Target = Harness;
    fn deref(&self) -> &Harness {
        &self.h
    }
}

async fn harness(mut delivery: DeliveryConfig, on: On) -> Suite {
    let cluster = match on {
        On::Memory => None,
        On::Cluster => {
            let cluster = RedisCluster::start();
            delivery.backend = BackendSettings {
                kind: BackendKind::Redis,
                redis_url: cluster.url(),
                key_prefix: "wxpush:".into(),
                stream_partitions: wxpush_redis::Partitions::new(3).unwrap(),
                ..Default::default()
            };
            Some(cluster)
        }
    };
    let mut opts = SuiteOptions::demo_on_free_ports();
    opts.delivery = delivery;
    Suite {
        h: Harness::start_with(opts).await,
        _cluster: cluster,
    }
}

/// Each test on the memory queue and on a Redis Cluster.
macro_rules! on_memory_and_cluster {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test]
            async fn $test() {
                super::$test(super::On::Memory).await
            })*
        }
        mod cluster {
            $(#[tokio::test]
            async fn $test() {
                super::$test(super::On::Cluster).await
            })*
        }
    };
}

on_memory_and_cluster!(
    send_async_is_queued_then_sent_once_in_the_callers_trace,
    a_batch_reports_bad_recipients_and_delivers_the_rest,
    a_permanent_failure_is_dead_lettered_and_delivered_after_replay,
    busy_forever_ends_dead_after_the_attempt_budget,
    a_scheduled_message_waits_for_send_at,
    a_message_in_quiet_hours_waits_and_one_outside_goes_at_once,
    an_outage_defers_messages_until_the_breaker_closes_and_dead_letters_none,
);

async fn received_by(h: &Harness, openid: &str) -> usize {
    h.admin
        .messages(&MessageQuery {
            openid: Some(openid.into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .len()
}

async fn send_async_is_queued_then_sent_once_in_the_callers_trace(on: On) {
    let h = harness(config(), on).await;
    let trace_id = "5bf92f3577b34da6a3ce929d0e0e4736";
    let mut req = tonic::Request::new(SendAsyncRequest::from(shipped_to("o_demo_follower")));
    req.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-00f067aa0ba902b7-01")
            .parse()
            .unwrap(),
    );
    let accepted = h.delivery().send_async(req).await.unwrap().into_inner();
    assert_eq!(accepted.status, DeliveryStatus::Queued as i32);
    assert_eq!(accepted.trace_id, trace_id);
    let r = h
        .settled(&accepted.message_id, Duration::from_secs(5))
        .await;
    assert_eq!(r.status, DeliveryStatus::Sent as i32, "{r:?}");
    assert_eq!(received_by(&h, "o_demo_follower").await, 1);
    let rec = h
        .find_one(LogFilter {
            trace_id: trace_id.into(),
            ..Default::default()
        })
        .await;
    assert_eq!(rec.message_id, accepted.message_id);
    h.shutdown().await;
}

async fn a_batch_reports_bad_recipients_and_delivers_the_rest(on: On) {
    let h = harness(config(), on).await;
    let common = vars(&[("ship_time", "2026-11-23 10:00"), ("carrier", "顺丰速运")]);
    let recipient = |openid: &str, order: Option<&str>| BatchRecipient {
        openid: openid.into(),
        variables: order.map(|o| vars(&[("order_id", o)])).unwrap_or_default(),
        idempotency_key: String::new(),
    };
    let resp = h
        .delivery()
        .send_batch(SendBatchRequest {
            template_key: "order_shipped".into(),
            common_variables: common,
            recipients: vec![
                recipient("o_demo_follower", Some("A1")),
                recipient("", Some("A2")),
                recipient("o_demo_follower2", None),
                recipient("o_demo_unfollowed", Some("A4")),
            ],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((resp.accepted, resp.rejected), (2, 2));
    // Each rejected item carries the error a Send of it alone would get,
    // its fields named as the batch's.
    for (i, field) in [
        (1, "recipients[1].openid"),
        (2, "recipients[2].variables.order_id"),
    ] {
        let e = item_error(&resp.results[i]);
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
        assert_eq!(
            wxpush_server::failure::reason(&e),
            Some(wxpush_server::failure::Reason::FieldInvalid)
        );
        let fields: Vec<_> = wxpush_server::status::field_violations(&e)
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(fields, [field], "{:?}", resp.results[i]);
    }
    assert!(resp.results[0].error.is_none());
    let sent = h
        .settled(&resp.results[0].message_id, Duration::from_secs(5))
        .await;
    assert_eq!(sent.status, DeliveryStatus::Sent as i32);
    let failed = h
        .settled(&resp.results[3].message_id, Duration::from_secs(5))
        .await;
    assert_eq!(
        (failed.status, failed.errcode),
        (DeliveryStatus::Failed as i32, 43004)
    );

    let too_many = SendBatchRequest {
        template_key: "order_shipped".into(),
        recipients: vec![recipient("o_demo_follower", Some("X")); 1001],
        ..Default::default()
    };
    let err = h.delivery().send_batch(too_many).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        wxpush_server::status::field_violations(&err)[0].field,
        "recipients"
    );
    h.shutdown().await;
}

async fn a_permanent_failure_is_dead_lettered_and_delivered_after_replay(on: On) {
    let h = harness(config(), on).await;
    h.inject(send_fault(40037, None)).await;
    let accepted = h.send_async(shipped_to("o_demo_follower")).await;
    let r = h
        .settled(&accepted.message_id, Duration::from_secs(5))
        .await;
    assert_eq!(
        (r.status, r.errcode),
        (DeliveryStatus::Failed as i32, 40037)
    );
    let dead = h
        .delivery()
        .list_dead_letters(ListDeadLettersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .dead_letters;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].message_id.as_str(), dead[0].errcode),
        (accepted.message_id.as_str(), 40037)
    );

    h.admin.clear_faults().await.unwrap();
    let replayed = h
        .delivery()
        .replay_dead_letters(ReplayDeadLettersRequest {
            message_ids: vec![accepted.message_id.clone()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replayed.replayed, 1);
    let r = h
        .settled(&accepted.message_id, Duration::from_secs(5))
        .await;
    assert_eq!(r.status, DeliveryStatus::Sent as i32, "{r:?}");
    assert_eq!(received_by(&h, "o_demo_follower").await, 1);
    let empty = h
        .delivery()
        .list_dead_letters(ListDeadLettersRequest::default())
        .await
        .unwrap();
    assert!(empty.into_inner().dead_letters.is_empty());
    // Above the maximum is clamped, not refused (AIP-158); a token that is
    // not ours is refused naming the field.
    h.delivery()
        .list_dead_letters(ListDeadLettersRequest {
            page_size: 10_000,
            ..Default::default()
        })
        .await
        .expect("a large page_size is clamped");
    let err = h
        .delivery()
        .list_dead_letters(ListDeadLettersRequest {
            page_token: "not-a-token".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    h.shutdown().await;
}

async fn busy_forever_ends_dead_after_the_attempt_budget(on: On) {
    let h = harness(config(), on).await;
    h.inject(send_fault(-1, None)).await;
    let accepted = h.send_async(shipped_to("o_demo_follower")).await;
    let r = h
        .settled(&accepted.message_id, Duration::from_secs(5))
        .await;
    assert_eq!(
        (r.status, r.attempts),
        (DeliveryStatus::Dead as i32, 3),
        "{r:?}"
    );
    let dead = h
        .delivery()
        .list_dead_letters(ListDeadLettersRequest::default())
        .await
        .unwrap();
    assert_eq!(dead.into_inner().dead_letters[0].attempts, 3);
    h.shutdown().await;
}

async fn a_scheduled_message_waits_for_send_at(on: On) {
    let h = harness(config(), on).await;
    let at = std::time::SystemTime::now() + Duration::from_millis(1500);
    let accepted = h
        .delivery()
        .send_async(SendAsyncRequest {
            send_at: Some(wxpush_proto::timestamp(at)),
            ..shipped_to("o_demo_follower").into()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(accepted.status, DeliveryStatus::Deferred as i32);
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(
        received_by(&h, "o_demo_follower").await,
        0,
        "sent before send_at"
    );
    let r = h
        .settled(&accepted.message_id, Duration::from_secs(5))
        .await;
    assert_eq!(r.status, DeliveryStatus::Sent as i32);
    let got = h
        .admin
        .messages(&MessageQuery {
            client_msg_id: Some(accepted.message_id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    let at_ms = at
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        got[0].received_at_ms + 50 >= at_ms,
        "received before send_at"
    );
    h.shutdown().await;
}

async fn a_message_in_quiet_hours_waits_and_one_outside_goes_at_once(on: On) {
    let h = harness(config(), on).await;
    let mut templates = h.templates();
    let mut t = h.template("order_shipped").await;
    let hour = chrono::Utc::now()
        .format("%H")
        .to_string()
        .parse::<u32>()
        .unwrap();
    let hhmm = |h: u32| format!("{:02}:00", h % 24);
    // A window around now (UTC), then one that ended an hour ago.
    for (start, end, waits) in [
        (hhmm(hour + 23), hhmm(hour + 2), true),
        (hhmm(hour + 22), hhmm(hour + 23), false),
    ] {
        let version = t.version;
        t.quiet_hours = Some(QuietHours {
            start,
            end,
            time_zone: "UTC".into(),
        });
        t = templates
            .upsert_template(UpsertTemplateRequest {
                template: Some(t.clone()),
                expected_version: version,
            })
            .await
            .unwrap()
            .into_inner()
            .template
            .unwrap();
        // Delivery renders from its copy of the plan, at most a second old.
        tokio::time::sleep(wxpush_delivery::local::PLAN_TTL).await;
        let accepted = h.send_async(shipped_to("o_demo_follower2")).await;
        if waits {
            assert_eq!(accepted.status, DeliveryStatus::Deferred as i32);
            tokio::time::sleep(Duration::from_millis(500)).await;
            let r = h
                .delivery()
                .get_message(GetMessageRequest {
                    message_id: accepted.message_id.clone(),
                })
                .await
                .unwrap()
                .into_inner()
                .result
                .unwrap();
            assert_eq!(r.status, DeliveryStatus::Deferred as i32);
            assert_eq!(received_by(&h, "o_demo_follower2").await, 0);
        } else {
            assert_eq!(accepted.status, DeliveryStatus::Queued as i32);
            let r = h
                .settled(&accepted.message_id, Duration::from_secs(5))
                .await;
            assert_eq!(r.status, DeliveryStatus::Sent as i32);
        }
    }
    h.shutdown().await;
}

async fn an_outage_defers_messages_until_the_breaker_closes_and_dead_letters_none(on: On) {
    let mut c = config();
    c.breaker.failure_threshold = 3;
    let h = harness(c, on).await;
    h.inject(send_outage()).await;
    let recipients: Vec<BatchRecipient> = (0..40)
        .map(|i| BatchRecipient {
            openid: "o_demo_follower".into(),
            variables: vars(&[("order_id", &format!("OUT{i}"))]),
            idempotency_key: String::new(),
        })
        .collect();
    let resp = h
        .delivery()
        .send_batch(SendBatchRequest {
            template_key: "order_shipped".into(),
            common_variables: vars(&[("ship_time", "2026-11-23 10:00"), ("carrier", "顺丰速运")]),
            recipients,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.accepted, 40);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let state = h
        .delivery()
        .get_breaker_state(GetBreakerStateRequest::default())
        .await
        .unwrap();
    assert_ne!(
        state.into_inner().apps[0].state,
        BreakerState::Closed as i32,
        "the outage opened the breaker"
    );
    let calls_during_outage = h.admin.counters().await.unwrap().api_calls[SEND_PATH];
    assert!(
        calls_during_outage < 40,
        "{calls_during_outage} calls: the breaker did not hold them back"
    );
    h.admin.clear_faults().await.unwrap();
    for r in &resp.results {
        let done = h.settled(&r.message_id, Duration::from_secs(15)).await;
        assert_eq!(done.status, DeliveryStatus::Sent as i32, "{done:?}");
    }
    assert_eq!(received_by(&h, "o_demo_follower").await, 40);
    let dead = h
        .delivery()
        .list_dead_letters(ListDeadLettersRequest::default())
        .await
        .unwrap();
    assert!(
        dead.into_inner().dead_letters.is_empty(),
        "nothing dead-lettered for the outage"
    );
    h.shutdown().await;
}

/// A batch item's `google.rpc.Status` as the `tonic::Status` it stands for.
fn item_error(item: &BatchItemResult) -> tonic::Status {
    let e = item
        .error
        .clone()
        .expect("a rejected item carries its error");
    tonic::Status::with_details(
        tonic::Code::from(e.code),
        e.message.clone(),
        prost::Message::encode_to_vec(&e).into(),
    )
}
