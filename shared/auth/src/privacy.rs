//! Personal data shown or stored without being readable: a keyed hash
//! (HMAC-SHA-256) of a value. Without the key a short value (an amount, a
//! date, a phone number) cannot be found by hashing every candidate; with
//! the same key the same value hashes alike, so two records still compare.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::path::Path;

/// The shortest key taken from a file.
pub const MIN_KEY_BYTES: usize = 32;

/// Why a secret file is refused.
pub(crate) enum SecretFile {
    Read(std::io::Error),
    /// Under [`MIN_KEY_BYTES`] once trimmed.
    Short,
}

/// A secret (a key, an HS256 secret) from its file, surrounding whitespace
/// trimmed, at least [`MIN_KEY_BYTES`] long.
pub(crate) fn secret_file(path: &Path) -> Result<Vec<u8>, SecretFile> {
    let bytes = std::fs::read(path).map_err(SecretFile::Read)?;
    let secret = bytes.trim_ascii();
    if secret.len() < MIN_KEY_BYTES {
        return Err(SecretFile::Short);
    }
    Ok(secret.to_vec())
}

/// A keyed hash; the key never leaves it.
#[derive(Clone)]
pub struct KeyedHash {
    key: Vec<u8>,
}

impl std::fmt::Debug for KeyedHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyedHash")
    }
}

impl KeyedHash {
    pub fn new(key: &[u8]) -> Self {
        Self { key: key.to_vec() }
    }

    /// With a random key: hashes compare within this process only.
    pub fn random() -> Self {
        Self::new(&rand::random::<[u8; 32]>())
    }

    /// The key in `path` (`setting` names it in errors), or a random one
    /// when no file is configured.
    pub fn from_file(setting: &str, path: Option<&Path>) -> Result<Self, String> {
        let Some(path) = path else {
            return Ok(Self::random());
        };
        match secret_file(path) {
            Ok(key) => Ok(Self::new(&key)),
            Err(SecretFile::Read(e)) => Err(format!("{setting} {}: {e}", path.display())),
            Err(SecretFile::Short) => Err(format!(
                "{setting} {}: shorter than {MIN_KEY_BYTES} bytes",
                path.display()
            )),
        }
    }

    /// The first `bytes` bytes of the HMAC of `value`, in hex.
    pub fn hex(&self, value: &str, bytes: usize) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(value.as_bytes());
        let digest = mac.finalize().into_bytes();
        digest[..bytes.min(digest.len())]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// WeChat's `data` (`{"field": {"value": "..."}}`) with the values of
    /// the fields `which` picks replaced by `replace(value)`, the field
    /// names and anything else kept; text that is not such an object is
    /// replaced whole (as one value).
    pub fn map_values(
        json: &str,
        which: impl Fn(&str) -> bool,
        replace: impl Fn(&str) -> String,
    ) -> String {
        let Ok(serde_json::Value::Object(mut fields)) = serde_json::from_str(json) else {
            return replace(json);
        };
        let text = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        for (name, field) in fields.iter_mut() {
            if !which(name) {
                continue;
            }
            match field {
                serde_json::Value::Object(f) => {
                    if let Some(v) = f.get_mut("value") {
                        *v = replace(&text(v)).into();
                    }
                }
                other => *other = replace(&text(other)).into(),
            }
        }
        serde_json::Value::Object(fields).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_hashes_compare_only_under_one_key() {
        let k = KeyedHash::new(b"k");
        assert_eq!(k.hex("13800000000", 4), k.hex("13800000000", 4));
        assert_eq!(k.hex("x", 4).len(), 8);
        assert_ne!(k.hex("x", 8), KeyedHash::new(b"j").hex("x", 8));
        assert_ne!(k.hex("x", 8), KeyedHash::random().hex("x", 8));
        assert!(!format!("{k:?}").contains('k') || format!("{k:?}") == "KeyedHash");
    }

    #[test]
    fn values_of_picked_fields_are_replaced_and_the_rest_kept() {
        let json = r##"{"phone":{"value":"13800000000","color":"#000"},"thing1":{"value":"ok"}}"##;
        let out = KeyedHash::map_values(json, |f| f == "phone", |v| format!("<{}>", v.len()));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["phone"]["value"], "<11>");
        assert_eq!(v["phone"]["color"], "#000");
        assert_eq!(v["thing1"]["value"], "ok");
        assert_eq!(KeyedHash::map_values("nope", |_| true, |_| "x".into()), "x");
    }

    #[test]
    fn a_key_file_must_hold_enough_bytes() {
        let dir = std::env::temp_dir().join(format!("wxpush-keyed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let short = dir.join("short");
        std::fs::write(&short, "too short").unwrap();
        let e = KeyedHash::from_file("mask_key_file", Some(&short)).unwrap_err();
        assert!(e.contains("mask_key_file") && e.contains("32 bytes"), "{e}");
        assert!(!e.contains("too short"));
        let good = dir.join("good");
        std::fs::write(&good, "k".repeat(40)).unwrap();
        let a = KeyedHash::from_file("x", Some(&good)).unwrap();
        assert_eq!(
            a.hex("v", 4),
            KeyedHash::new("k".repeat(40).as_bytes()).hex("v", 4)
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
