//! The `auth:` section every service's config has: whether callers are
//! checked, how they are recognised, their grants, and the identity the
//! service itself presents on the suite's own hops.
//!
//! Checking is the default. `mode: off` lets anyone call as anyone and must
//! be written down (it is `wxpush dev`'s default); `mode: on` without a way
//! to recognise a caller (a JWT key or a trusted mesh) or without a single
//! caller is refused at start, naming what is missing, rather than refusing
//! every call.

use crate::grants::{CallerGrant, Grants};
use crate::identity::{Authenticator, JwtConfig, SetupError};
use serde::{Deserialize, Deserializer};
use std::path::{Path, PathBuf};

/// Whether callers are checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AuthMode {
    /// Every call needs a known caller with a grant for it (the default).
    #[default]
    On,
    /// Anyone may call as anyone: `wxpush dev`, tests, a closed network.
    Off,
}

impl<'de> Deserialize<'de> for AuthMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // `on` / `off`, also as YAML 1.1 booleans (true / false).
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Word(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(true) => Ok(AuthMode::On),
            Raw::Bool(false) => Ok(AuthMode::Off),
            Raw::Word(w) if w == "on" => Ok(AuthMode::On),
            Raw::Word(w) if w == "off" => Ok(AuthMode::Off),
            Raw::Word(w) => Err(serde::de::Error::custom(format!(
                "unknown auth mode {w:?} (on or off)"
            ))),
        }
    }
}

/// The identity a service presents when it calls another service of the
/// suite (delivery → template, delivery → token, template → token).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallAs {
    /// A file holding a bearer JWT, read again when it changes (a
    /// Kubernetes projected service account token is rotated in place).
    /// Unset: nothing is added (in a mesh the sidecar presents the
    /// workload's identity).
    pub token_file: Option<PathBuf>,
}

/// A grants file: `callers:` as in the config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct GrantsFile {
    callers: Vec<CallerGrant>,
}

/// The `auth:` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    pub mode: AuthMode,
    /// Take the workload identity in `x-forwarded-client-cert` (only behind
    /// a sidecar that sets it: anyone else can write the header).
    pub trust_mesh: bool,
    /// How bearer tokens are verified; unset: none are accepted.
    pub jwt: Option<JwtConfig>,
    /// Callers and their grants.
    pub callers: Vec<CallerGrant>,
    /// More callers, from a YAML file with a `callers:` list (a mounted
    /// ConfigMap).
    pub grants_file: Option<PathBuf>,
    /// What this service presents on its own calls to the suite.
    pub call_as: CallAs,
}

/// Why the `auth:` section is refused.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error("auth.grants_file {path}: {message}")]
    GrantsFile { path: PathBuf, message: String },
    #[error("auth: {0}")]
    Grants(#[from] crate::grants::GrantError),
    #[error(
        "auth.mode is on but no caller can be recognised: set auth.jwt or auth.trust_mesh \
         (or auth.mode: off to let anyone call)"
    )]
    NoWayIn,
    #[error(
        "auth.mode is on but no caller is configured: set auth.callers or auth.grants_file \
         (or auth.mode: off to let anyone call)"
    )]
    NoCallers,
}

impl AuthSettings {
    /// Settings that check nothing (`mode: off`).
    pub fn off() -> Self {
        Self {
            mode: AuthMode::Off,
            ..Default::default()
        }
    }

    /// The authenticator, or `None` with `mode: off`. Reads the key and the
    /// grants file; refuses what could never let a call in.
    pub fn authenticator(&self) -> Result<Option<Authenticator>, SettingsError> {
        if self.mode == AuthMode::Off {
            return Ok(None);
        }
        let mut callers = self.callers.clone();
        if let Some(path) = &self.grants_file {
            callers.extend(read_grants(path)?);
        }
        if self.jwt.is_none() && !self.trust_mesh {
            return Err(SettingsError::NoWayIn);
        }
        if callers.is_empty() {
            return Err(SettingsError::NoCallers);
        }
        let grants = Grants::new(callers)?;
        Ok(Some(Authenticator::new(
            self.jwt.as_ref(),
            self.trust_mesh,
            grants,
        )?))
    }
}

fn read_grants(path: &Path) -> Result<Vec<CallerGrant>, SettingsError> {
    let fail = |message: String| SettingsError::GrantsFile {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let file: GrantsFile = serde_yaml_ng::from_str(&text).map_err(|e| fail(e.to_string()))?;
    Ok(file.callers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<AuthSettings, String> {
        serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn checking_is_the_default_and_off_is_written_down() {
        assert_eq!(parse("{}").unwrap().mode, AuthMode::On);
        assert_eq!(parse("mode: off").unwrap().mode, AuthMode::Off);
        assert_eq!(parse("mode: false").unwrap().mode, AuthMode::Off);
        assert!(parse("mode: maybe").unwrap_err().contains("on or off"));
        assert!(AuthSettings::off().authenticator().unwrap().is_none());
    }

    #[test]
    fn on_without_a_way_in_or_a_caller_is_refused_naming_the_settings() {
        let none = parse("mode: on").unwrap().authenticator().unwrap_err();
        assert!(
            none.to_string().contains("auth.jwt or auth.trust_mesh"),
            "{none}"
        );
        let nobody = parse("trust_mesh: true")
            .unwrap()
            .authenticator()
            .unwrap_err();
        assert!(nobody.to_string().contains("auth.callers"), "{nobody}");
        let ok = parse(
            "trust_mesh: true\ncallers:\n  - name: orders\n    subjects: [spiffe://c/ns/a/sa/b]\n    apps: ['*']\n    operations: [send]\n",
        )
        .unwrap();
        assert!(ok.authenticator().unwrap().is_some());
    }

    #[test]
    fn a_grants_file_with_an_unknown_operation_is_refused_naming_it() {
        let dir = std::env::temp_dir().join(format!("wxpush-grants-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("grants.yaml");
        std::fs::write(
            &path,
            "callers:\n  - name: orders\n    subjects: [o]\n    apps: ['*']\n    operations: [send, sned]\n",
        )
        .unwrap();
        let s = AuthSettings {
            trust_mesh: true,
            grants_file: Some(path.clone()),
            ..Default::default()
        };
        let e = s.authenticator().unwrap_err().to_string();
        assert!(
            e.contains("grants.yaml") && e.contains("unknown operation \"sned\""),
            "{e}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
