//! Crash safety with real processes: two `wxpush delivery` processes work
//! one Redis queue of 10 000 messages against the sandbox (with latency);
//! one is killed with SIGKILL midway and restarted, WeChat goes down for
//! 30 s (the breaker opens, messages wait DEFERRED), the other process is
//! stopped with SIGTERM near the end. Every message still reaches WeChat
//! exactly once, nothing is dead-lettered, and every message ends SENT in
//! the delivery log (ingested from the Redis event stream).

mod common;

use common::{Harness, SEND_PATH, send_latency, send_outage, vars};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wechat_sandbox::MessageQuery;
use wxpush::SuiteOptions;
use wxpush_delivery::config::QueueSettings;
use wxpush_delivery::{Backends, Delivery, DeliveryConfig};
use wxpush_logquery::LogStore;
use wxpush_proto::v1::*;
use wxpush_server::config::{BackendKind, BackendSettings};
use wxpush_server::trace_context::TraceContext;
use wxpush_testkit::RedisServer;

const MESSAGES: usize = 10_000;

fn spawn_delivery(h: &Harness, redis: &RedisServer) -> Child {
    let sandbox = h.suite.sandbox.as_ref().unwrap().api_url();
    Command::new(env!("CARGO_BIN_EXE_wxpush"))
        .arg("delivery")
        .env("RUST_LOG", "info")
        .env("WXPUSH_DELIVERY__LISTEN", "127.0.0.1:0")
        .env("WXPUSH_DELIVERY__ADMIN_LISTEN", "127.0.0.1:0")
        .env("WXPUSH_DELIVERY__AUTH__MODE", "off")
        .env("WXPUSH_DELIVERY__TEMPLATE_ENDPOINT", h.suite.grpc_url())
        .env("WXPUSH_DELIVERY__TOKEN_ENDPOINT", h.suite.grpc_url())
        .env("WXPUSH_DELIVERY__WECHAT__BASE_URL", sandbox)
        .env("WXPUSH_DELIVERY__BACKEND__KIND", "redis")
        .env("WXPUSH_DELIVERY__BACKEND__REDIS_URL", redis.url())
        .env("WXPUSH_DELIVERY__RATE_LIMIT__PER_SECOND", "0")
        .env("WXPUSH_DELIVERY__QUEUE__CLAIM_IDLE_MS", "2000")
        .env("WXPUSH_DELIVERY__QUEUE__RECLAIM_EVERY_MS", "500")
        .env("WXPUSH_DELIVERY__QUEUE__CONCURRENCY", "32")
        .stdout(Stdio::null())
        .stderr(log_file())
        .spawn()
        .expect("wxpush delivery starts")
}

/// The processes' logs, kept for a failing run.
fn log_file() -> Stdio {
    let path = std::env::temp_dir().join(format!(
        "wxpush-delivery-processes-{}.log",
        std::process::id()
    ));
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_or(Stdio::null(), Stdio::from)
}

/// Waits for a child to exit without blocking the runtime (the suite this
/// test runs in-process must keep serving the children meanwhile).
async fn exited(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "process {} did not exit in {timeout:?}",
            child.id()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn sent(h: &Harness) -> u64 {
    h.admin.counters().await.unwrap().messages_sent
}

async fn wait_for_sent(h: &Harness, n: u64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while sent(h).await < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} sent in {timeout:?}",
            sent(h).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_loses_nothing_and_sends_nothing_twice() {
    let redis = RedisServer::start();
    let h = Harness::start_with(SuiteOptions::demo_on_free_ports()).await;
    h.inject(send_latency(5)).await;
    // An accepting front (no workers of its own) on the shared queue.
    let suite = wxpush_server::config::GrpcEndpoint::parse(&h.suite.grpc_url()).unwrap();
    let config = DeliveryConfig {
        template_endpoint: suite.clone(),
        token_endpoint: suite,
        backend: BackendSettings {
            kind: BackendKind::Redis,
            redis_url: redis.url(),
            key_prefix: "wxpush:".into(),
            ..Default::default()
        },
        queue: QueueSettings {
            workers: false,
            ..Default::default()
        },
        ..Default::default()
    };
    let backends = Backends::open(&config, Some(Arc::new(wxpush_events::LogSink)))
        .await
        .unwrap();
    let front = Delivery::new(&config, backends).unwrap().intake;
    let mut ids = Vec::new();
    for batch in 0..MESSAGES / 1000 {
        let recipients = (0..1000)
            .map(|i| BatchRecipient {
                openid: "o_demo_follower".into(),
                variables: vars(&[("order_id", &format!("K{batch}-{i}"))]),
                idempotency_key: String::new(),
            })
            .collect();
        let resp = front
            .send_batch(
                SendBatchRequest {
                    template_key: "order_shipped".into(),
                    common_variables: vars(&[
                        ("ship_time", "2026-11-23 10:00"),
                        ("carrier", "顺丰速运"),
                    ]),
                    recipients,
                    ..Default::default()
                },
                TraceContext::new_root(),
                None,
            )
            .await
            .unwrap();
        assert_eq!(resp.accepted, 1000);
        ids.extend(resp.results.into_iter().map(|r| r.message_id));
    }

    // The log, fed from the Redis event stream the processes write.
    let log = Arc::new(wxpush_logquery::MemoryLogStore::new(
        MESSAGES * 2,
        wxpush_logquery::Retention(Duration::from_secs(86_400)),
    ));
    let source = wxpush_events::RedisStreamSource::connect(&wxpush_events::StreamSettings {
        redis_url: redis.url(),
        key_prefix: "wxpush:".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let ingest = wxpush_logquery::ingest::spawn(
        Arc::new(source),
        log.clone(),
        wxpush_logquery::Tail::default(),
    );

    let mut a = spawn_delivery(&h, &redis);
    let mut b = spawn_delivery(&h, &redis);
    wait_for_sent(&h, (MESSAGES / 4) as u64, Duration::from_secs(120)).await;
    a.kill().expect("SIGKILL"); // SIGKILL on Unix: no chance to hand anything back
    exited(&mut a, Duration::from_secs(10)).await;
    let mut a = spawn_delivery(&h, &redis);
    wait_for_sent(&h, (MESSAGES / 2) as u64, Duration::from_secs(120)).await;

    // A 30 s outage: the breakers open and messages wait instead of burning
    // their attempts.
    h.inject(send_outage()).await;
    let outage_started = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let calls_at_5s = h.admin.counters().await.unwrap().api_calls[SEND_PATH];
    let mut deferred = 0;
    for id in ids.iter().step_by(50) {
        if front
            .get_message(id)
            .await
            .unwrap()
            .is_some_and(|s| s.status == DeliveryStatus::Deferred as i32)
        {
            deferred += 1;
        }
    }
    assert!(deferred > 0, "no message waits DEFERRED during the outage");
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(outage_started.elapsed())).await;
    let calls_in_outage = h.admin.counters().await.unwrap().api_calls[SEND_PATH] - calls_at_5s;
    // Without the breaker two processes would make thousands of calls here;
    // with it, only the half-open probes (at most a worker pool each).
    assert!(
        calls_in_outage < 500,
        "{calls_in_outage} calls reached WeChat during 25 s of outage: the breaker did not hold them back"
    );
    h.admin.clear_faults().await.unwrap();
    h.inject(send_latency(5)).await;
    wait_for_sent(&h, (MESSAGES * 3 / 4) as u64, Duration::from_secs(120)).await;
    // SIGTERM: stop reading, finish what it holds, exit cleanly. (The shell's
    // builtin `kill`: a fresh machine may lack procps' /bin/kill.)
    let term = Command::new("sh")
        .arg("-c")
        .arg(format!("kill -TERM {}", b.id()))
        .status()
        .unwrap();
    assert!(term.success());
    let status = exited(&mut b, Duration::from_secs(30)).await;
    assert!(status.success(), "SIGTERM exit: {status:?}");
    wait_for_sent(&h, MESSAGES as u64, Duration::from_secs(180)).await;

    let received = h
        .admin
        .messages(&MessageQuery {
            openid: Some("o_demo_follower".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        received.len(),
        MESSAGES,
        "each message reached WeChat exactly once"
    );
    let mut got: Vec<String> = received
        .into_iter()
        .filter_map(|m| m.client_msg_id)
        .collect();
    got.sort();
    ids.sort();
    assert_eq!(got, ids);
    // WeChat may have every message before every status is SENT: a message
    // the killed worker had posted (unrecorded) waits in the queue for its
    // resend, which WeChat absorbs by client_msg_id, and only then is SENT.
    let settle_by = Instant::now() + Duration::from_secs(60);
    for id in &ids {
        loop {
            let s = front.get_message(id).await.unwrap().expect("status kept");
            if s.status == DeliveryStatus::Sent as i32 {
                break;
            }
            assert!(
                Instant::now() < settle_by,
                "{id} is {} a minute after WeChat had every message",
                s.status
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    a.kill().unwrap();
    exited(&mut a, Duration::from_secs(10)).await;
    let dead = front
        .list_dead_letters(ListDeadLettersRequest::default())
        .await
        .unwrap();
    assert!(
        dead.dead_letters.is_empty(),
        "dead-lettered: {:?}",
        dead.dead_letters.first()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    'log: loop {
        let mut missing = 0;
        for id in &ids {
            match log.get(id).await.unwrap() {
                Some(r) if r.status == DeliveryStatus::Sent as i32 => {}
                _ => missing += 1,
            }
        }
        if missing == 0 {
            break 'log;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} messages not SENT in the log"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    ingest.abort();
    h.suite.shutdown().await;
}
