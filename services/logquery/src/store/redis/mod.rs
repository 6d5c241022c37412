//! The Redis store (key layout in [`keys`]). Writes fold events into a
//! record on the client and commit it with a compare-and-set Lua script that
//! also maintains every index, so replicas applying events of the same
//! message concurrently never lose an update. A batch of events costs two
//! round trips (`MGET`, then one pipeline of scripts).

mod keys;
mod trace;
mod walk;

use super::{LogStore, Page, Retention, now_micros};
use crate::error::StoreError;
use crate::filter::{Query, micros};
use crate::metrics::{LogQueryMetrics, Removal};
use crate::record::StoredRecord;
use crate::stats::StatsQuery;
use keys::{Combo, Keys};
use std::collections::HashMap;
use wxpush_proto::v1::{DeliveryEvent, LogRecord, StatsSeries};
use wxpush_redis::Connection;

/// Commits one record if it is still what the writer read, with every
/// index (KEYS: record, new combo, old combo, openid zset, trace bucket,
/// trace zset, combo registry; ARGV: old bytes, new bytes, score, member,
/// expire-at ms, new combo name, has old, has openid, has trace, retention
/// cutoff score, trace field, trace entry, trace bucket expire-at ms).
/// Returns 0 on a conflict. A trace is indexed when its record is created:
/// in the day's bucket if it is the trace's first message, else in its zset.
const APPLY: &str = r#"
local cur = redis.call('GET', KEYS[1])
if ARGV[7] == '1' then
  if cur ~= ARGV[1] then return 0 end
elseif cur then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[5])
if ARGV[7] == '1' and KEYS[3] ~= KEYS[2] then
  redis.call('ZREM', KEYS[3], ARGV[4])
end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
redis.call('SADD', KEYS[7], ARGV[6])
local function index(k)
  redis.call('ZADD', k, ARGV[3], ARGV[4])
  redis.call('ZREMRANGEBYSCORE', k, '-inf', '(' .. ARGV[10])
  if redis.call('PEXPIRETIME', k) < tonumber(ARGV[5]) then
    redis.call('PEXPIREAT', k, ARGV[5])
  end
end
if ARGV[8] == '1' then index(KEYS[4]) end
if ARGV[9] == '1' and ARGV[7] == '0' then
  local first = redis.call('HGET', KEYS[5], ARGV[11])
  if first and first ~= ARGV[12] then
    index(KEYS[6])
  else
    redis.call('HSET', KEYS[5], ARGV[11], ARGV[12])
    redis.call('PEXPIREAT', KEYS[5], ARGV[13])
  end
end
return 1
"#;

/// Forgets an emptied combo (KEYS: combo, registry; ARGV: name).
const FORGET_COMBO: &str = r#"
if redis.call('ZCARD', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[2], ARGV[1])
  return 1
end
return 0
"#;

/// Records in Redis; cheap to clone.
#[derive(Clone)]
pub struct RedisLogStore {
    conn: Connection,
    keys: Keys,
    /// The event stream's partitions, trimmed to the retention.
    stream_keys: Vec<String>,
    retention: Retention,
    /// Whether the scripts are known to be in Redis's script cache: loaded
    /// once, not before every batch (a `SCRIPT LOAD` per batch was most of
    /// a batch's round trips at low load); forgotten after any failure, so
    /// a Redis that restarted without them gets them again.
    scripts_loaded: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// A record to commit: what was read and what replaces it.
struct Write {
    old: Option<(Vec<u8>, LogRecord)>,
    new: StoredRecord,
}

impl RedisLogStore {
    /// A store on the node at `redis_url`, connecting on first use;
    /// `key_prefix` is the service's prefix (`wxpush:`), `partitions` the
    /// event stream's. Its scripts span many keys, so a Redis Cluster is
    /// refused: there the log belongs in PostgreSQL.
    pub async fn connect(
        redis_url: &str,
        key_prefix: &str,
        partitions: wxpush_redis::Partitions,
        retention: Retention,
    ) -> Result<Self, StoreError> {
        if wxpush_redis::is_cluster(redis_url) {
            return Err(StoreError::Backend(
                "the log cannot live on a Redis Cluster (its scripts span many keys): set backend.kind: postgres".into(),
            ));
        }
        Ok(Self {
            conn: wxpush_redis::connect(redis_url, wxpush_redis::Timeouts::Bulk)
                .map_err(|e| StoreError::Backend(e.to_string()))?,
            keys: Keys::new(key_prefix),
            stream_keys: wxpush_events::stream_keys(key_prefix, partitions),
            retention,
            scripts_loaded: Default::default(),
        })
    }

    /// Folds `events` into the record read as `old`; `None` if nothing changed.
    fn fold(&self, mid: &str, old: Option<Vec<u8>>, events: &[&DeliveryEvent]) -> Option<Write> {
        let old = old.map(|bytes| match StoredRecord::decode(&bytes) {
            Ok(s) => (bytes, s),
            Err(e) => {
                tracing::error!(message_id = %mid, error = %e, "corrupt log record replaced");
                (bytes, StoredRecord::new(events[0]))
            }
        });
        let mut new = old
            .as_ref()
            .map_or_else(|| StoredRecord::new(events[0]), |(_, s)| s.clone());
        let mut changed = false;
        for e in events {
            changed |= new.apply(e);
        }
        changed.then(|| Write {
            old: old.map(|(b, s)| (b, s.record)),
            new,
        })
    }

    fn invocation(&self, sha: &str, w: &Write, pipe: &mut redis::Pipeline) {
        let r = &w.new.record;
        let score = micros(r.accepted_at.as_ref());
        let retention = self.retention.0.as_micros() as i64;
        let expire_ms = (score + retention) / 1_000;
        let cutoff = self.retention.cutoff(now_micros());
        let combo = Combo::of(r);
        let old_combo = w
            .old
            .as_ref()
            .map_or_else(|| combo.clone(), |(_, old)| Combo::of(old));
        let (bucket, trace_field) = trace::slot(&r.trace_id);
        let day = trace::day(score);
        let flag = |b: bool| if b { "1" } else { "0" };
        pipe.cmd("EVALSHA")
            .arg(sha)
            .arg(7)
            .arg(self.keys.record(&r.message_id))
            .arg(self.keys.combo(&combo.name()))
            .arg(self.keys.combo(&old_combo.name()))
            .arg(self.keys.openid(&r.openid))
            .arg(self.keys.trace_bucket(day, bucket))
            .arg(self.keys.trace_set(&r.trace_id))
            .arg(self.keys.combos())
            .arg(w.old.as_ref().map_or(&[][..], |(b, _)| b.as_slice()))
            .arg(w.new.encode())
            .arg(score)
            .arg(&r.message_id)
            .arg(expire_ms)
            .arg(combo.name())
            .arg(flag(w.old.is_some()))
            .arg(flag(!r.openid.is_empty()))
            .arg(flag(!r.trace_id.is_empty()))
            .arg(cutoff)
            .arg(&trace_field[..])
            .arg(trace::entry(score, &r.message_id))
            .arg(trace::expire_at_ms(day, retention));
    }

    /// The SHA of a script, loading both scripts first unless they are
    /// known to be loaded.
    async fn load_script(&self, src: &str) -> Result<String, StoreError> {
        use std::sync::atomic::Ordering;
        if !self.scripts_loaded.load(Ordering::Acquire) {
            let mut pipe = redis::pipe();
            for script in [APPLY, FORGET_COMBO] {
                pipe.cmd("SCRIPT").arg("LOAD").arg(script).ignore();
            }
            pipe.exec_async(&mut self.conn.clone()).await?;
            self.scripts_loaded.store(true, Ordering::Release);
        }
        Ok(redis::Script::new(src).get_hash().to_string())
    }

    /// After a failure the scripts may be gone (Redis restarted empty).
    fn forget_scripts(&self) {
        self.scripts_loaded
            .store(false, std::sync::atomic::Ordering::Release);
    }

    /// Commits the writes; returns the records that lost a race.
    async fn commit(&self, sha: &str, writes: &[Write]) -> Result<Vec<usize>, StoreError> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for w in writes {
            self.invocation(sha, w, &mut pipe);
        }
        let mut conn = self.conn.clone();
        let done: Vec<i64> = pipe.query_async(&mut conn).await?;
        Ok(done
            .iter()
            .enumerate()
            .filter(|(_, d)| **d == 0)
            .map(|(i, _)| i)
            .collect())
    }

    /// [`LogStore::apply`] with the scripts loaded.
    async fn apply_loaded(&self, events: &[DeliveryEvent]) -> Result<Vec<LogRecord>, StoreError> {
        let cutoff = self.retention.cutoff(now_micros());
        let mut ids: Vec<&str> = Vec::new();
        let mut groups: HashMap<&str, Vec<&DeliveryEvent>> = HashMap::new();
        for e in events {
            if micros(e.accepted_at.as_ref()) < cutoff {
                continue;
            }
            let g = groups.entry(e.message_id.as_str()).or_default();
            if g.is_empty() {
                ids.push(&e.message_id);
            }
            g.push(e);
        }
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sha = self.load_script(APPLY).await?;
        let mut changed = Vec::new();
        for chunk in ids.chunks(1000) {
            let mut conn = self.conn.clone();
            let keys: Vec<String> = chunk.iter().map(|m| self.keys.record(m)).collect();
            let olds: Vec<Option<Vec<u8>>> =
                redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
            let mut writes = Vec::new();
            let mut mids = Vec::new();
            for (mid, old) in chunk.iter().zip(olds) {
                if let Some(w) = self.fold(mid, old, &groups[mid]) {
                    writes.push(w);
                    mids.push(*mid);
                }
            }
            let lost = self.commit(&sha, &writes).await?;
            for (i, w) in writes.into_iter().enumerate() {
                if !lost.contains(&i) {
                    changed.push(w.new.record);
                } else if let Some(r) = self.retry(&sha, mids[i], &groups[mids[i]]).await? {
                    changed.push(r);
                }
            }
        }
        Ok(changed)
    }

    /// Re-reads and re-folds one record until its write wins.
    async fn retry(
        &self,
        sha: &str,
        mid: &str,
        events: &[&DeliveryEvent],
    ) -> Result<Option<LogRecord>, StoreError> {
        for _ in 0..50 {
            let mut conn = self.conn.clone();
            let old: Option<Vec<u8>> = redis::cmd("GET")
                .arg(self.keys.record(mid))
                .query_async(&mut conn)
                .await?;
            let Some(w) = self.fold(mid, old, events) else {
                return Ok(None);
            };
            if self.commit(sha, std::slice::from_ref(&w)).await?.is_empty() {
                return Ok(Some(w.new.record));
            }
        }
        Err(StoreError::Backend(format!(
            "record {mid} kept changing; gave up"
        )))
    }
}

#[async_trait::async_trait]
impl LogStore for RedisLogStore {
    async fn apply(&self, events: &[DeliveryEvent]) -> Result<Vec<LogRecord>, StoreError> {
        let applied = self.apply_loaded(events).await;
        if applied.is_err() {
            self.forget_scripts();
        }
        applied
    }

    async fn query(&self, q: &Query) -> Result<Page, StoreError> {
        walk::query(self, q).await
    }

    async fn get(&self, message_id: &str) -> Result<Option<LogRecord>, StoreError> {
        self.get_record(message_id).await
    }

    async fn stats(&self, q: &StatsQuery) -> Result<Vec<StatsSeries>, StoreError> {
        walk::stats(self, q).await
    }

    async fn enforce_retention(&self) -> Result<u64, StoreError> {
        let cutoff = self.retention.cutoff(now_micros());
        let max = format!("({cutoff}");
        let mut conn = self.conn.clone();
        let combos = self.combos().await?;
        let mut pipe = redis::pipe();
        for (name, _) in &combos {
            pipe.cmd("ZREMRANGEBYSCORE")
                .arg(self.keys.combo(name))
                .arg("-inf")
                .arg(&max);
        }
        let removed: Vec<u64> = if combos.is_empty() {
            Vec::new()
        } else {
            pipe.query_async(&mut conn).await?
        };
        let forget = self.load_script(FORGET_COMBO).await?;
        let mut pipe = redis::pipe();
        for (name, _) in &combos {
            pipe.cmd("EVALSHA")
                .arg(&forget)
                .arg(2)
                .arg(self.keys.combo(name))
                .arg(self.keys.combos())
                .arg(name)
                .ignore();
        }
        for stream in &self.stream_keys {
            pipe.cmd("XTRIM")
                .arg(stream)
                .arg("MINID")
                .arg("~")
                // A stream id is never negative (a retention longer than
                // the time since 1970 keeps everything).
                .arg((cutoff / 1_000).max(0))
                .ignore();
        }
        if let Err(e) = pipe.exec_async(&mut conn).await {
            self.forget_scripts();
            return Err(e.into());
        }
        // Every record is in exactly one combo.
        let n: u64 = removed.iter().sum();
        LogQueryMetrics::global().removed(Removal::Retention, n);
        if n > 0 {
            tracing::info!(
                removed = n,
                "log records past retention dropped from the indexes"
            );
        }
        Ok(n)
    }
}

impl RedisLogStore {
    /// The records of these ids (`None` where gone), in order.
    async fn records(&self, ids: &[String]) -> Result<Vec<Option<LogRecord>>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|m| self.keys.record(m)).collect();
        let mut conn = self.conn.clone();
        let raw: Vec<Option<Vec<u8>>> =
            redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
        raw.into_iter()
            .zip(keys)
            .map(|(bytes, key)| {
                bytes
                    .map(|b| {
                        StoredRecord::decode(&b).map(|s| s.record).map_err(|e| {
                            StoreError::Corrupt {
                                key,
                                reason: e.to_string(),
                            }
                        })
                    })
                    .transpose()
            })
            .collect()
    }

    /// One record, if it is there.
    async fn get_record(&self, message_id: &str) -> Result<Option<LogRecord>, StoreError> {
        Ok(self
            .records(&[message_id.to_string()])
            .await?
            .pop()
            .flatten())
    }

    /// Every combo: its name and values.
    async fn combos(&self) -> Result<Vec<(String, Combo)>, StoreError> {
        let mut conn = self.conn.clone();
        let names: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.combos())
            .query_async(&mut conn)
            .await?;
        Ok(names
            .into_iter()
            .filter_map(|n| Combo::parse(&n).map(|c| (n, c)))
            .collect())
    }
}
