//! The log query service's own metrics, beside the RPC ones: how far
//! ingestion trails the deliveries, and records dropped to stay bounded
//! (the memory backend's record count, both backends' retention), so a
//! log that silently forgets shows on a dashboard. Process-wide, like the
//! ingestion task.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
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

/// A receipt's labels: the template key is configuration (bounded), the
/// openid never a label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReceiptLabels {
    app_id: String,
    template_key: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppLabel {
    app_id: String,
}

/// Seconds from SENT to WeChat's receipt: 0.1 s to about 2 h.
fn receipt_delay_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.1, 3.0, 10))
}

/// The metric families.
pub struct LogQueryMetrics {
    lag: Gauge<f64, AtomicU64>,
    removed: Family<ReasonLabel, Counter>,
    receipts: Family<ReceiptLabels, Counter>,
    receipt_delay: Family<AppLabel, Histogram, fn() -> Histogram>,
}

impl LogQueryMetrics {
    /// The process's metrics.
    pub fn global() -> &'static LogQueryMetrics {
        static METRICS: OnceLock<LogQueryMetrics> = OnceLock::new();
        METRICS.get_or_init(|| {
            let m = LogQueryMetrics {
                lag: Gauge::default(),
                removed: Family::default(),
                receipts: Family::default(),
                receipt_delay: Family::new_with_constructor(receipt_delay_histogram),
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
        r.register(
            "wxpush_logquery_receipts",
            "WeChat receipts applied to log records, by app, template key and final status (delivered, blocked, undelivered)",
            self.receipts.clone(),
        );
        r.register(
            "wxpush_logquery_receipt_delay_seconds",
            "Seconds from a message's SENT to WeChat's receipt for it",
            self.receipt_delay.clone(),
        );
    }

    /// A receipt gave `record` its final `status`, `delay` seconds after
    /// it was SENT (when known).
    pub fn receipt(
        &self,
        record: &wxpush_proto::v1::LogRecord,
        status: wxpush_proto::v1::DeliveryStatus,
        delay: Option<f64>,
    ) {
        use wxpush_proto::v1::DeliveryStatus::*;
        let status = match status {
            Delivered => "delivered",
            Blocked => "blocked",
            _ => "undelivered",
        };
        self.receipts
            .get_or_create(&ReceiptLabels {
                app_id: record.app_id.clone(),
                template_key: record.template_key.clone(),
                status,
            })
            .inc();
        if let Some(delay) = delay {
            self.receipt_delay
                .get_or_create(&AppLabel {
                    app_id: record.app_id.clone(),
                })
                .observe(delay);
        }
    }

    /// Receipts applied so far for `app_id` with `status` (tests).
    pub fn receipts_so_far(&self, app_id: &str, template_key: &str, status: &'static str) -> u64 {
        self.receipts
            .get_or_create(&ReceiptLabels {
                app_id: app_id.into(),
                template_key: template_key.into(),
                status,
            })
            .get()
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
