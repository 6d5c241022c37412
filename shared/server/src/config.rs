//! Configuration: a YAML file plus environment overrides.
//!
//! Every setting has a default (the structs use `#[serde(default)]`), a file
//! may set any of them, and an environment variable named
//! `PREFIX__SECTION__KEY` overrides one value, e.g.
//! `WXPUSH_DELIVERY__WECHAT__BASE_URL=http://127.0.0.1:9100`. Values are parsed
//! as YAML scalars, so numbers and booleans work as expected. This is what a
//! Kubernetes ConfigMap (the file) plus Deployment env (the overrides) needs.
//! A setting no service knows is an error naming it, not silently ignored.

use serde::de::DeserializeOwned;
use serde_yaml_ng::{Mapping, Value};
use std::fmt;
use std::path::{Path, PathBuf};

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {origin}: {message}")]
    Invalid { origin: String, message: String },
    /// A setting no service knows: a typo would otherwise be ignored and its
    /// default used without a word.
    #[error("unknown config settings in {origin}: {}", keys.join(", "))]
    Unknown { origin: String, keys: Vec<String> },
}

/// Loads `T` from an optional YAML file, then applies `prefix__...`
/// environment overrides from the process environment.
pub fn load<T: DeserializeOwned>(path: Option<&Path>, prefix: &str) -> Result<T, ConfigError> {
    load_with_env(path, prefix, std::env::vars())
}

/// [`load`] with an explicit environment, so tests do not touch the process's.
pub fn load_with_env<T: DeserializeOwned>(
    path: Option<&Path>,
    prefix: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<T, ConfigError> {
    let (mut root, origin) = match path {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                path: p.to_path_buf(),
                source,
            })?;
            let value: Value =
                serde_yaml_ng::from_str(&text).map_err(|e| ConfigError::Invalid {
                    origin: p.display().to_string(),
                    message: e.to_string(),
                })?;
            (value, p.display().to_string())
        }
        None => (Value::Mapping(Mapping::new()), "(defaults)".to_string()),
    };
    if root.is_null() {
        root = Value::Mapping(Mapping::new());
    }
    let marker = format!("{prefix}__");
    for (key, raw) in env {
        let Some(rest) = key.strip_prefix(&marker) else {
            continue;
        };
        let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
        set_path(&mut root, &path, parse_scalar(&raw)).map_err(|message| ConfigError::Invalid {
            origin: format!("environment variable {key}"),
            message,
        })?;
    }
    let mut unknown = Vec::new();
    // The path of a bad value (`queue.poll_ms: invalid type ...`) and of
    // every setting no service knows.
    let mut note_unknown = |path: serde_ignored::Path| unknown.push(path.to_string());
    let ignoring = serde_ignored::Deserializer::new(root, &mut note_unknown);
    let config = serde_path_to_error::deserialize(ignoring).map_err(
        |e: serde_path_to_error::Error<serde_yaml_ng::Error>| ConfigError::Invalid {
            origin: origin.clone(),
            message: format!("{}: {}", e.path(), e.inner()),
        },
    )?;
    if !unknown.is_empty() {
        return Err(ConfigError::Unknown {
            origin,
            keys: unknown,
        });
    }
    Ok(config)
}

fn parse_scalar(raw: &str) -> Value {
    match serde_yaml_ng::from_str::<Value>(raw) {
        Ok(v @ (Value::Bool(_) | Value::Number(_))) => v,
        _ => Value::String(raw.to_string()),
    }
}

fn set_path(root: &mut Value, path: &[String], value: Value) -> Result<(), String> {
    let Some((last, parents)) = path.split_last() else {
        return Err("empty key".into());
    };
    let mut node = root;
    for part in parents {
        let map = node
            .as_mapping_mut()
            .ok_or_else(|| format!("`{part}` is inside a value that is not a mapping"))?;
        node = map
            .entry(Value::String(part.clone()))
            .or_insert_with(|| Value::Mapping(Mapping::new()));
        if node.is_null() {
            *node = Value::Mapping(Mapping::new());
        }
    }
    let map = node
        .as_mapping_mut()
        .ok_or_else(|| format!("`{last}` is inside a value that is not a mapping"))?;
    map.insert(Value::String(last.clone()), value);
    Ok(())
}

/// Which storage backend a service keeps its state in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// In-process, single replica (`wxpush dev`, tests): lost on restart.
    #[default]
    Memory,
    /// Shared by replicas, survives restarts.
    Redis,
    /// Production at scale: what must last and grow (the log, templates,
    /// dead letters) in PostgreSQL at `postgres_url`; the hot path (tokens,
    /// queue, rate limits, statuses, the event stream) in Redis at
    /// `redis_url`, as with `redis`.
    Postgres,
}

impl BackendKind {
    /// Whether the hot path lives in Redis (`redis` and `postgres`).
    pub fn uses_redis(self) -> bool {
        matches!(self, Self::Redis | Self::Postgres)
    }
}

/// The `backend:` section every stateful service has, so operators switch
/// backends the same way everywhere (`WXPUSH_TOKEN__BACKEND__KIND=redis`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub struct BackendSettings {
    pub kind: BackendKind,
    /// `redis://host:port/db`, or a Redis Cluster as
    /// `redis-cluster://host:port[,host:port...]`; used when `kind` is
    /// `redis` or `postgres` (a cluster holds the hot path only: it needs
    /// `postgres`).
    pub redis_url: String,
    /// `postgres://user[:password]@host:port/database`; used when `kind`
    /// is `postgres`. A secret: it may hold a password.
    pub postgres_url: Secret,
    /// Prefix of every key this service owns (DESIGN: `wxpush:`), so several
    /// suites or tests can share one Redis. No braces: on a cluster they
    /// would become every key's hash tag.
    #[serde(deserialize_with = "key_prefix")]
    pub key_prefix: String,
    /// Partitions of the queue and of the delivery event stream (1 to
    /// 1 024). One stream lives on one Redis node, so on a cluster make it
    /// a multiple of the masters (e.g. 2 per master) to spread them.
    /// Fixed once chosen: the partition keys depend on it, so it is
    /// recorded in Redis and another count refused at start.
    pub stream_partitions: wxpush_redis::Partitions,
}

fn key_prefix<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let prefix = <String as serde::Deserialize>::deserialize(d)?;
    wxpush_redis::partition::check_prefix(&prefix).map_err(serde::de::Error::custom)?;
    Ok(prefix)
}

impl BackendSettings {
    /// The PostgreSQL URL; with `kind: postgres` it must be set (there is
    /// no sensible default database to fall back on).
    pub fn postgres_url(&self) -> Result<&str, String> {
        match self.postgres_url.expose() {
            "" => Err("backend.postgres_url is required with backend.kind: postgres".into()),
            url => Ok(url),
        }
    }
}

impl Default for BackendSettings {
    fn default() -> Self {
        Self {
            kind: BackendKind::Memory,
            redis_url: "redis://127.0.0.1:6379/".into(),
            postgres_url: Secret::new(""),
            key_prefix: "wxpush:".into(),
            stream_partitions: wxpush_redis::Partitions::ONE,
        }
    }
}

/// The address of a peer gRPC service (`http://wxpush-token:50051`),
/// checked when the config is read: an absolute `http` or `https` URI.
#[derive(Clone, PartialEq, Eq)]
pub struct GrpcEndpoint(http::Uri);

impl GrpcEndpoint {
    /// Parses and checks an endpoint.
    pub fn parse(s: &str) -> Result<Self, String> {
        let uri: http::Uri = s.parse().map_err(|e| format!("{s:?} is not a URI: {e}"))?;
        match (uri.scheme_str(), uri.authority()) {
            (Some("http" | "https"), Some(_)) => Ok(Self(uri)),
            _ => Err(format!(
                "{s:?} is not an http:// or https:// address with a host"
            )),
        }
    }

    pub fn uri(&self) -> &http::Uri {
        &self.0
    }
}

impl fmt::Debug for GrpcEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for GrpcEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl<'de> serde::Deserialize<'de> for GrpcEndpoint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A credential (app secret, access token) that must never reach a log line,
/// an error message or a span: its `Debug` and `Display` print `REDACTED`.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The credential itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Where a credential comes from: exactly one of inline (`wxpush dev`), an
/// environment variable, or a file (a mounted Kubernetes Secret). One home
/// for every credential a config names (app secrets, callback tokens and
/// keys).
#[derive(Debug)]
pub enum SecretSource<'a> {
    Inline(&'a Secret),
    Env(&'a str),
    File(&'a std::path::Path),
}

impl<'a> SecretSource<'a> {
    /// The one source set among `name`, `name_env` and `name_file` of
    /// `owner` (`app wx1`), without reading it (`--check-config`).
    pub fn one_of(
        owner: &str,
        name: &str,
        inline: Option<&'a Secret>,
        env: Option<&'a str>,
        file: Option<&'a std::path::Path>,
    ) -> Result<Self, String> {
        match (inline, env, file) {
            (Some(s), None, None) => Ok(Self::Inline(s)),
            (None, Some(var), None) => Ok(Self::Env(var)),
            (None, None, Some(path)) => Ok(Self::File(path)),
            (None, None, None) => Err(format!(
                "{owner}: set one of {name}_env, {name}_file or {name}"
            )),
            _ => Err(format!(
                "{owner}: set only one of {name}_env, {name}_file or {name}"
            )),
        }
    }

    /// Reads it (trimmed). The error names the source, never the value.
    pub fn read(&self, owner: &str) -> Result<Secret, String> {
        match self {
            Self::Inline(s) => Ok((*s).clone()),
            Self::Env(var) => std::env::var(var)
                .map(|v| Secret::new(v.trim()))
                .map_err(|_| format!("{owner}: environment variable {var} is not set")),
            Self::File(path) => std::fs::read_to_string(path)
                .map(|v| Secret::new(v.trim()))
                .map_err(|e| format!("{owner}: cannot read secret file {}: {e}", path.display())),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("REDACTED")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("REDACTED")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, Default)]
    #[serde(default)]
    struct Inner {
        base_url: String,
        timeout_ms: u64,
    }

    #[derive(Debug, serde::Deserialize, Default)]
    #[serde(default)]
    struct Cfg {
        listen: String,
        wechat: Inner,
        verbose: bool,
    }

    #[test]
    fn env_overrides_nested_keys_with_typed_scalars() {
        let env = [
            ("X__WECHAT__BASE_URL".to_string(), "http://a:1".to_string()),
            ("X__WECHAT__TIMEOUT_MS".to_string(), "250".to_string()),
            ("X__VERBOSE".to_string(), "true".to_string()),
            ("OTHER__LISTEN".to_string(), "ignored".to_string()),
        ];
        let cfg: Cfg = load_with_env(None, "X", env).unwrap();
        assert_eq!(cfg.wechat.base_url, "http://a:1");
        assert_eq!(cfg.wechat.timeout_ms, 250);
        assert!(cfg.verbose);
        assert_eq!(cfg.listen, "");
    }

    #[test]
    fn file_values_are_overridden_by_env() {
        let dir = std::env::temp_dir().join(format!("wxpush-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.yaml");
        std::fs::write(&file, "listen: 0.0.0.0:1\nwechat:\n  timeout_ms: 9\n").unwrap();
        let env = [("X__LISTEN".to_string(), "127.0.0.1:2".to_string())];
        let cfg: Cfg = load_with_env(Some(&file), "X", env).unwrap();
        assert_eq!(cfg.listen, "127.0.0.1:2");
        assert_eq!(cfg.wechat.timeout_ms, 9);
    }

    #[test]
    fn a_bad_file_names_itself() {
        let err =
            load_with_env::<Cfg>(Some(Path::new("/nonexistent/x.yaml")), "X", []).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/x.yaml"), "{err}");
    }

    #[test]
    fn unknown_settings_are_named_not_ignored() {
        let dir = std::env::temp_dir().join(format!("wxpush-cfg-u-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.yaml");
        std::fs::write(
            &file,
            "listen: 0.0.0.0:1
wechat:
  base_ur1: http://x
",
        )
        .unwrap();
        let env = [("X__VERBOS".to_string(), "true".to_string())];
        let err = load_with_env::<Cfg>(Some(&file), "X", env).unwrap_err();
        let ConfigError::Unknown { keys, .. } = &err else {
            panic!("{err}");
        };
        assert_eq!(keys, &["wechat.base_ur1", "verbos"]);
        assert!(err.to_string().contains("wechat.base_ur1"), "{err}");
    }

    #[test]
    fn endpoints_and_listen_addresses_are_typed() {
        assert!(GrpcEndpoint::parse("http://wxpush-token:50051").is_ok());
        assert!(GrpcEndpoint::parse("wxpush-token:50051").is_err());
        assert!(GrpcEndpoint::parse("foo").is_err());
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Listen {
            listen: std::net::SocketAddr,
        }
        let env = [("X__LISTEN".to_string(), "foo".to_string())];
        let err = load_with_env::<Listen>(None, "X", env).unwrap_err();
        assert!(
            err.to_string().contains("listen: invalid socket address"),
            "{err}"
        );
    }

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "REDACTED REDACTED");
        assert_eq!(s.expose(), "hunter2");
    }
}
