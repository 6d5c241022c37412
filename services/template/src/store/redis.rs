//! The Redis backend, shared by replicas. Keys, all under the configured
//! prefix (default `wxpush:`):
//!
//! | key | type | holds |
//! |-----|------|-------|
//! | `{prefix}template:{key}` | hash | `version`, `app_id`, `data` (the protobuf `wxpush.v1.Template`) |
//! | `{prefix}templates:app:{app_id}` | set | the keys of one app's templates |
//! | `{prefix}templates:all` | set | every key, for an unfiltered list |
//! | `{prefix}wechat_templates:{app_id}` | string | the app's synced WeChat templates (protobuf) |
//! | `{prefix}templates:epoch` | string | set once per life of the data: absent or new means Redis lost the registry |
//!
//! Values are the v1 protobuf encoding, which is forward compatible by the
//! API's own rule (fields are added, never renumbered). Every write that
//! checks a version is one Lua script, so the compare and the set (and the
//! index updates) cannot interleave with another replica's write.

use super::{StoredWechatTemplates, TemplateStore, version_error};
use crate::error::TemplateError;
use ::redis::{Script, cmd};
use async_trait::async_trait;
use prost::Message;
use wxpush_proto::v1::{Template, WechatTemplate};
use wxpush_redis::Connection;
use wxpush_redis::idempotent;

/// Stores the template if the stored version is the expected one; moves the
/// key between app indexes when its app changed. Returns {1, new} or {0, actual}.
const PUT: &str = r"
local cur = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if cur ~= tonumber(ARGV[1]) then return {0, cur} end
local old_app = redis.call('HGET', KEYS[1], 'app_id')
if old_app and old_app ~= ARGV[2] then redis.call('SREM', ARGV[5] .. old_app, ARGV[4]) end
redis.call('HSET', KEYS[1], 'version', tostring(cur + 1), 'app_id', ARGV[2], 'data', ARGV[3])
redis.call('SADD', KEYS[2], ARGV[4])
redis.call('SADD', KEYS[3], ARGV[4])
return {1, cur + 1}
";

/// Deletes the template if present and (when ARGV[1] is not 0) at the
/// expected version. Returns {1, v}, {0, actual} or {-1, 0} when absent.
const DELETE: &str = r"
local cur = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if cur == 0 then return {-1, 0} end
local expected = tonumber(ARGV[1])
if expected ~= 0 and expected ~= cur then return {0, cur} end
local app = redis.call('HGET', KEYS[1], 'app_id')
redis.call('DEL', KEYS[1])
if app then redis.call('SREM', ARGV[3] .. app, ARGV[2]) end
redis.call('SREM', KEYS[2], ARGV[2])
return {1, cur}
";

/// Templates in Redis; cheap to clone (one multiplexed, reconnecting connection).
#[derive(Clone)]
pub struct RedisStore {
    conn: Connection,
    prefix: String,
    put: std::sync::Arc<Script>,
    delete: std::sync::Arc<Script>,
}

impl RedisStore {
    /// A store on the node at `url` (`redis://host:port/db`), connecting on
    /// first use; keys start with `prefix`. Its scripts span many keys, so
    /// a Redis Cluster is refused: there templates belong in PostgreSQL.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, TemplateError> {
        if wxpush_redis::is_cluster(url) {
            return Err(TemplateError::Backend(
                "templates cannot live on a Redis Cluster (their scripts span many keys): set backend.kind: postgres".into(),
            ));
        }
        let conn = wxpush_redis::connect(url, wxpush_redis::Timeouts::Commands)
            .map_err(|e| TemplateError::Backend(e.to_string()))?;
        Ok(Self {
            conn,
            prefix: prefix.to_string(),
            put: std::sync::Arc::new(Script::new(PUT)),
            delete: std::sync::Arc::new(Script::new(DELETE)),
        })
    }

    fn template_key(&self, key: &str) -> String {
        format!("{}template:{key}", self.prefix)
    }
    fn app_index_prefix(&self) -> String {
        format!("{}templates:app:", self.prefix)
    }
    fn all_index(&self) -> String {
        format!("{}templates:all", self.prefix)
    }
    fn wechat_key(&self, app_id: &str) -> String {
        format!("{}wechat_templates:{app_id}", self.prefix)
    }
    fn epoch_key(&self) -> String {
        format!("{}templates:epoch", self.prefix)
    }

    async fn load(&self, keys: &[String]) -> Result<Vec<Template>, TemplateError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = ::redis::pipe();
        for k in keys {
            pipe.cmd("HGET").arg(self.template_key(k)).arg("data");
        }
        let blobs: Vec<Option<Vec<u8>>> = idempotent(&self.conn, &pipe).await?;
        // A key deleted between reading the index and the hashes is skipped.
        blobs.into_iter().flatten().map(|b| decode(&b)).collect()
    }
}

fn decode(bytes: &[u8]) -> Result<Template, TemplateError> {
    Template::decode(bytes).map_err(|e| TemplateError::Corrupt(e.to_string()))
}

#[async_trait]
impl TemplateStore for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<Template>, TemplateError> {
        let get = cmd("HGET").arg(self.template_key(key)).arg("data").clone();
        let blob: Option<Vec<u8>> = idempotent(&self.conn, &get).await?;
        blob.map(|b| decode(&b)).transpose()
    }

    async fn list(&self, app_id: Option<&str>) -> Result<Vec<Template>, TemplateError> {
        let index = match app_id {
            Some(a) => format!("{}{a}", self.app_index_prefix()),
            None => self.all_index(),
        };
        let members = cmd("SMEMBERS").arg(index).clone();
        let mut keys: Vec<String> = idempotent(&self.conn, &members).await?;
        keys.sort();
        self.load(&keys).await
    }

    async fn put(&self, t: &Template, expected_version: u64) -> Result<(), TemplateError> {
        let app_index = format!("{}{}", self.app_index_prefix(), t.app_id);
        let (ok, actual): (i64, u64) = self
            .put
            .key(self.template_key(&t.key))
            .key(app_index)
            .key(self.all_index())
            .arg(expected_version)
            .arg(&t.app_id)
            .arg(t.encode_to_vec())
            .arg(&t.key)
            .arg(self.app_index_prefix())
            .invoke_async(&mut self.conn.clone())
            .await?;
        if ok == 1 {
            Ok(())
        } else {
            Err(version_error(&t.key, expected_version, actual))
        }
    }

    async fn delete(&self, key: &str, expected_version: u64) -> Result<(), TemplateError> {
        let (ok, actual): (i64, u64) = self
            .delete
            .key(self.template_key(key))
            .key(self.all_index())
            .arg(expected_version)
            .arg(key)
            .arg(self.app_index_prefix())
            .invoke_async(&mut self.conn.clone())
            .await?;
        match ok {
            1 => Ok(()),
            -1 => Err(TemplateError::NotFound(key.to_string())),
            _ => Err(version_error(key, expected_version, actual)),
        }
    }

    async fn wechat_templates(
        &self,
        app_id: &str,
    ) -> Result<Option<Vec<WechatTemplate>>, TemplateError> {
        let get = cmd("GET").arg(self.wechat_key(app_id)).clone();
        let blob: Option<Vec<u8>> = idempotent(&self.conn, &get).await?;
        blob.map(|b| StoredWechatTemplates::decode_templates(&b))
            .transpose()
    }

    async fn set_wechat_templates(
        &self,
        app_id: &str,
        templates: &[WechatTemplate],
    ) -> Result<(), TemplateError> {
        let value = StoredWechatTemplates::encode_templates(templates);
        let () = cmd("SET")
            .arg(self.wechat_key(app_id))
            .arg(value)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    async fn epoch(&self) -> Result<Option<String>, TemplateError> {
        let get = cmd("GET").arg(self.epoch_key()).clone();
        Ok(idempotent(&self.conn, &get).await?)
    }

    async fn claim_epoch(&self, proposed: &str) -> Result<String, TemplateError> {
        // SET NX GET: the value stored before, if another replica won.
        let before: Option<String> = cmd("SET")
            .arg(self.epoch_key())
            .arg(proposed)
            .arg("NX")
            .arg("GET")
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(before.unwrap_or_else(|| proposed.to_string()))
    }
}
