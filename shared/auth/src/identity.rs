//! Who is calling: a bearer JWT verified against the configured key, or,
//! inside a mesh that is trusted to set it, the workload identity Istio's
//! sidecar hands over in `x-forwarded-client-cert`. The subject found must
//! be a configured caller's. Errors name what is wrong, never a token.

use crate::grants::{CallerGrant, Grants};
use crate::keys::Verifier;
use http::HeaderMap;
use serde::Deserialize;
use std::path::PathBuf;

/// The longest credential header taken (a JWT is a few hundred bytes).
pub const MAX_CREDENTIAL_BYTES: usize = 8 * 1024;

/// Clock skew allowed on `exp` and `nbf` by default.
pub const DEFAULT_LEEWAY_SECS: u64 = 30;

/// How bearer tokens are verified: one key, so one algorithm.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtConfig {
    /// HS256: the shared secret's file.
    pub hs256_secret_file: Option<PathBuf>,
    /// RS256 or ES256: the public key's PEM file (the algorithm is the
    /// key's: an RSA key takes RS256 only, an EC P-256 key ES256 only).
    pub public_key_file: Option<PathBuf>,
    /// RS256 / ES256 public keys as a JWKS file (an identity provider's
    /// `jwks_uri`, saved): a token names its key by `kid` (a set of one
    /// key needs none); each key takes its own algorithm only.
    pub jwks_file: Option<PathBuf>,
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud`.
    pub audience: String,
    /// Clock skew allowed on `exp` and `nbf` (default 30 s).
    pub leeway_secs: Option<u64>,
}

/// Why the authenticator cannot be built (at start).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("auth.jwt: set exactly one of hs256_secret_file, public_key_file and jwks_file")]
    OneKey,
    #[error("auth.jwt.jwks_file {path}: {reason}")]
    Jwks { path: PathBuf, reason: String },
    #[error("auth.jwt.{field}: is required")]
    Required { field: &'static str },
    #[error("auth.jwt: cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("auth.jwt.public_key_file {path}: neither an RSA nor an EC P-256 public key in PEM")]
    Key { path: PathBuf },
    #[error("auth.jwt.hs256_secret_file {path}: shorter than 32 bytes")]
    ShortSecret { path: PathBuf },
}

/// Why a call is not authenticated (`UNAUTHENTICATED`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no credentials: send authorization: Bearer <JWT>")]
    Missing,
    #[error("the {0} header is over {MAX_CREDENTIAL_BYTES} bytes")]
    TooLarge(&'static str),
    #[error("the authorization header is not `Bearer <JWT>`")]
    NotBearer,
    #[error("the bearer token is refused: {0}")]
    BadToken(String),
    #[error("x-forwarded-client-cert is not trusted here (auth.trust_mesh is off)")]
    MeshNotTrusted,
    #[error("x-forwarded-client-cert names no workload (no URI=spiffe://...)")]
    NoWorkload,
    #[error("bearer tokens are not accepted here (no auth.jwt key)")]
    NoJwtKey,
    #[error("the caller {0:?} has no grants here")]
    Unknown(String),
}

/// The caller of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The configured caller's name.
    pub caller: String,
    /// What authenticated: a JWT `sub` or a SPIFFE id.
    pub subject: String,
}

/// Finds the caller of a call from its headers.
pub struct Authenticator {
    jwt: Option<Verifier>,
    trust_mesh: bool,
    grants: Grants,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of it.
        f.debug_struct("Authenticator")
            .field("jwt", &self.jwt.is_some())
            .field("trust_mesh", &self.trust_mesh)
            .field("grants", &self.grants)
            .finish()
    }
}

impl Authenticator {
    /// From the `auth.jwt` settings (none: no bearer tokens), whether the
    /// mesh's header is trusted, and the callers' grants.
    pub fn new(
        jwt: Option<&JwtConfig>,
        trust_mesh: bool,
        grants: Grants,
    ) -> Result<Self, SetupError> {
        let jwt = jwt.map(Verifier::new).transpose()?;
        Ok(Self {
            jwt,
            trust_mesh,
            grants,
        })
    }

    /// The grants callers are checked against.
    pub fn grants(&self) -> &Grants {
        &self.grants
    }

    /// The caller of a call with these headers, and its grant.
    pub fn identify(
        &self,
        headers: &HeaderMap,
    ) -> Result<(Identity, &std::sync::Arc<CallerGrant>), AuthError> {
        let subject = if let Some(value) = headers.get(http::header::AUTHORIZATION) {
            self.bearer_subject(value.as_bytes())?
        } else if let Some(value) = headers.get("x-forwarded-client-cert") {
            if value.len() > MAX_CREDENTIAL_BYTES {
                return Err(AuthError::TooLarge("x-forwarded-client-cert"));
            }
            if !self.trust_mesh {
                return Err(AuthError::MeshNotTrusted);
            }
            workload(value.to_str().unwrap_or_default()).ok_or(AuthError::NoWorkload)?
        } else {
            return Err(AuthError::Missing);
        };
        let grant = self
            .grants
            .caller(&subject)
            .ok_or_else(|| AuthError::Unknown(subject.clone()))?;
        Ok((
            Identity {
                caller: grant.name.clone(),
                subject,
            },
            grant,
        ))
    }

    fn bearer_subject(&self, value: &[u8]) -> Result<String, AuthError> {
        if value.len() > MAX_CREDENTIAL_BYTES {
            return Err(AuthError::TooLarge("authorization"));
        }
        let token = std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(AuthError::NotBearer)?;
        let token = token.trim();
        let (key, validation) = self.jwt.as_ref().ok_or(AuthError::NoJwtKey)?.pick(token)?;
        #[derive(Deserialize)]
        struct Claims {
            sub: String,
        }
        let data = jsonwebtoken::decode::<Claims>(token, key, validation)
            .map_err(|e| AuthError::BadToken(reason(e.kind())))?;
        Ok(data.claims.sub)
    }
}

/// What is wrong with a token, in words that carry none of it.
fn reason(kind: &jsonwebtoken::errors::ErrorKind) -> String {
    use jsonwebtoken::errors::ErrorKind::*;
    match kind {
        ExpiredSignature => "expired".into(),
        ImmatureSignature => "not valid yet (nbf)".into(),
        InvalidAudience => "for another audience".into(),
        InvalidIssuer => "from another issuer".into(),
        InvalidSignature => "its signature does not verify with the configured key".into(),
        InvalidAlgorithm | InvalidAlgorithmName => {
            "its algorithm is not the configured key's".into()
        }
        MissingRequiredClaim(c) => format!("no {c} claim"),
        InvalidToken | Base64(_) | Json(_) | Utf8(_) => "not a JWT".into(),
        _ => "not accepted".into(),
    }
}

/// The client workload's SPIFFE id in an `x-forwarded-client-cert` value
/// (`By=...;Hash=...;URI=spiffe://...`; the last element is the direct
/// client's).
fn workload(xfcc: &str) -> Option<String> {
    let last = xfcc.rsplit(',').next()?;
    last.split(';').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim().eq_ignore_ascii_case("uri")
            && v.trim().trim_matches('"').starts_with("spiffe://"))
        .then(|| v.trim().trim_matches('"').to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_direct_clients_workload_is_read() {
        assert_eq!(
            workload("By=spiffe://cluster.local/ns/wx/sa/delivery;Hash=ab;Subject=\"\";URI=spiffe://cluster.local/ns/shop/sa/orders").as_deref(),
            Some("spiffe://cluster.local/ns/shop/sa/orders")
        );
        assert_eq!(
            workload("URI=spiffe://a/ns/x/sa/first,By=b;URI=spiffe://a/ns/y/sa/second").as_deref(),
            Some("spiffe://a/ns/y/sa/second")
        );
        assert_eq!(workload("By=spiffe://a;Hash=ab"), None);
        assert_eq!(workload("URI=https://evil"), None);
    }
}
