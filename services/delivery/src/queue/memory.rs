//! The single-process queue for `wxpush dev` and tests.

use super::*;
use crate::config::QueueSettings;
use crate::expiring::ExpiringMap;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use tokio::sync::Notify;

/// Live statuses kept at most (the Redis backend bounds them by TTL only).
pub const MAX_STATUSES: usize = 100_000;

struct State {
    seq: u64,
    ready: VecDeque<(String, QueuedMessage, i64)>,
    /// Pulled and not acknowledged: (message, since ms, enqueued ms).
    held: HashMap<String, (QueuedMessage, i64, i64)>,
    delayed: BTreeMap<(i64, u64), QueuedMessage>,
    status: ExpiringMap<DeliveryResult>,
    /// (app, WeChat msgid) joined by a NUL -> message id.
    msgids: ExpiringMap<String>,
    begun: ExpiringMap<u32>,
    dead: BTreeMap<(i64, String), DeadRecord>,
}

/// In-process queue: lost on restart, like everything in `wxpush dev`.
pub struct MemoryQueue {
    state: Mutex<State>,
    arrived: Notify,
    claim_idle: Duration,
    poll: Duration,
    dead_bounds: DeadLetterBounds,
    status_ttl: Duration,
}

impl MemoryQueue {
    pub fn new(settings: &QueueSettings) -> Self {
        Self {
            state: Mutex::new(State {
                seq: 0,
                ready: VecDeque::new(),
                held: HashMap::new(),
                delayed: BTreeMap::new(),
                status: ExpiringMap::new(MAX_STATUSES),
                msgids: ExpiringMap::new(MAX_STATUSES),
                begun: ExpiringMap::new(MAX_STATUSES),
                dead: BTreeMap::new(),
            }),
            arrived: Notify::new(),
            claim_idle: Duration::from_millis(settings.claim_idle_ms),
            poll: Duration::from_millis(settings.poll_ms.max(1)),
            dead_bounds: DeadLetterBounds::of(settings),
            status_ttl: Duration::from_secs(settings.status_ttl_secs),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

#[async_trait::async_trait]
impl Queue for MemoryQueue {
    async fn push(&self, messages: &[QueuedMessage], not_before_ms: i64) -> Result<(), QueueError> {
        let now = now_ms();
        self.with(|s| {
            for m in messages {
                s.seq += 1;
                if not_before_ms > now {
                    s.delayed.insert((not_before_ms, s.seq), m.clone());
                } else {
                    s.ready.push_back((format!("m{}", s.seq), m.clone(), now));
                }
            }
        });
        self.arrived.notify_waiters();
        Ok(())
    }

    async fn promote_due(&self, now_ms: i64) -> Result<usize, QueueError> {
        let moved = self.with(|s| {
            let due: Vec<(i64, u64)> = s
                .delayed
                .range(..(now_ms + 1, 0))
                .map(|(k, _)| *k)
                .collect();
            for k in &due {
                if let Some(m) = s.delayed.remove(k) {
                    s.seq += 1;
                    s.ready.push_back((format!("m{}", s.seq), m, now_ms));
                }
            }
            due.len()
        });
        if moved > 0 {
            self.arrived.notify_waiters();
        }
        Ok(moved)
    }

    async fn next_batch(&self, max: usize) -> Result<Vec<Delivery>, QueueError> {
        let cutoff = now_ms() - self.claim_idle.as_millis() as i64;
        let take = |s: &mut State| {
            let now = now_ms();
            // Held too long: the task holding it is gone.
            let mut out: Vec<Delivery> = Vec::new();
            for (id, (m, since, _)) in s.held.iter_mut() {
                if out.len() == max {
                    break;
                }
                if *since < cutoff {
                    *since = now;
                    out.push(Delivery {
                        id: id.clone(),
                        message: m.clone(),
                    });
                }
            }
            while out.len() < max {
                let Some((id, m, enqueued)) = s.ready.pop_front() else {
                    break;
                };
                s.held.insert(id.clone(), (m.clone(), now, enqueued));
                out.push(Delivery { id, message: m });
            }
            out
        };
        let notified = self.arrived.notified();
        let got = self.with(take);
        if !got.is_empty() {
            return Ok(got);
        }
        let _ = tokio::time::timeout(self.poll, notified).await;
        Ok(self.with(take))
    }

    async fn ack(&self, id: &str) -> Result<(), QueueError> {
        self.with(|s| s.held.remove(id));
        Ok(())
    }

    async fn depth(&self, now_ms: i64) -> Result<Depth, QueueError> {
        Ok(self.with(|s| {
            let oldest = s
                .ready
                .iter()
                .map(|r| r.2)
                .chain(s.held.values().map(|h| h.2))
                .min();
            Depth {
                ready: (s.ready.len() + s.held.len()) as u64,
                delayed: s.delayed.len() as u64,
                oldest_age: oldest.map_or(Duration::ZERO, |t| {
                    Duration::from_millis((now_ms - t).max(0) as u64)
                }),
                dead: s.dead.len() as u64,
            }
        }))
    }

    async fn set_status(&self, result: &DeliveryResult) -> Result<bool, QueueError> {
        Ok(self.with(|s| {
            let kept = s.status.get(&result.message_id);
            if kept.is_some_and(|k| rank(k.status) > rank(result.status)) {
                return false;
            }
            if let Some(msgid) = noted_msgid(result) {
                let key = format!("{}\0{msgid}", result.app_id);
                s.msgids
                    .insert(key, result.message_id.clone(), self.status_ttl);
            }
            let keep = status_keep(result.status, self.status_ttl);
            s.status
                .insert(result.message_id.clone(), result.clone(), keep);
            true
        }))
    }

    async fn by_msgid(
        &self,
        app_id: &str,
        wechat_msgid: &str,
    ) -> Result<Option<String>, QueueError> {
        let key = format!("{app_id}\0{wechat_msgid}");
        Ok(self.with(|s| s.msgids.get(&key).cloned()))
    }

    async fn reopen(&self, result: &DeliveryResult) -> Result<(), QueueError> {
        self.with(|s| {
            let keep = status_keep(result.status, self.status_ttl);
            s.status
                .insert(result.message_id.clone(), result.clone(), keep)
        });
        Ok(())
    }

    async fn begin_attempt(&self, message_id: &str, n: u32) -> Result<(), QueueError> {
        self.with(|s| s.begun.insert(message_id.to_string(), n, self.status_ttl));
        Ok(())
    }

    async fn begun_attempt(&self, message_id: &str) -> Result<Option<u32>, QueueError> {
        Ok(self.with(|s| s.begun.get(message_id).copied()))
    }

    async fn status(&self, message_id: &str) -> Result<Option<DeliveryResult>, QueueError> {
        Ok(self.with(|s| s.status.get(message_id).cloned()))
    }

    async fn bury(&self, record: &DeadRecord) -> Result<(), QueueError> {
        self.with(|s| {
            s.dead.retain(|(_, id), _| id != &record.message.message_id);
            s.dead.insert(
                (record.dead_at_ms, record.message.message_id.clone()),
                record.clone(),
            );
            let cutoff = now_ms() - self.dead_bounds.retention_ms;
            while let Some(((dead_at, _), _)) = s.dead.first_key_value() {
                let too_many = s.dead.len() as u64 > self.dead_bounds.max;
                if *dead_at >= cutoff && !too_many {
                    break;
                }
                s.dead.pop_first();
            }
        });
        Ok(())
    }

    async fn dead_letters(
        &self,
        filter: &DeadLetterFilter,
        page_size: usize,
        page_token: &str,
    ) -> Result<DeadPage, QueueError> {
        let after = decode_cursor(page_token);
        Ok(self.with(|s| {
            let mut page = DeadPage::default();
            let iter: Box<dyn Iterator<Item = (&(i64, String), &DeadRecord)>> = match &after {
                Some(c) => Box::new(s.dead.range(..c.clone()).rev()),
                None => Box::new(s.dead.iter().rev()),
            };
            for (_, r) in iter.filter(|(_, r)| r.matches(filter)) {
                if page.records.len() == page_size {
                    page.next_page_token =
                        page.records.last().map(encode_cursor).unwrap_or_default();
                    break;
                }
                page.records.push(r.clone());
            }
            page
        }))
    }

    async fn exhume(&self, message_ids: &[String]) -> Result<Vec<DeadRecord>, QueueError> {
        Ok(self.with(|s| {
            let keys: Vec<(i64, String)> = s
                .dead
                .keys()
                .filter(|(_, id)| message_ids.contains(id))
                .cloned()
                .collect();
            keys.into_iter().filter_map(|k| s.dead.remove(&k)).collect()
        }))
    }
}
