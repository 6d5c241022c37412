//! What a service presents on its own calls to the suite (delivery →
//! template, delivery → token, template → token): the bearer token in
//! `auth.call_as.token_file`, read again when the file changes, so a
//! rotated token (a Kubernetes projected service account token) is picked
//! up without a restart. In a mesh the sidecar presents the workload's
//! identity instead and no file is set.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// How often the file is looked at for a change.
const RECHECK: Duration = Duration::from_secs(10);

/// A bearer token from a file; cheap to clone.
#[derive(Clone)]
pub struct Credentials {
    inner: Arc<TokenFile>,
}

struct TokenFile {
    path: PathBuf,
    state: Mutex<Loaded>,
}

struct Loaded {
    checked_at: Instant,
    modified: Option<SystemTime>,
    header: http::HeaderValue,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        write!(f, "Credentials({})", self.inner.path.display())
    }
}

impl Credentials {
    /// Reads the token now: a file that cannot be read, or holds no token,
    /// is an error naming `auth.call_as.token_file` (at start, not at the
    /// first call).
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let (modified, header) = read(path)?;
        Ok(Self {
            inner: Arc::new(TokenFile {
                path: path.to_path_buf(),
                state: Mutex::new(Loaded {
                    checked_at: Instant::now(),
                    modified,
                    header,
                }),
            }),
        })
    }

    /// The `authorization` value to send: the file's token, re-read when
    /// it changed (a file that went missing keeps the last token, with a
    /// warning).
    pub fn header(&self) -> http::HeaderValue {
        let mut state = self.inner.state.lock().expect("credentials lock");
        if state.checked_at.elapsed() >= RECHECK {
            state.checked_at = Instant::now();
            let modified = std::fs::metadata(&self.inner.path)
                .and_then(|m| m.modified())
                .ok();
            if modified != state.modified {
                match read(&self.inner.path) {
                    Ok((modified, header)) => {
                        state.modified = modified;
                        state.header = header;
                    }
                    Err(e) => tracing::warn!(error = %e, "keeping the last token"),
                }
            }
        }
        state.header.clone()
    }
}

fn read(path: &Path) -> Result<(Option<SystemTime>, http::HeaderValue), String> {
    let what = || format!("auth.call_as.token_file {}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", what()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("{}: empty", what()));
    }
    let mut header = http::HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| format!("{}: not a token (a line of printable text)", what()))?;
    header.set_sensitive(true);
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    Ok((modified, header))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_read_at_start_and_never_printed() {
        let dir = std::env::temp_dir().join(format!("wxpush-cred-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        assert!(
            Credentials::from_file(&path)
                .unwrap_err()
                .contains("auth.call_as.token_file")
        );
        std::fs::write(&path, "\n").unwrap();
        assert!(Credentials::from_file(&path).unwrap_err().contains("empty"));
        std::fs::write(&path, "eyJ.secret.token\n").unwrap();
        let c = Credentials::from_file(&path).unwrap();
        assert_eq!(c.header(), "Bearer eyJ.secret.token");
        assert!(c.header().is_sensitive());
        assert!(!format!("{c:?}").contains("secret"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
