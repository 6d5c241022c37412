//! The delivery event stream on Redis Streams.
//!
//! - Stream key `{prefix}events`; each entry has one field `d`, the
//!   prost-encoded [`DeliveryEvent`]. Delivery appends with `XADD ... MAXLEN ~`
//!   so the stream cannot grow without bound; logquery also trims it by age
//!   (`XTRIM MINID`) to the log's retention.
//! - Logquery replicas read through one consumer group (`XREADGROUP`) and
//!   `XACK` an entry only after the store applied it. A consumer starting up
//!   first re-reads its own pending entries (read before a crash, never
//!   acknowledged), and periodically claims entries another consumer left
//!   pending for too long (`XAUTOCLAIM`), so a restart or a dead replica
//!   loses nothing.

use crate::{DeliveryEvent, EventError, EventSink, EventSource, Receipt, Received};
use prost::Message;
use redis::Value;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Where the stream is and how it is consumed.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// `redis://host:port/db`.
    pub redis_url: String,
    /// Key prefix (`wxpush:`); the stream is `{prefix}events`.
    pub key_prefix: String,
    /// Consumer group (all logquery replicas share one).
    pub group: String,
    /// This consumer's name; stable across restarts of the same replica so
    /// that it re-reads its own pending entries (e.g. the pod name).
    pub consumer: String,
    /// Approximate upper bound on entries (`XADD MAXLEN ~`).
    pub max_len: u64,
    /// Entries pending this long at another consumer are claimed.
    pub claim_idle: Duration,
    /// How long one `XREADGROUP` waits for new entries.
    pub block: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            redis_url: "redis://127.0.0.1:6379/".into(),
            key_prefix: "wxpush:".into(),
            group: "logquery".into(),
            consumer: "logquery-0".into(),
            max_len: 5_000_000,
            claim_idle: Duration::from_secs(60),
            block: Duration::from_secs(1),
        }
    }
}

/// The stream key for a key prefix.
pub fn stream_key(prefix: &str) -> String {
    format!("{prefix}events")
}

async fn connect(url: &str, response_timeout: Duration) -> Result<ConnectionManager, EventError> {
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(response_timeout))
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(2);
    Ok(ConnectionManager::new_with_config(client, config).await?)
}

/// Delivery's side: appends events to the stream.
#[derive(Clone)]
pub struct RedisStreamSink {
    conn: ConnectionManager,
    key: String,
    max_len: u64,
}

impl RedisStreamSink {
    /// Connects (fails fast if Redis is unreachable at start).
    pub async fn connect(settings: &StreamSettings) -> Result<Self, EventError> {
        Ok(Self {
            conn: connect(&settings.redis_url, Duration::from_secs(2)).await?,
            key: stream_key(&settings.key_prefix),
            max_len: settings.max_len,
        })
    }
}

#[async_trait::async_trait]
impl EventSink for RedisStreamSink {
    async fn publish(&self, event: DeliveryEvent) -> Result<(), EventError> {
        let mut conn = self.conn.clone();
        redis::cmd("XADD")
            .arg(&self.key)
            .arg("MAXLEN")
            .arg("~")
            .arg(self.max_len)
            .arg("*")
            .arg("d")
            .arg(event.encode_to_vec())
            .exec_async(&mut conn)
            .await?;
        Ok(())
    }
}

#[derive(Default)]
struct ReadState {
    /// The group exists (checked since the last connection problem).
    ready: bool,
    /// Own pending entries after this id are still to be re-read; `None`
    /// once they all were.
    backlog_after: Option<String>,
    /// Next `XAUTOCLAIM` start, and when the last full pass ended.
    claim_cursor: String,
    last_claim: Option<Instant>,
}

/// Logquery's side: one consumer of the group.
pub struct RedisStreamSource {
    conn: ConnectionManager,
    key: String,
    settings: StreamSettings,
    state: Mutex<ReadState>,
}

impl RedisStreamSource {
    /// Connects with its own connection (a blocking read must not hold up
    /// other commands).
    pub async fn connect(settings: &StreamSettings) -> Result<Self, EventError> {
        Ok(Self {
            conn: connect(&settings.redis_url, settings.block + Duration::from_secs(5)).await?,
            key: stream_key(&settings.key_prefix),
            settings: settings.clone(),
            state: Mutex::new(ReadState::default()),
        })
    }

    async fn ensure_group(&self, state: &mut ReadState) -> Result<(), EventError> {
        if state.ready {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let created: Result<(), _> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.key)
            .arg(&self.settings.group)
            .arg("0")
            .arg("MKSTREAM")
            .exec_async(&mut conn)
            .await;
        match created {
            Ok(()) => {}
            Err(e) if e.code() == Some("BUSYGROUP") => {}
            Err(e) => return Err(e.into()),
        }
        *state = ReadState {
            ready: true,
            backlog_after: Some("0".into()),
            claim_cursor: "0-0".into(),
            last_claim: None,
        };
        Ok(())
    }

    async fn read(&self, state: &mut ReadState, max: usize) -> Result<Vec<Entry>, EventError> {
        let mut conn = self.conn.clone();
        let group = &self.settings.group;
        let consumer = &self.settings.consumer;
        if let Some(after) = state.backlog_after.clone() {
            let reply: Value = redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(group)
                .arg(consumer)
                .arg("COUNT")
                .arg(max)
                .arg("STREAMS")
                .arg(&self.key)
                .arg(after)
                .query_async(&mut conn)
                .await?;
            let entries = read_reply(reply);
            state.backlog_after = entries.last().map(|e| e.id.clone());
            if !entries.is_empty() {
                tracing::info!(
                    count = entries.len(),
                    "re-reading unacknowledged delivery events"
                );
                return Ok(entries);
            }
        }
        let claim_due = state
            .last_claim
            .is_none_or(|t| t.elapsed() >= self.settings.claim_idle / 2);
        if claim_due {
            let reply: Value = redis::cmd("XAUTOCLAIM")
                .arg(&self.key)
                .arg(group)
                .arg(consumer)
                .arg(self.settings.claim_idle.as_millis() as u64)
                .arg(&state.claim_cursor)
                .arg("COUNT")
                .arg(max)
                .query_async(&mut conn)
                .await?;
            let (next, entries) = autoclaim_reply(reply);
            if next == "0-0" {
                state.last_claim = Some(Instant::now());
            }
            state.claim_cursor = next;
            if !entries.is_empty() {
                tracing::info!(
                    count = entries.len(),
                    "claimed delivery events left by another consumer"
                );
                return Ok(entries);
            }
        }
        let reply: Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(group)
            .arg(consumer)
            .arg("COUNT")
            .arg(max)
            .arg("BLOCK")
            .arg(self.settings.block.as_millis() as u64)
            .arg("STREAMS")
            .arg(&self.key)
            .arg(">")
            .query_async(&mut conn)
            .await?;
        let entries = read_reply(reply);
        if entries.is_empty() {
            // Idle: look at our own pending entries again. A read that was
            // in flight when a previous incarnation of this consumer died
            // may have been delivered to it after we re-read them at start.
            state.backlog_after = Some("0".into());
        }
        Ok(entries)
    }
}

#[async_trait::async_trait]
impl EventSource for RedisStreamSource {
    async fn next_batch(&self, max: usize) -> Result<Option<Vec<Received>>, EventError> {
        let max = max.max(1);
        let mut state = self.state.lock().await;
        loop {
            self.ensure_group(&mut state).await?;
            let entries = match self.read(&mut state, max).await {
                Ok(entries) => entries,
                Err(e) => {
                    // NOGROUP after a Redis restart, or a dropped connection:
                    // check the group again on the next call.
                    state.ready = false;
                    return Err(e);
                }
            };
            let mut out = Vec::with_capacity(entries.len());
            let mut poison = Vec::new();
            for entry in entries {
                match entry.data.as_deref().map(DeliveryEvent::decode) {
                    Some(Ok(event)) => out.push(Received {
                        event,
                        receipt: Receipt(entry.id),
                    }),
                    Some(Err(e)) => {
                        tracing::warn!(id = %entry.id, error = %e, "undecodable delivery event skipped");
                        poison.push(Receipt(entry.id));
                    }
                    // Trimmed away while pending: nothing left to apply.
                    None => poison.push(Receipt(entry.id)),
                }
            }
            if !poison.is_empty() {
                self.ack(&poison).await?;
            }
            if !out.is_empty() {
                return Ok(Some(out));
            }
        }
    }

    async fn ack(&self, receipts: &[Receipt]) -> Result<(), EventError> {
        if receipts.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("XACK");
        cmd.arg(&self.key).arg(&self.settings.group);
        for r in receipts {
            cmd.arg(&r.0);
        }
        cmd.exec_async(&mut conn).await?;
        Ok(())
    }
}

/// One stream entry; `data` is `None` when the entry was deleted.
struct Entry {
    id: String,
    data: Option<Vec<u8>>,
}

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        _ => String::new(),
    }
}

fn items(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) | Value::Set(a) => a,
        Value::Map(m) => m.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => Vec::new(),
    }
}

/// Entries of `[[id, [field, value, ...] | nil], ...]`.
fn entries(v: Value) -> Vec<Entry> {
    items(v)
        .into_iter()
        .filter_map(|entry| {
            let mut parts = items(entry).into_iter();
            let id = text(&parts.next()?);
            let fields = parts.next().map(items).unwrap_or_default();
            let data = fields.chunks(2).find_map(|kv| match kv {
                [k, Value::BulkString(d)] if text(k) == "d" => Some(d.clone()),
                _ => None,
            });
            Some(Entry { id, data })
        })
        .collect()
}

/// `XREADGROUP` reply: `nil` or `[[key, entries]]` (a map in RESP3).
fn read_reply(v: Value) -> Vec<Entry> {
    let mut out = Vec::new();
    let streams = items(v);
    let mut i = 0;
    while i < streams.len() {
        match &streams[i] {
            // RESP2: each stream is [key, entries].
            Value::Array(_) => {
                let mut kv = items(streams[i].clone()).into_iter();
                let _key = kv.next();
                if let Some(es) = kv.next() {
                    out.extend(entries(es));
                }
                i += 1;
            }
            // RESP3 map flattened: key, entries.
            _ => {
                if let Some(es) = streams.get(i + 1) {
                    out.extend(entries(es.clone()));
                }
                i += 2;
            }
        }
    }
    out
}

/// `XAUTOCLAIM` reply: `[next_cursor, entries, deleted_ids]`.
fn autoclaim_reply(v: Value) -> (String, Vec<Entry>) {
    let mut parts = items(v).into_iter();
    let next = parts
        .next()
        .map(|v| text(&v))
        .unwrap_or_else(|| "0-0".into());
    let claimed = parts.next().map(entries).unwrap_or_default();
    (next, claimed)
}
