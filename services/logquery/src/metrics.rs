//! The log query service's own metrics, beside the RPC ones: how far
//! ingestion trails the deliveries, and records dropped to stay bounded
//! (the memory backend's record count, both backends' retention), so a
//! log that silently forgets shows on a dashboard. Process-wide, like the
//! ingestion task.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::OnceLock;
use std::sync::atomic::AtomicU64;

/// Why records left the log.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Removal {
    /// The memory backend was at `max_records`; the oldest went.
    MaxRecords,
    /// Past `retention_secs`.
    Retention,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

impl Removal {
    fn label(self) -> ReasonLabel {
        ReasonLabel {
            reason: match self {
                Removal::MaxRecords => "max_records",
                Removal::Retention => "retention",
            },
        }
    }
}

/// The metric families.
pub struct LogQueryMetrics {
    lag: Gauge<f64, AtomicU64>,
    removed: Family<ReasonLabel, Counter>,
}

impl LogQueryMetrics {
    /// The process's metrics.
    pub fn global() -> &'static LogQueryMetrics {
        static METRICS: OnceLock<LogQueryMetrics> = OnceLock::new();
        METRICS.get_or_init(|| {
            let m = LogQueryMetrics {
                lag: Gauge::default(),
                removed: Family::default(),
            };
            // Both series exist from the start (0 until something goes).
            for r in [Removal::MaxRecords, Removal::Retention] {
                let _ = m.removed.get_or_create(&r.label());
            }
            m
        })
    }

    /// Adds the families to a registry (the admin port's).
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "wxpush_logquery_ingest_lag_seconds",
            "Age of the newest delivery event in the last batch logquery applied",
            self.lag.clone(),
        );
        r.register(
            "wxpush_logquery_records_removed",
            "Log records dropped, by reason: max_records (memory backend full) or retention",
            self.removed.clone(),
        );
    }

    /// Ingestion applied a batch whose newest event is this old.
    pub fn ingest_lag(&self, ms: i64) {
        self.lag.set(ms.max(0) as f64 / 1000.0);
    }

    /// Records dropped so far for `why`.
    pub fn removed_so_far(&self, why: Removal) -> u64 {
        self.removed.get_or_create(&why.label()).get()
    }

    /// `n` records left the log.
    pub fn removed(&self, why: Removal, n: u64) {
        if n > 0 {
            self.removed.get_or_create(&why.label()).inc_by(n);
        }
    }
}
