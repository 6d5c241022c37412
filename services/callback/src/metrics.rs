//! `wxpush_callback_pushes_total{app_id, outcome}`: every call WeChat (or
//! anyone) made to the callback URL, by what became of it. An unknown app
//! is counted with an empty `app_id` (the text is the caller's).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use std::sync::OnceLock;

/// What became of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// URL verification answered.
    Verified,
    /// A push handed on.
    Accepted,
    /// A push WeChat sent again: answered, not handed on twice.
    Repeated,
    UnknownApp,
    BadSignature,
    TooLarge,
    Undecryptable,
    /// Encrypted for another app.
    OtherApp,
    /// Neither XML nor JSON, or not a push.
    Unreadable,
    /// The hand-off failed or was too slow: WeChat sends it again.
    HandoffFailed,
}

impl Outcome {
    pub const ALL: [Outcome; 10] = [
        Outcome::Verified,
        Outcome::Accepted,
        Outcome::Repeated,
        Outcome::UnknownApp,
        Outcome::BadSignature,
        Outcome::TooLarge,
        Outcome::Undecryptable,
        Outcome::OtherApp,
        Outcome::Unreadable,
        Outcome::HandoffFailed,
    ];

    /// The label value, also the body of a refusal.
    pub fn reason(self) -> &'static str {
        match self {
            Outcome::Verified => "verified",
            Outcome::Accepted => "accepted",
            Outcome::Repeated => "repeated",
            Outcome::UnknownApp => "unknown_app",
            Outcome::BadSignature => "bad_signature",
            Outcome::TooLarge => "too_large",
            Outcome::Undecryptable => "undecryptable",
            Outcome::OtherApp => "other_app",
            Outcome::Unreadable => "unreadable",
            Outcome::HandoffFailed => "handoff_failed",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    app_id: String,
    outcome: &'static str,
}

/// The process's callback metrics.
pub struct CallbackMetrics {
    pushes: Family<Labels, Counter>,
}

impl CallbackMetrics {
    pub fn global() -> &'static CallbackMetrics {
        static METRICS: OnceLock<CallbackMetrics> = OnceLock::new();
        METRICS.get_or_init(|| CallbackMetrics {
            pushes: Family::default(),
        })
    }

    pub fn count(&self, app_id: &str, outcome: Outcome) {
        self.pushes
            .get_or_create(&Labels {
                app_id: app_id.to_string(),
                outcome: outcome.reason(),
            })
            .inc();
    }

    /// How many calls `app_id` had with `outcome` (tests).
    pub fn get(&self, app_id: &str, outcome: Outcome) -> u64 {
        self.pushes
            .get_or_create(&Labels {
                app_id: app_id.to_string(),
                outcome: outcome.reason(),
            })
            .get()
    }

    pub fn register(&'static self, registry: &mut Registry) {
        registry.register(
            "wxpush_callback_pushes",
            "Calls to the WeChat callback URL, by app and what became of them",
            self.pushes.clone(),
        );
    }
}
