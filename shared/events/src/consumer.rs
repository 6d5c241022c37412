//! One Redis Streams consumer-group reader, used by every stream wxpush
//! reads: the delivery queue and the delivery event stream.
//!
//! Each call to [`StreamConsumer::next_batch`] returns, in this order:
//! 1. this consumer's own pending entries (read before a crash or a lost
//!    connection, never acknowledged), so a restarted consumer with the same
//!    name loses nothing;
//! 2. entries another consumer left pending longer than `claim_idle`
//!    (`XAUTOCLAIM`, every `claim_every`): that consumer died;
//! 3. new entries, waiting up to `block` for them.
//!
//! The group is created when missing, also after Redis lost its data
//! (`NOGROUP`), so a consumer heals by itself. An entry whose payload cannot
//! be decoded is never handed out again: [`StreamConsumer::reject`] keeps its
//! raw bytes in `{stream}:rejected` and acknowledges it. An entry deleted
//! while pending is acknowledged and skipped. An entry handed out and then
//! released (not done with yet) is read again with the backlog when the
//! reader is idle, or a second after the release if it never is.

use redis::Value;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use wxpush_redis::{Connection, OpenError, RedisError, Timeouts};

/// Rejected entries kept at most (oldest trimmed).
const REJECTED_MAX_LEN: u64 = 10_000;

/// Entries released this long ago are read again even while new ones keep
/// coming (otherwise only when the reader is idle: a busy stream would
/// starve them).
pub(crate) const REREAD_RELEASED_AFTER: Duration = Duration::from_secs(1);

/// One consumer of one stream's group.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// The stream key.
    pub stream: String,
    /// The entry field holding the payload.
    pub field: &'static str,
    pub group: String,
    /// Stable across restarts of the same replica to re-read its own
    /// pending entries; unique among live consumers.
    pub consumer: String,
    /// Longest wait for new entries in one read.
    pub block: Duration,
    /// Entries pending this long at another consumer are taken over.
    pub claim_idle: Duration,
    /// How often to look for such entries.
    pub claim_every: Duration,
    /// `XDEL` entries once acknowledged (a work queue) or leave them to
    /// trimming (an event log other groups may read).
    pub delete_on_ack: bool,
}

/// One entry handed out: its id (to acknowledge) and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    pub id: String,
    pub payload: Vec<u8>,
}

#[derive(Default)]
struct ReadState {
    /// The group is known to exist (since the last error).
    ready: bool,
    /// Own pending entries after this id are still to be re-read.
    backlog_after: Option<String>,
    claim_cursor: String,
    last_claim: Option<Instant>,
}

/// A consumer-group reader of one stream.
pub struct StreamConsumer {
    /// Acknowledgements, claims, the group: never behind a blocking read.
    conn: Connection,
    /// The blocking `XREADGROUP` only.
    reader: Connection,
    settings: ConsumerSettings,
    state: Mutex<ReadState>,
    /// Entries handed out by this process and not yet acknowledged: a
    /// re-read of the own backlog (at start, and whenever idle) skips them,
    /// so an entry still being worked on is never handed out twice.
    handed_out: std::sync::Mutex<std::collections::HashSet<String>>,
    /// When entries were first released since the last re-read.
    released_at: std::sync::Mutex<Option<Instant>>,
}

impl StreamConsumer {
    /// A consumer of `settings.stream` on `url`; connects on first use.
    pub fn open(url: &str, settings: ConsumerSettings) -> Result<Self, OpenError> {
        Ok(Self {
            conn: wxpush_redis::connect(url, Timeouts::Commands)?,
            reader: wxpush_redis::connect(
                url,
                Timeouts::Blocking {
                    block: settings.block,
                },
            )?,
            settings,
            state: Mutex::new(ReadState::default()),
            handed_out: Default::default(),
            released_at: Default::default(),
        })
    }

    /// The settings it reads with.
    pub fn settings(&self) -> &ConsumerSettings {
        &self.settings
    }

    /// Up to `max` entries (own backlog, then claimed, then new); empty when
    /// nothing arrived within `block`.
    pub async fn next_batch(&self, max: usize) -> Result<Vec<StreamEntry>, RedisError> {
        let max = max.max(1);
        let mut state = self.state.lock().await;
        let read = async {
            self.ensure_group(&mut state).await?;
            self.read(&mut state, max).await
        }
        .await;
        let raw = match read {
            Ok(raw) => raw,
            Err(e) => {
                // NOGROUP after Redis lost its data, or a dropped
                // connection: check the group again on the next call.
                state.ready = false;
                return Err(e);
            }
        };
        let (entries, gone): (Vec<_>, Vec<_>) = raw.into_iter().partition(|e| e.1.is_some());
        if !gone.is_empty() {
            let ids: Vec<String> = gone.into_iter().map(|e| e.0).collect();
            self.ack(&ids).await?;
        }
        let entries: Vec<StreamEntry> = entries
            .into_iter()
            .filter_map(|(id, payload)| payload.map(|payload| StreamEntry { id, payload }))
            .collect();
        self.handed().extend(entries.iter().map(|e| e.id.clone()));
        Ok(entries)
    }

    /// Entries handed out that were not processed and are left pending on
    /// purpose (e.g. a receipt waiting for its record): the next re-read of
    /// the own backlog hands them out again.
    pub fn release(&self, ids: &[String]) {
        if ids.is_empty() {
            return;
        }
        let mut handed = self.handed();
        for id in ids {
            handed.remove(id);
        }
        self.released_at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(Instant::now);
    }

    /// Whether released entries are due to be read again (and forgets the
    /// release: the re-read takes them all).
    fn released_due(&self) -> bool {
        let mut at = self.released_at.lock().unwrap_or_else(|p| p.into_inner());
        if at.is_some_and(|t| t.elapsed() >= REREAD_RELEASED_AFTER) {
            *at = None;
            return true;
        }
        false
    }

    fn handed(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.handed_out.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks entries as done: they are not handed out again.
    pub async fn ack(&self, ids: &[String]) -> Result<(), RedisError> {
        if ids.is_empty() {
            return Ok(());
        }
        let s = &self.settings;
        let mut pipe = redis::pipe();
        pipe.cmd("XACK")
            .arg(&s.stream)
            .arg(&s.group)
            .arg(ids)
            .ignore();
        if s.delete_on_ack {
            pipe.cmd("XDEL").arg(&s.stream).arg(ids).ignore();
        }
        pipe.exec_async(&mut self.conn.clone()).await?;
        let mut handed = self.handed();
        for id in ids {
            handed.remove(id);
        }
        Ok(())
    }

    /// An entry that can never be processed (undecodable): its raw bytes
    /// and the reason go to `{stream}:rejected`, then it is acknowledged.
    pub async fn reject(&self, entry: &StreamEntry, why: &str) -> Result<(), RedisError> {
        tracing::error!(stream = %self.settings.stream, entry = %entry.id, reason = why, "stream entry rejected");
        redis::cmd("XADD")
            .arg(self.rejected_key())
            .arg("MAXLEN")
            .arg("~")
            .arg(REJECTED_MAX_LEN)
            .arg("*")
            .arg("id")
            .arg(&entry.id)
            .arg("why")
            .arg(why)
            .arg("raw")
            .arg(&entry.payload)
            .exec_async(&mut self.conn.clone())
            .await?;
        self.ack(std::slice::from_ref(&entry.id)).await
    }

    /// Where rejected entries are kept.
    pub fn rejected_key(&self) -> String {
        format!("{}:rejected", self.settings.stream)
    }

    async fn ensure_group(&self, state: &mut ReadState) -> Result<(), RedisError> {
        if state.ready {
            return Ok(());
        }
        let created: Result<(), RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.settings.stream)
            .arg(&self.settings.group)
            .arg("0")
            .arg("MKSTREAM")
            .exec_async(&mut self.conn.clone())
            .await;
        match created {
            Ok(()) => {}
            Err(e) if e.code() == Some("BUSYGROUP") => {}
            Err(e) => return Err(e),
        }
        *state = ReadState {
            ready: true,
            backlog_after: Some("0".into()),
            claim_cursor: "0-0".into(),
            last_claim: None,
        };
        Ok(())
    }

    async fn read(&self, state: &mut ReadState, max: usize) -> Result<Vec<Raw>, RedisError> {
        let s = &self.settings;
        if state.backlog_after.is_none() && self.released_due() {
            state.backlog_after = Some("0".into());
        }
        if let Some(after) = state.backlog_after.clone() {
            let entries = self.read_group(&self.conn, max, None, &after).await?;
            state.backlog_after = entries.last().map(|e| e.0.clone());
            // Those still being worked on here are not handed out again.
            let entries: Vec<Raw> = {
                let handed = self.handed();
                entries
                    .into_iter()
                    .filter(|e| !handed.contains(&e.0))
                    .collect()
            };
            if !entries.is_empty() {
                tracing::info!(stream = %s.stream, count = entries.len(), "re-reading own unacknowledged entries");
                return Ok(entries);
            }
        }
        if state
            .last_claim
            .is_none_or(|t| t.elapsed() >= s.claim_every)
        {
            let reply: Value = redis::cmd("XAUTOCLAIM")
                .arg(&s.stream)
                .arg(&s.group)
                .arg(&s.consumer)
                .arg(s.claim_idle.as_millis() as u64)
                .arg(&state.claim_cursor)
                .arg("COUNT")
                .arg(max)
                .query_async(&mut self.conn.clone())
                .await?;
            let (next, entries) = autoclaim_reply(reply, s.field);
            if next == "0-0" {
                state.last_claim = Some(Instant::now());
            }
            state.claim_cursor = next;
            if !entries.is_empty() {
                tracing::warn!(stream = %s.stream, count = entries.len(), "claimed entries another consumer left pending");
                return Ok(entries);
            }
        }
        let entries = self
            .read_group(&self.reader, max, Some(s.block), ">")
            .await?;
        if entries.is_empty() {
            // Idle: look at our own pending entries again. A read in flight
            // when a previous incarnation of this consumer died may have
            // been delivered to it after we re-read them at start. That
            // re-read takes the released entries too.
            state.backlog_after = Some("0".into());
            *self.released_at.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        Ok(entries)
    }
}

impl StreamConsumer {
    /// `XREADGROUP` of up to `max` entries after `after` (`>`: new ones,
    /// waiting up to `block`; an id: this consumer's pending ones).
    async fn read_group(
        &self,
        conn: &Connection,
        max: usize,
        block: Option<Duration>,
        after: &str,
    ) -> Result<Vec<Raw>, RedisError> {
        let s = &self.settings;
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&s.group)
            .arg(&s.consumer)
            .arg("COUNT")
            .arg(max);
        if let Some(block) = block {
            cmd.arg("BLOCK").arg(block.as_millis().max(1) as u64);
        }
        cmd.arg("STREAMS").arg(&s.stream).arg(after);
        let reply: Value = cmd.query_async(&mut conn.clone()).await?;
        Ok(read_reply(reply, s.field))
    }
}

/// An entry as read: id and payload (`None`: deleted while pending).
type Raw = (String, Option<Vec<u8>>);

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
fn entries(v: Value, field: &str) -> Vec<Raw> {
    items(v)
        .into_iter()
        .filter_map(|entry| {
            let mut parts = items(entry).into_iter();
            let id = text(&parts.next()?);
            let fields = parts.next().map(items).unwrap_or_default();
            let payload = fields.chunks(2).find_map(|kv| match kv {
                [k, Value::BulkString(d)] if text(k) == field => Some(d.clone()),
                _ => None,
            });
            Some((id, payload))
        })
        .collect()
}

/// `XREADGROUP` reply: `nil`, `[[key, entries]]` (RESP2) or a map (RESP3).
fn read_reply(v: Value, field: &str) -> Vec<Raw> {
    let mut out = Vec::new();
    let mut streams = items(v).into_iter().peekable();
    while let Some(s) = streams.next() {
        match s {
            Value::Array(_) => {
                let mut kv = items(s).into_iter();
                let _key = kv.next();
                if let Some(es) = kv.next() {
                    out.extend(entries(es, field));
                }
            }
            // RESP3 map flattened: key, entries.
            _ => {
                if let Some(es) = streams.next() {
                    out.extend(entries(es, field));
                }
            }
        }
    }
    out
}

/// `XAUTOCLAIM` reply: `[next_cursor, entries, deleted_ids]`.
fn autoclaim_reply(v: Value, field: &str) -> (String, Vec<Raw>) {
    let mut parts = items(v).into_iter();
    let next = parts
        .next()
        .map(|v| text(&v))
        .unwrap_or_else(|| "0-0".into());
    let claimed = parts.next().map(|v| entries(v, field)).unwrap_or_default();
    (next, claimed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn replies_of_both_protocols_and_deleted_entries_parse() {
        let entry = |id: &str, v: &str| {
            Value::Array(vec![bulk(id), Value::Array(vec![bulk("m"), bulk(v)])])
        };
        let resp2 = Value::Array(vec![Value::Array(vec![
            bulk("q"),
            Value::Array(vec![
                entry("1-0", "a"),
                Value::Array(vec![bulk("2-0"), Value::Nil]),
            ]),
        ])]);
        assert_eq!(
            read_reply(resp2, "m"),
            vec![("1-0".into(), Some(b"a".to_vec())), ("2-0".into(), None)]
        );
        let resp3 = Value::Map(vec![(bulk("q"), Value::Array(vec![entry("3-0", "c")]))]);
        assert_eq!(
            read_reply(resp3, "m"),
            vec![("3-0".into(), Some(b"c".to_vec()))]
        );
        let other_field = Value::Array(vec![Value::Array(vec![
            bulk("q"),
            Value::Array(vec![entry("4-0", "d")]),
        ])]);
        assert_eq!(read_reply(other_field, "d"), vec![("4-0".into(), None)]);
        let claimed = Value::Array(vec![
            bulk("5-0"),
            Value::Array(vec![entry("4-0", "x")]),
            Value::Array(vec![]),
        ]);
        assert_eq!(
            autoclaim_reply(claimed, "m"),
            ("5-0".into(), vec![("4-0".into(), Some(b"x".to_vec()))])
        );
    }
}
