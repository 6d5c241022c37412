//! Shared by the logquery integration tests: both backends behind one
//! factory, a deterministic record generator, and brute-force answers to
//! compare the indexed ones with.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;
use wxpush_events::{
    EventSink, EventSource, MemoryBus, RedisStreamSink, RedisStreamSource, StreamSettings,
};
use wxpush_logquery::filter::{Query, check_query};
use wxpush_logquery::record::StoredRecord;
use wxpush_logquery::store::now_micros;
use wxpush_logquery::{LogStore, MemoryLogStore, PostgresLogStore, RedisLogStore, Retention};
use wxpush_proto::Timestamp;
use wxpush_proto::v1::{
    DeliveryEvent, DeliveryStatus, LogFilter, LogRecord, QueryLogsRequest, TimeRange,
};
use wxpush_testkit::{PostgresServer, RedisServer};

/// The event stream on Redis is read in two partitions: the store suites
/// read a partitioned stream as production on a cluster does.
fn partitions() -> wxpush_redis::Partitions {
    wxpush_redis::Partitions::new(2).unwrap()
}

pub const RETENTION: Retention = Retention(Duration::from_secs(7 * 24 * 3600));

/// One acceptance body (an `async fn(Kind)`) as two tests: on memory and
/// on a real Redis; with a third name, also on a real PostgreSQL (the
/// events still travel on Redis).
#[allow(unused_macros)]
macro_rules! on_both_backends {
    ($body:ident => $memory:ident, $redis:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $memory() {
            $body(common::Kind::Memory).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $redis() {
            $body(common::Kind::Redis).await;
        }
    };
    ($body:ident => $memory:ident, $redis:ident, $postgres:ident) => {
        on_both_backends!($body => $memory, $redis);

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $postgres() {
            $body(common::Kind::Postgres).await;
        }
    };
}

/// One backend: its store and its event stream.
pub struct Backend {
    pub name: &'static str,
    pub store: Arc<dyn LogStore>,
    pub sink: Arc<dyn EventSink>,
    bus: Option<MemoryBus>,
    redis: Option<RedisServer>,
    pub postgres: Option<PostgresServer>,
}

#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Memory,
    Redis,
    Postgres,
}

impl Backend {
    pub async fn start(kind: Kind) -> Self {
        Self::start_with(kind, RETENTION).await
    }

    /// A backend keeping records for `retention`.
    pub async fn start_with(kind: Kind, retention: Retention) -> Self {
        match kind {
            Kind::Memory => {
                let bus = MemoryBus::new(100_000);
                Self {
                    name: "memory",
                    store: Arc::new(MemoryLogStore::new(1_000_000, retention)),
                    sink: Arc::new(bus.clone()),
                    bus: Some(bus),
                    redis: None,
                    postgres: None,
                }
            }
            Kind::Redis => {
                let redis = RedisServer::start();
                let store =
                    RedisLogStore::connect(&redis.url(), "wxpush:", partitions(), retention)
                        .await
                        .expect("redis store");
                let sink = RedisStreamSink::connect(&Self::stream(&redis))
                    .await
                    .expect("redis sink");
                Self {
                    name: "redis",
                    store: Arc::new(store),
                    sink: Arc::new(sink),
                    bus: None,
                    redis: Some(redis),
                    postgres: None,
                }
            }
            Kind::Postgres => {
                let redis = RedisServer::start();
                let postgres = PostgresServer::start();
                let store = PostgresLogStore::open(&postgres.url(), retention).expect("pg store");
                store.prepare().await.expect("schema");
                let sink = RedisStreamSink::connect(&Self::stream(&redis))
                    .await
                    .expect("redis sink");
                Self {
                    name: "postgres",
                    store: Arc::new(store),
                    sink: Arc::new(sink),
                    bus: None,
                    redis: Some(redis),
                    postgres: Some(postgres),
                }
            }
        }
    }

    fn stream(redis: &RedisServer) -> StreamSettings {
        StreamSettings {
            redis_url: redis.url(),
            key_prefix: "wxpush:".into(),
            partitions: partitions(),
            consumer: "logquery-test".into(),
            block: Duration::from_millis(100),
            ..Default::default()
        }
    }

    /// A new consumer of the stream (a restarted logquery).
    pub async fn source(&self) -> Arc<dyn EventSource> {
        match (&self.bus, &self.redis) {
            (Some(bus), _) => Arc::new(bus.source()),
            (_, Some(redis)) => Arc::new(
                RedisStreamSource::connect(&Self::stream(redis))
                    .await
                    .expect("redis source"),
            ),
            _ => unreachable!(),
        }
    }

    pub fn redis_url(&self) -> Option<String> {
        self.redis.as_ref().map(|r| r.url())
    }
}

/// A small deterministic PRNG (xorshift64*), so failures reproduce.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

pub fn ts(micros: i64) -> Option<Timestamp> {
    Some(wxpush_proto::timestamp_from_micros(micros))
}

const FINALS: [(DeliveryStatus, i64); 6] = [
    (DeliveryStatus::Sent, 0),
    (DeliveryStatus::Sent, 0),
    (DeliveryStatus::Failed, 43004),
    (DeliveryStatus::Failed, 40003),
    (DeliveryStatus::Dead, 45009),
    (DeliveryStatus::Retrying, -1),
];

/// The events of `n` messages accepted within the last six days: 1 to 3
/// attempts each, a few hundred users, shared traces, tied timestamps.
pub fn generate(n: usize, seed: u64) -> Vec<DeliveryEvent> {
    let mut rng = Rng::new(seed);
    let now = now_micros();
    let mut events = Vec::with_capacity(n * 2);
    let mut prev_at = now;
    let mut prev_trace = String::new();
    for i in 0..n {
        let accepted = if rng.chance(3) {
            prev_at // a tie: equal accepted_at, ordered by message id
        } else {
            now - 3_600_000_000 - rng.below(5 * 86_400_000_000) as i64
        };
        prev_at = accepted;
        let trace = if rng.chance(5) && !prev_trace.is_empty() {
            prev_trace.clone()
        } else {
            format!("{:016x}{:016x}", rng.next(), i)
        };
        prev_trace = trace.clone();
        let key = rng.below(5);
        let template_id = if key == 4 && rng.chance(50) {
            "tid_4b".to_string()
        } else {
            format!("tid_{key}")
        };
        let base = DeliveryEvent {
            message_id: format!("{:016x}{:016x}", rng.next(), i),
            trace_id: trace,
            app_id: format!("wx_app_{}", rng.below(3)),
            openid: format!("o_user_{}", rng.below(400)),
            template_key: format!("tpl_{key}"),
            template_id,
            kind: 1,
            accepted_at: ts(accepted),
            data_json: r#"{"order_id":{"value":"SF1234567"},"amount":{"value":"88.00元"}}"#.into(),
            // Three callers, and records from before callers were recorded.
            caller: if i % 7 == 0 {
                String::new()
            } else {
                format!("caller_{}", i % 3)
            },
            ..Default::default()
        };
        let (final_status, final_code) = FINALS[rng.below(FINALS.len() as u64) as usize];
        let attempts = 1 + rng.below(3) as u32;
        for a in 1..=attempts {
            let last = a == attempts;
            let (status, errcode) = if last {
                (final_status, final_code)
            } else {
                (DeliveryStatus::Retrying, -1)
            };
            events.push(DeliveryEvent {
                event_id: format!("{}/{a}", base.message_id),
                attempt: a,
                status: status as i32,
                errcode,
                errmsg: if errcode == 0 {
                    "ok".into()
                } else {
                    "err".into()
                },
                wechat_msgid: if errcode == 0 {
                    format!("{i}")
                } else {
                    String::new()
                },
                latency_ms: 20 + a,
                occurred_at: ts(accepted + i64::from(a) * 1_000_000),
                ..base.clone()
            });
        }
    }
    events
}

/// The records the events make, folded independently of any store.
pub fn fold(events: &[DeliveryEvent]) -> Vec<LogRecord> {
    let mut by_id: std::collections::HashMap<String, StoredRecord> = Default::default();
    for e in events {
        by_id
            .entry(e.message_id.clone())
            .or_insert_with(|| StoredRecord::new(e))
            .apply(e);
    }
    let mut all: Vec<LogRecord> = by_id.into_values().map(|s| s.record).collect();
    all.sort_by(|a, b| a.message_id.cmp(&b.message_id));
    all
}

fn micros(t: &Option<Timestamp>) -> i64 {
    t.map_or(0, |t| t.seconds * 1_000_000 + i64::from(t.nanos) / 1_000)
}

/// The brute-force answer: every record checked, newest first.
pub fn brute_force<'a>(all: &'a [LogRecord], f: &LogFilter) -> Vec<&'a LogRecord> {
    let mut out: Vec<&LogRecord> = all
        .iter()
        .filter(|r| {
            let eq = |want: &str, have: &str| want.is_empty() || want == have;
            let t = micros(&r.accepted_at);
            let in_range = f.time_range.as_ref().is_none_or(|tr| {
                tr.start.is_none_or(|_| t >= micros(&tr.start))
                    && tr.end.is_none_or(|_| t < micros(&tr.end))
            });
            eq(&f.message_id, &r.message_id)
                && eq(&f.trace_id, &r.trace_id)
                && eq(&f.openid, &r.openid)
                && eq(&f.app_id, &r.app_id)
                && eq(&f.template_key, &r.template_key)
                && eq(&f.template_id, &r.template_id)
                && eq(&f.caller, &r.caller)
                && (f.status == 0 || f.status == r.status)
                && f.errcode.is_none_or(|e| e == r.errcode)
                && in_range
        })
        .collect();
    out.sort_by(|a, b| {
        (micros(&b.accepted_at), &b.message_id).cmp(&(micros(&a.accepted_at), &a.message_id))
    });
    out
}

/// A random filter: each field set with some chance, values taken from a
/// random existing record (sometimes a value no record has).
pub fn random_filter(rng: &mut Rng, all: &[LogRecord]) -> LogFilter {
    let pick = |rng: &mut Rng| &all[rng.below(all.len() as u64) as usize];
    let mut f = LogFilter::default();
    let p = 25;
    if rng.chance(3) {
        f.message_id = pick(rng).message_id.clone();
    }
    if rng.chance(8) {
        f.trace_id = pick(rng).trace_id.clone();
    }
    if rng.chance(p) {
        f.openid = if rng.chance(10) {
            "o_nobody".into()
        } else {
            pick(rng).openid.clone()
        };
    }
    if rng.chance(p) {
        f.app_id = pick(rng).app_id.clone();
    }
    if rng.chance(p) {
        f.template_key = pick(rng).template_key.clone();
    }
    if rng.chance(15) {
        f.template_id = pick(rng).template_id.clone();
    }
    if rng.chance(p) {
        f.status = pick(rng).status;
    }
    if rng.chance(p) {
        f.errcode = Some(pick(rng).errcode);
    }
    if rng.chance(40) {
        let a = micros(&pick(rng).accepted_at);
        let b = micros(&pick(rng).accepted_at);
        let (lo, hi) = (a.min(b), a.max(b) + 1);
        f.time_range = Some(TimeRange {
            start: if rng.chance(80) { ts(lo) } else { None },
            end: if rng.chance(80) { ts(hi) } else { None },
        });
    }
    if rng.chance(p) {
        f.caller = pick(rng).caller.clone();
    }
    f
}

/// A checked query for one page.
pub fn query(filter: &LogFilter, page_size: u32, token: String) -> Query {
    check_query(QueryLogsRequest {
        filter: Some(filter.clone()),
        page_size,
        page_token: token,
    })
    .expect("a valid query")
}

/// Pages through a query; at most `max_pages`. Whether it reached the end.
pub async fn page_all(
    store: &dyn LogStore,
    f: &LogFilter,
    size: u32,
    max_pages: usize,
) -> (Vec<LogRecord>, bool) {
    let mut out = Vec::new();
    let mut token = String::new();
    for _ in 0..max_pages {
        let page = store.query(&query(f, size, token)).await.expect("query");
        assert!(page.records.len() <= size as usize);
        out.extend(page.records);
        if page.next_page_token.is_empty() {
            return (out, true);
        }
        token = page.next_page_token;
    }
    (out, false)
}
