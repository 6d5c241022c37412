//! Queue metrics: how much waits and for how long, retries scheduled,
//! messages deferred by reason, dead letters. No per-message labels.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    /// ready (in the stream, held or not) | delayed (waiting for its time)
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// breaker | quota | schedule
    pub reason: &'static str,
}

/// The queue's metric families; cheap to clone.
#[derive(Clone, Default)]
pub struct QueueMetrics {
    depth: Family<StateLabel, Gauge>,
    oldest_age: Gauge,
    dead: Gauge,
    retries: Counter,
    deferred: Family<ReasonLabel, Counter>,
    uncertain: Family<DecisionLabel, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabel {
    /// report | resend
    pub decision: &'static str,
}

impl QueueMetrics {
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "wxpush_queue_depth",
            "Messages waiting, by state",
            self.depth.clone(),
        );
        r.register(
            "wxpush_queue_oldest_age_seconds",
            "Age of the oldest ready message",
            self.oldest_age.clone(),
        );
        r.register(
            "wxpush_dead_letters",
            "Messages in the dead-letter store",
            self.dead.clone(),
        );
        r.register(
            "wxpush_queue_retries_scheduled",
            "Retries scheduled as delayed re-queues",
            self.retries.clone(),
        );
        r.register(
            "wxpush_queue_deferred",
            "Messages deferred, by reason (breaker open, daily quota, rate limit, send_at / quiet hours)",
            self.deferred.clone(),
        );
        r.register(
            "wxpush_uncertain_sends",
            "Subscribe messages whose last attempt may or may not have reached WeChat (its worker died during it), by what was done: report (not sent again) or resend",
            self.uncertain.clone(),
        );
    }

    pub(crate) fn uncertain(&self, decision: &'static str) {
        self.uncertain
            .get_or_create(&DecisionLabel { decision })
            .inc();
    }

    pub(crate) fn observe(&self, d: &super::Depth) {
        self.depth
            .get_or_create(&StateLabel { state: "ready" })
            .set(d.ready as i64);
        self.depth
            .get_or_create(&StateLabel { state: "delayed" })
            .set(d.delayed as i64);
        self.oldest_age.set(d.oldest_age.as_secs() as i64);
        self.dead.set(d.dead as i64);
    }

    pub(crate) fn retry(&self) {
        self.retries.inc();
    }

    pub(crate) fn deferred(&self, reason: &'static str) {
        self.deferred.get_or_create(&ReasonLabel { reason }).inc();
    }
}
