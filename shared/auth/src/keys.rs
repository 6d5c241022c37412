//! The keys bearer tokens are verified with (`auth.jwt`): one HS256 secret,
//! one RSA or EC P-256 public key, or a JWKS of such public keys. Each key
//! takes its own algorithm only, so `alg: none` and algorithm confusion
//! (an HS256 token "signed" with an RSA public key) never verify.

use crate::identity::{AuthError, DEFAULT_LEEWAY_SECS, JwtConfig, SetupError};
use crate::privacy::{SecretFile, secret_file};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use std::path::{Path, PathBuf};

/// One key: its `kid` (JWKS keys), the key, the checks with its algorithm.
struct Key {
    kid: Option<String>,
    key: DecodingKey,
    validation: Validation,
}

impl Key {
    fn pair(&self) -> (&DecodingKey, &Validation) {
        (&self.key, &self.validation)
    }
}

/// The configured keys.
pub(crate) struct Verifier {
    keys: Vec<Key>,
}

impl Verifier {
    pub(crate) fn new(c: &JwtConfig) -> Result<Self, SetupError> {
        if c.issuer.is_empty() {
            return Err(SetupError::Required { field: "issuer" });
        }
        if c.audience.is_empty() {
            return Err(SetupError::Required { field: "audience" });
        }
        let keys = match (&c.hs256_secret_file, &c.public_key_file, &c.jwks_file) {
            (Some(path), None, None) => {
                let secret = secret_file(path).map_err(|e| match e {
                    SecretFile::Read(source) => SetupError::Read {
                        path: path.clone(),
                        source,
                    },
                    SecretFile::Short => SetupError::ShortSecret { path: path.clone() },
                })?;
                let key = DecodingKey::from_secret(&secret).map_err(|_| SetupError::OneKey)?;
                vec![(None, key, Algorithm::HS256)]
            }
            (None, Some(path), None) => {
                let pem = read(path)?;
                let key = match DecodingKey::from_rsa_pem(&pem) {
                    Ok(key) => (None, key, Algorithm::RS256),
                    Err(_) => match DecodingKey::from_ec_pem(&pem) {
                        Ok(key) => (None, key, Algorithm::ES256),
                        Err(_) => return Err(SetupError::Key { path: path.clone() }),
                    },
                };
                vec![key]
            }
            (None, None, Some(path)) => jwks(path)?,
            _ => return Err(SetupError::OneKey),
        };
        let keys = keys
            .into_iter()
            .map(|(kid, key, algorithm)| Key {
                kid,
                key,
                validation: validation(c, algorithm),
            })
            .collect();
        Ok(Self { keys })
    }

    /// The key `token` is to be verified with: the one key, or the JWKS key
    /// its header's `kid` names.
    pub(crate) fn pick(&self, token: &str) -> Result<(&DecodingKey, &Validation), AuthError> {
        if let [key] = self.keys.as_slice()
            && key.kid.is_none()
        {
            return Ok(key.pair());
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| AuthError::BadToken("not a JWT".into()))?;
        match (header.kid, self.keys.as_slice()) {
            (None, [key]) => Ok(key.pair()),
            (None, _) => Err(AuthError::BadToken(
                "it names no key (kid) and the configured JWKS has several".into(),
            )),
            (Some(kid), keys) => keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid.as_str()))
                .map(Key::pair)
                .ok_or_else(|| {
                    AuthError::BadToken(
                        "signed with a key the configured JWKS does not have".into(),
                    )
                }),
        }
    }
}

fn read(path: &PathBuf) -> Result<Vec<u8>, SetupError> {
    std::fs::read(path).map_err(|source| SetupError::Read {
        path: path.clone(),
        source,
    })
}

/// A JWKS's keys: RSA (RS256) and EC P-256 (ES256) public keys only, each
/// with a distinct `kid` when there are several.
fn jwks(path: &Path) -> Result<Vec<(Option<String>, DecodingKey, Algorithm)>, SetupError> {
    let fail = |reason: String| SetupError::Jwks {
        path: path.to_path_buf(),
        reason,
    };
    let set: JwkSet = serde_json::from_slice(&read(&path.to_path_buf())?)
        .map_err(|e| fail(format!("not a JWKS: {e}")))?;
    if set.keys.is_empty() {
        return Err(fail("no keys".into()));
    }
    let mut out = Vec::with_capacity(set.keys.len());
    for (i, jwk) in set.keys.iter().enumerate() {
        let algorithm = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Algorithm::RS256,
            AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
                Algorithm::ES256
            }
            _ => {
                return Err(fail(format!(
                    "keys[{i}]: only RSA and EC P-256 public keys are taken"
                )));
            }
        };
        let kid = jwk.common.key_id.clone();
        if set.keys.len() > 1 && kid.is_none() {
            return Err(fail(format!("keys[{i}]: several keys need a kid each")));
        }
        if kid.is_some() && out.iter().any(|(k, _, _)| *k == kid) {
            return Err(fail(format!("keys[{i}]: kid used twice")));
        }
        let key = DecodingKey::from_jwk(jwk).map_err(|e| fail(format!("keys[{i}]: {e}")))?;
        out.push((kid, key, algorithm));
    }
    Ok(out)
}

/// The checks every token passes: the key's algorithm only, `exp`, `nbf`,
/// `iss`, `aud` and `sub` with the clock skew allowed.
fn validation(c: &JwtConfig, algorithm: Algorithm) -> Validation {
    let mut v = Validation::new(algorithm);
    v.leeway = c.leeway_secs.unwrap_or(DEFAULT_LEEWAY_SECS);
    v.validate_nbf = true;
    v.set_issuer(&[&c.issuer]);
    v.set_audience(&[&c.audience]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v
}
