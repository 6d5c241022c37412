//! The Redis queue's dead letters: `{p}dlq:{dlq}` (hash id -> JSON) and
//! `{p}dlq:{dlq}:index` (sorted set by dead time), one hash tag so that a
//! burial and a replay are each atomic on a Redis Cluster too.

use super::*;

/// Buries a dead letter, then drops those past the retention or the cap,
/// oldest first (at most 1 000 a call): KEYS dlq hash, dlq index; ARGV id,
/// record, dead_at ms, cutoff ms, cap. Returns how many were dropped.
pub(super) const BURY_LUA: &str = r#"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
local drop = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[4], 'LIMIT', 0, 1000)
local over = redis.call('ZCARD', KEYS[2]) - #drop - tonumber(ARGV[5])
if over > 0 then
  local oldest = redis.call('ZRANGE', KEYS[2], #drop, #drop + math.min(over, 1000) - 1)
  for _, id in ipairs(oldest) do table.insert(drop, id) end
end
for _, id in ipairs(drop) do
  redis.call('HDEL', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
end
return #drop
"#;

/// Dead-letter index entries read per round trip when listing.
const DEAD_BATCH: usize = 200;

impl RedisQueue {
    pub(super) async fn bury_dead(&self, record: &DeadRecord) -> Result<(), QueueError> {
        let json = serde_json::to_string(record)
            .map_err(|e| QueueError::corrupt(&record.message.message_id, e))?;
        let dropped: u64 = self
            .bury
            .key(self.dlq())
            .key(self.dlq_index())
            .arg(&record.message.message_id)
            .arg(json)
            .arg(record.dead_at_ms)
            .arg(now_ms() - self.dead_bounds.retention_ms)
            .arg(self.dead_bounds.max)
            .invoke_async(&mut self.conn.clone())
            .await?;
        if dropped > 0 {
            tracing::warn!(dropped, "dead letters dropped (past retention or the cap)");
        }
        Ok(())
    }

    pub(super) async fn list_dead(
        &self,
        filter: &DeadLetterFilter,
        page_size: usize,
        page_token: &str,
    ) -> Result<DeadPage, QueueError> {
        let after = decode_cursor(page_token);
        let mut conn = self.conn.clone();
        let mut page = DeadPage::default();
        // Walk the index newest first by score: each batch starts at the
        // last score seen, skipping the entries already read at that score
        // (ties), so no entry is read twice however deep the page.
        let mut max: Option<i64> = after.as_ref().map(|(ms, _)| *ms);
        let mut skip = 0usize;
        loop {
            let bound = max.map_or("+inf".to_string(), |ms| ms.to_string());
            let ids: Vec<(String, i64)> = ::redis::cmd("ZREVRANGEBYSCORE")
                .arg(self.dlq_index())
                .arg(&bound)
                .arg("-inf")
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(skip)
                .arg(DEAD_BATCH)
                .query_async(&mut conn)
                .await?;
            let Some(&(_, last)) = ids.last() else {
                return Ok(page);
            };
            let ties = ids.iter().filter(|(_, ms)| *ms == last).count();
            if max == Some(last) {
                skip += ties;
            } else {
                (max, skip) = (Some(last), ties);
            }
            let wanted: Vec<&String> = ids
                .iter()
                .filter(|(id, ms)| after.as_ref().is_none_or(|c| (*ms, (*id).clone()) < *c))
                .map(|(id, _)| id)
                .collect();
            if wanted.is_empty() {
                continue;
            }
            let raw: Vec<Option<String>> = ::redis::cmd("HMGET")
                .arg(self.dlq())
                .arg(&wanted)
                .query_async(&mut conn)
                .await?;
            for raw_json in raw.into_iter().flatten() {
                let record: DeadRecord = json("dead letter", &raw_json)?;
                if !record.matches(filter) {
                    continue;
                }
                if page.records.len() == page_size {
                    page.next_page_token =
                        page.records.last().map(encode_cursor).unwrap_or_default();
                    return Ok(page);
                }
                page.records.push(record);
            }
        }
    }

    pub(super) async fn take_dead(
        &self,
        message_ids: &[String],
    ) -> Result<Vec<DeadRecord>, QueueError> {
        let mut out = Vec::new();
        let mut conn = self.conn.clone();
        for id in message_ids {
            // HDEL decides who takes it when two replays race.
            let raw: Option<String> = ::redis::cmd("HGET")
                .arg(self.dlq())
                .arg(id)
                .query_async(&mut conn)
                .await?;
            let Some(raw_json) = raw else { continue };
            let (removed, _): (u32, u32) = ::redis::pipe()
                .atomic()
                .cmd("HDEL")
                .arg(self.dlq())
                .arg(id)
                .cmd("ZREM")
                .arg(self.dlq_index())
                .arg(id)
                .query_async(&mut conn)
                .await?;
            if removed == 1 {
                out.push(json("dead letter", &raw_json)?);
            }
        }
        Ok(out)
    }
}
