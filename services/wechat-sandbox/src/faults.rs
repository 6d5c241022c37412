//! Fault injection: latency, injected errcodes, HTTP 5xx and refused connections, so the
//! suite can test retries, breakers and outage handling against a misbehaving WeChat.

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::errcode::{WxError, default_errmsg};

/// One fault, set through `POST /admin/faults`. Missing JSON fields take their defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Fault {
    /// The API path it applies to, e.g. `/cgi-bin/message/template/send`, or `*` for every path.
    pub path: String,
    /// Sleep this long before answering.
    pub latency_ms: u64,
    /// Answer this errcode (HTTP 200) instead of calling the handler.
    pub errcode: Option<i64>,
    /// The errmsg for `errcode`; WeChat's usual message when absent.
    pub errmsg: Option<String>,
    /// Apply to the next N matching calls only, then remove itself; `None` = until cleared.
    pub times: Option<u32>,
    /// Apply with this probability (0..=1) per matching call; `None` = always.
    pub probability: Option<f64>,
    /// Simulate an outage: an HTTP 5xx, or refused connections (global, path ignored).
    pub outage: Option<Outage>,
}

impl Default for Fault {
    fn default() -> Self {
        Self {
            path: "*".into(),
            latency_ms: 0,
            errcode: None,
            errmsg: None,
            times: None,
            probability: None,
            outage: None,
        }
    }
}

impl Fault {
    /// Rejects faults that cannot be applied, with a message for the admin API's 400 answer.
    pub fn validate(&self) -> Result<(), String> {
        if self.path.is_empty() || !(self.path == "*" || self.path.starts_with('/')) {
            return Err("path must be \"*\" or start with '/'".into());
        }
        if let Some(p) = self.probability
            && !(0.0..=1.0).contains(&p)
        {
            return Err("probability must be between 0 and 1".into());
        }
        if let Some(Outage::Http5xx { status }) = self.outage
            && !(500..=599).contains(&status)
        {
            return Err("http5xx status must be between 500 and 599".into());
        }
        if self.times == Some(0) {
            return Err("times must be at least 1 (omit it for a permanent fault)".into());
        }
        Ok(())
    }
}

/// An outage kind. JSON: `{"http5xx":{"status":503}}` or `"refuse"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outage {
    /// Answer this HTTP status with a plain-text body.
    Http5xx {
        /// The status, 500..=599.
        status: u16,
    },
    /// Close the API listener and drop every open connection until the faults are cleared.
    Refuse,
}

/// What the fault layer decided for one call.
#[derive(Debug, Default, PartialEq)]
pub struct FaultDecision {
    /// Sleep first.
    pub latency_ms: u64,
    /// Then answer this HTTP status (plain body) …
    pub http_status: Option<u16>,
    /// … or this errcode, instead of the handler.
    pub error: Option<WxError>,
}

/// The active faults.
#[derive(Debug, Default)]
pub struct FaultSet {
    faults: Vec<Fault>,
}

impl FaultSet {
    /// Adds a fault; faults accumulate until they run out (`times`) or are cleared.
    pub fn set(&mut self, fault: Fault) {
        self.faults.push(fault);
    }

    /// Removes every fault.
    pub fn clear(&mut self) {
        self.faults.clear();
    }

    /// Whether a refuse outage is set.
    pub fn refusing(&self) -> bool {
        self.faults.iter().any(|f| f.outage == Some(Outage::Refuse))
    }

    /// Decides what happens to a call of `path`, consuming `times` of the faults that apply.
    /// An exact-path fault is considered before `*` faults; latency is the largest that applies,
    /// the outage and errcode come from the first applying fault that has one.
    pub fn decide(&mut self, path: &str) -> FaultDecision {
        let mut decision = FaultDecision::default();
        let mut rng = rand::rng();
        let mut order: Vec<usize> = (0..self.faults.len())
            .filter(|&i| self.faults[i].path == path || self.faults[i].path == "*")
            .filter(|&i| self.faults[i].outage != Some(Outage::Refuse))
            .collect();
        order.sort_by_key(|&i| self.faults[i].path == "*");
        for i in order {
            let f = &mut self.faults[i];
            if f.probability.is_some_and(|p| rng.random::<f64>() >= p) {
                continue;
            }
            decision.latency_ms = decision.latency_ms.max(f.latency_ms);
            if decision.http_status.is_none()
                && decision.error.is_none()
                && let Some(Outage::Http5xx { status }) = f.outage
            {
                decision.http_status = Some(status);
            }
            if decision.http_status.is_none()
                && decision.error.is_none()
                && let Some(code) = f.errcode
            {
                let msg = f
                    .errmsg
                    .clone()
                    .unwrap_or_else(|| default_errmsg(code).to_string());
                decision.error = Some(WxError::new(code, msg));
            }
            if let Some(t) = f.times.as_mut() {
                *t = t.saturating_sub(1);
            }
        }
        self.faults.retain(|f| f.times != Some(0));
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_counts_down_and_removes() {
        let mut s = FaultSet::default();
        s.set(Fault {
            path: "/a".into(),
            errcode: Some(-1),
            times: Some(2),
            ..Fault::default()
        });
        assert_eq!(s.decide("/a").error.unwrap().errcode, -1);
        assert!(s.decide("/b").error.is_none());
        assert_eq!(s.decide("/a").error.unwrap().errmsg, "system error");
        assert!(s.decide("/a").error.is_none());
    }

    #[test]
    fn outage_json_shapes() {
        let f: Fault = serde_json::from_str(r#"{"outage":{"http5xx":{"status":503}}}"#).unwrap();
        assert_eq!(f.outage, Some(Outage::Http5xx { status: 503 }));
        assert_eq!(f.path, "*");
        let f: Fault = serde_json::from_str(r#"{"outage":"refuse"}"#).unwrap();
        assert_eq!(f.outage, Some(Outage::Refuse));
        assert!(
            Fault {
                probability: Some(2.0),
                ..Fault::default()
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn probability_zero_never_applies() {
        let mut s = FaultSet::default();
        s.set(Fault {
            errcode: Some(-1),
            probability: Some(0.0),
            ..Fault::default()
        });
        for _ in 0..50 {
            assert!(s.decide("/x").error.is_none());
        }
    }
}
