//! The consent ledger on Redis (a node or a cluster): one hash per user of
//! an app, `{prefix}consent:{app_id}:{openid}`, with per template id the
//! accepts left (`n:`), whether the last answer was a reject (`r:`), when
//! (`at:`, ms) and the push it came from (`e:`); every change is one script
//! on that one key. A user's hash lives [`CONSENT_TTL_SECS`] after their
//! last answer.

use super::{ConsentError, ConsentLedger, Subject, consent};
use std::collections::BTreeMap;
use wxpush_proto::v1::TemplateConsent;
use wxpush_redis::Connection;

/// A user's consents are forgotten this long after their last answer.
pub const CONSENT_TTL_SECS: u64 = 400 * 86_400;

/// KEYS: the user's hash. ARGV: template id, accept (1/0), event id, ms,
/// TTL. A push already applied changes nothing.
const ANSWER: &str = r#"
local t = ARGV[1]
if redis.call('HGET', KEYS[1], 'e:' .. t) == ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], 'e:' .. t, ARGV[3], 'at:' .. t, ARGV[4])
if ARGV[2] == '1' then
  redis.call('HINCRBY', KEYS[1], 'n:' .. t, 1)
  redis.call('HSET', KEYS[1], 'r:' .. t, 0)
else
  redis.call('HSET', KEYS[1], 'n:' .. t, 0, 'r:' .. t, 1)
end
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"#;

/// KEYS: the user's hash. ARGV: template id. 1 when one was left (spent).
const TAKE: &str = r#"
local n = tonumber(redis.call('HGET', KEYS[1], 'n:' .. ARGV[1]) or '0')
if n > 0 then
  redis.call('HINCRBY', KEYS[1], 'n:' .. ARGV[1], -1)
  return 1
end
return 0
"#;

/// The SHA1 of the script that spends a consent: Redis knows it once a
/// send has spent one (tests check that template messages never do).
pub fn take_script_sha() -> String {
    redis::Script::new(TAKE).get_hash().to_string()
}

/// The ledger on Redis.
pub struct RedisConsent {
    conn: Connection,
    prefix: String,
    answer: redis::Script,
    take: redis::Script,
}

impl RedisConsent {
    pub fn new(conn: Connection, prefix: &str) -> Self {
        Self {
            conn,
            prefix: prefix.to_string(),
            answer: redis::Script::new(ANSWER),
            take: redis::Script::new(TAKE),
        }
    }

    fn key(&self, app_id: &str, openid: &str) -> String {
        format!("{}consent:{app_id}:{openid}", self.prefix)
    }
}

#[async_trait::async_trait]
impl ConsentLedger for RedisConsent {
    async fn answer(
        &self,
        who: Subject<'_>,
        accept: bool,
        event_id: &str,
        at_ms: i64,
    ) -> Result<(), ConsentError> {
        let _: i64 = self
            .answer
            .key(self.key(who.app_id, who.openid))
            .arg(who.template_id)
            .arg(u8::from(accept))
            .arg(event_id)
            .arg(at_ms)
            .arg(CONSENT_TTL_SECS)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    async fn take(&self, who: Subject<'_>) -> Result<bool, ConsentError> {
        let taken: i64 = self
            .take
            .key(self.key(who.app_id, who.openid))
            .arg(who.template_id)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(taken == 1)
    }

    async fn give_back(&self, who: Subject<'_>) -> Result<(), ConsentError> {
        let key = self.key(who.app_id, who.openid);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("HINCRBY")
            .arg(&key)
            .arg(format!("n:{}", who.template_id))
            .arg(1)
            .ignore()
            .cmd("EXPIRE")
            .arg(&key)
            .arg(CONSENT_TTL_SECS)
            .ignore();
        pipe.exec_async(&mut self.conn.clone()).await?;
        Ok(())
    }

    async fn read(&self, app_id: &str, openid: &str) -> Result<Vec<TemplateConsent>, ConsentError> {
        let fields: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(self.key(app_id, openid))
            .query_async(&mut self.conn.clone())
            .await?;
        // template id -> (left, rejected, at)
        let mut by_template: BTreeMap<String, (u32, bool, i64)> = BTreeMap::new();
        for (field, value) in fields {
            let Some((kind, template)) = field.split_once(':') else {
                continue;
            };
            let e = by_template.entry(template.to_string()).or_default();
            match kind {
                "n" => e.0 = value.parse::<i64>().unwrap_or(0).max(0) as u32,
                "r" => e.1 = value == "1",
                "at" => e.2 = value.parse().unwrap_or(0),
                _ => {}
            }
        }
        Ok(by_template
            .into_iter()
            .filter(|(_, (_, _, at))| *at > 0)
            .map(|(t, (left, rejected, at))| consent(&t, left, rejected, at))
            .collect())
    }
}
