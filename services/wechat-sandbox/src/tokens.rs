//! Access tokens: `/cgi-bin/token` and `/cgi-bin/stable_token` issuing, grace, expiry and limits.
//!
//! The two kinds are independent: each app has one "current" plain token and one "current" stable
//! token. Replacing a plain token, or force-refreshing a stable one, starts the old token's grace
//! period; a normal-mode stable renewal leaves the old one valid until its own expiry.

use std::collections::HashMap;

use rand::Rng;

use crate::clock::beijing_day;
use crate::config::{AppConfig, SandboxConfig, TokenRules};
use crate::errcode::WxError;

const TOKEN_LEN: usize = 96;
const TOKEN_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

/// A token as returned to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The access token itself (a credential: never log it).
    pub access_token: String,
    /// Remaining lifetime in seconds.
    pub expires_in: u64,
    /// Whether this call created a new token (false when a stable token was returned again).
    pub is_new: bool,
}

#[derive(Debug, Clone)]
struct TokenRecord {
    appid: String,
    expires_at_ms: u64,
    /// Set when the token was replaced: it answers 40001 from this instant on.
    revoked_at_ms: Option<u64>,
}

#[derive(Debug, Default)]
struct AppTokens {
    current_plain: Option<String>,
    current_stable: Option<String>,
    day: u64,
    plain_fetches_today: u32,
    forced_today: u32,
    last_forced_ms: Option<u64>,
}

impl AppTokens {
    fn roll_day(&mut self, now_ms: u64) {
        let day = beijing_day(now_ms);
        if day != self.day {
            self.day = day;
            self.plain_fetches_today = 0;
            self.forced_today = 0;
        }
    }
}

/// Every token the sandbox issued, and each app's token state.
#[derive(Debug, Default)]
pub struct TokenStore {
    tokens: HashMap<String, TokenRecord>,
    apps: HashMap<String, AppTokens>,
    issued: Vec<String>,
}

/// Checks grant_type, appid and secret the way the token APIs do.
pub fn authenticate<'a>(
    config: &'a SandboxConfig,
    grant_type: Option<&str>,
    appid: Option<&str>,
    secret: Option<&str>,
) -> Result<&'a AppConfig, WxError> {
    if grant_type != Some("client_credential") {
        return Err(WxError::code(40002));
    }
    let appid = appid
        .filter(|s| !s.is_empty())
        .ok_or(WxError::code(41002))?;
    let secret = secret
        .filter(|s| !s.is_empty())
        .ok_or(WxError::code(41004))?;
    let app = config.app(appid).ok_or(WxError::code(40013))?;
    if app.secret != secret {
        return Err(WxError::code(40125));
    }
    Ok(app)
}

impl TokenStore {
    fn issue(&mut self, appid: &str, rules: &TokenRules, now_ms: u64) -> String {
        let mut rng = rand::rng();
        let token: String = (0..TOKEN_LEN)
            .map(|_| TOKEN_ALPHABET[rng.random_range(0..TOKEN_ALPHABET.len())] as char)
            .collect();
        self.tokens.insert(
            token.clone(),
            TokenRecord {
                appid: appid.to_string(),
                expires_at_ms: now_ms + rules.expires_in_secs * 1000,
                revoked_at_ms: None,
            },
        );
        self.issued.push(token.clone());
        token
    }

    /// Starts the grace period of a replaced token (never lengthens an earlier revocation).
    fn revoke(&mut self, token: Option<String>, rules: &TokenRules, now_ms: u64) {
        if let Some(rec) = token.and_then(|t| self.tokens.get_mut(&t)) {
            let at = now_ms + rules.grace_secs * 1000;
            rec.revoked_at_ms = Some(rec.revoked_at_ms.map_or(at, |old| old.min(at)));
        }
    }

    /// `/cgi-bin/token`: always a new token; the previous one gets `grace_secs` to live.
    pub fn fetch_plain(
        &mut self,
        appid: &str,
        rules: &TokenRules,
        now_ms: u64,
    ) -> Result<IssuedToken, WxError> {
        let state = self.apps.entry(appid.to_string()).or_default();
        state.roll_day(now_ms);
        if state.plain_fetches_today >= rules.daily_token_limit {
            return Err(WxError::code(45009));
        }
        state.plain_fetches_today += 1;
        let previous = state.current_plain.take();
        self.revoke(previous, rules, now_ms);
        let token = self.issue(appid, rules, now_ms);
        self.apps.get_mut(appid).expect("state").current_plain = Some(token.clone());
        Ok(IssuedToken {
            access_token: token,
            expires_in: rules.expires_in_secs,
            is_new: true,
        })
    }

    /// `/cgi-bin/stable_token`: the same token while it is fresh; a new one near expiry or when forced.
    pub fn fetch_stable(
        &mut self,
        appid: &str,
        force_refresh: bool,
        rules: &TokenRules,
        now_ms: u64,
    ) -> Result<IssuedToken, WxError> {
        let state = self.apps.entry(appid.to_string()).or_default();
        state.roll_day(now_ms);
        if force_refresh {
            if state.forced_today >= rules.force_refresh_daily_limit {
                return Err(WxError::code(45009));
            }
            if let Some(last) = state.last_forced_ms
                && now_ms < last + rules.force_refresh_min_interval_secs * 1000
            {
                return Err(WxError::code(45011));
            }
            state.forced_today += 1;
            state.last_forced_ms = Some(now_ms);
            let previous = state.current_stable.take();
            self.revoke(previous, rules, now_ms);
        } else if let Some(current) = &state.current_stable
            && let Some(rec) = self.tokens.get(current)
            && rec.revoked_at_ms.is_none()
            && now_ms + rules.stable_renew_window_secs * 1000 < rec.expires_at_ms
        {
            return Ok(IssuedToken {
                access_token: current.clone(),
                expires_in: (rec.expires_at_ms - now_ms).div_ceil(1000),
                is_new: false,
            });
        }
        let token = self.issue(appid, rules, now_ms);
        self.apps.get_mut(appid).expect("state").current_stable = Some(token.clone());
        Ok(IssuedToken {
            access_token: token,
            expires_in: rules.expires_in_secs,
            is_new: true,
        })
    }

    /// Validates an `access_token` query value and returns the appid that owns it.
    pub fn check(&self, token: Option<&str>, now_ms: u64) -> Result<&str, WxError> {
        let token = token
            .filter(|t| !t.is_empty())
            .ok_or(WxError::code(41001))?;
        let rec = self.tokens.get(token).ok_or(WxError::code(40001))?;
        if rec.revoked_at_ms.is_some_and(|at| now_ms >= at) {
            return Err(WxError::code(40001));
        }
        if now_ms >= rec.expires_at_ms {
            return Err(WxError::code(42001));
        }
        Ok(&rec.appid)
    }

    /// Every token ever issued, oldest first (so tests can assert none leaked into logs).
    pub fn issued(&self) -> Vec<String> {
        self.issued.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::demo_config;

    #[test]
    fn authenticate_errors() {
        let c = demo_config();
        let e = |g, a, s| authenticate(&c, g, a, s).unwrap_err().errcode;
        assert_eq!(e(Some("x"), Some("wx_demo_oa"), Some("s")), 40002);
        assert_eq!(e(Some("client_credential"), Some("nope"), Some("s")), 40013);
        assert_eq!(
            e(Some("client_credential"), Some("wx_demo_oa"), Some("s")),
            40125
        );
        assert_eq!(e(Some("client_credential"), None, Some("s")), 41002);
        assert!(
            authenticate(
                &c,
                Some("client_credential"),
                Some("wx_demo_oa"),
                Some("demo-oa-secret-7f3a9c")
            )
            .is_ok()
        );
    }

    #[test]
    fn plain_token_grace_then_40001() {
        let rules = TokenRules::default();
        let mut s = TokenStore::default();
        let a = s.fetch_plain("app", &rules, 0).unwrap().access_token;
        let b = s.fetch_plain("app", &rules, 1000).unwrap().access_token;
        assert_ne!(a, b);
        assert_eq!(s.check(Some(&a), 1000 + 299_000), Ok("app"));
        assert_eq!(
            s.check(Some(&a), 1000 + 300_000).unwrap_err().errcode,
            40001
        );
        assert_eq!(s.check(Some(&b), 7_201_000).unwrap_err().errcode, 42001);
        assert_eq!(s.check(None, 0).unwrap_err().errcode, 41001);
    }
}
