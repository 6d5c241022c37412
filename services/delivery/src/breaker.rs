//! A circuit breaker per app (the `failsafe` crate) around WeChat send
//! calls: consecutive transient failures open it, so an outage turns into
//! waiting instead of hammering WeChat; after the open period calls are let
//! through half-open and the first success closes it again.

use crate::config::BreakerSettings;
use failsafe::backoff::Exponential;
use failsafe::failure_policy::ConsecutiveFailures;
use failsafe::{Config, Instrument, StateMachine};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wxpush_metrics::prometheus_client::encoding::EncodeLabelSet;
use wxpush_metrics::prometheus_client::metrics::counter::Counter;
use wxpush_metrics::prometheus_client::metrics::family::Family;
use wxpush_metrics::prometheus_client::metrics::gauge::Gauge;
use wxpush_metrics::prometheus_client::registry::Registry;

/// A breaker's state as operators see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open,
    HalfOpen,
}

/// What the state machine reports, kept for `GetBreakerState` and metrics
/// (failsafe does not expose its state).
#[derive(Default)]
struct Tracker {
    state: AtomicU8,
    opened_at_ms: AtomicI64,
    opens_in_a_row: AtomicU32,
    min_secs: u64,
    max_secs: u64,
}

impl Tracker {
    fn state(&self) -> State {
        match self.state.load(Ordering::SeqCst) {
            1 => State::Open,
            2 => State::HalfOpen,
            _ => State::Closed,
        }
    }
}

/// The labels of the breaker metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppLabel {
    pub app_id: String,
}

/// The state set's labels: one series per app and state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    app_id: String,
    state: &'static str,
}

/// The `state` label values: the names of `wxpush.v1.BreakerState`, as
/// `GetBreakerState` and `wxpush breaker` show them.
const STATE_NAMES: [(u8, &str); 3] = [(0, "CLOSED"), (1, "OPEN"), (2, "HALF_OPEN")];

/// Breaker metrics: the state per app as a state set (1 for the current
/// state, 0 for the others) and calls rejected while open.
#[derive(Clone, Default)]
pub struct BreakerMetrics {
    state: Family<StateLabels, Gauge>,
    rejected: Family<AppLabel, Counter>,
}

impl BreakerMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "wxpush_breaker_state",
            "Circuit breaker state per app around WeChat sends, as a state set: 1 for the current state (CLOSED, OPEN, HALF_OPEN)",
            self.state.clone(),
        );
        registry.register(
            "wxpush_breaker_rejected",
            "Sends not attempted because the app's breaker was open",
            self.rejected.clone(),
        );
    }
}

#[derive(Clone)]
struct Tracked {
    tracker: Arc<Tracker>,
    app: AppLabel,
    metrics: BreakerMetrics,
}

impl Tracked {
    fn set(&self, state: u8) -> u8 {
        for (value, name) in STATE_NAMES {
            self.metrics
                .state
                .get_or_create(&StateLabels {
                    app_id: self.app.app_id.clone(),
                    state: name,
                })
                .set(i64::from(value == state));
        }
        self.tracker.state.swap(state, Ordering::SeqCst)
    }
}

impl Instrument for Tracked {
    fn on_call_rejected(&self) {
        self.metrics.rejected.get_or_create(&self.app).inc();
    }
    fn on_open(&self) {
        self.tracker.opened_at_ms.store(now_ms(), Ordering::SeqCst);
        self.tracker.opens_in_a_row.fetch_add(1, Ordering::SeqCst);
        self.set(1);
        tracing::warn!(app_id = %self.app.app_id, "circuit breaker opened");
    }
    fn on_half_open(&self) {
        self.set(2);
    }
    fn on_closed(&self) {
        self.tracker.opens_in_a_row.store(0, Ordering::SeqCst);
        if self.set(0) != 0 {
            tracing::info!(app_id = %self.app.app_id, "circuit breaker closed");
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

type Machine = StateMachine<ConsecutiveFailures<Exponential>, Tracked>;

/// One app's breaker.
#[derive(Clone)]
pub struct Breaker {
    machine: Machine,
    tracker: Arc<Tracker>,
    consecutive_failures: Arc<AtomicU32>,
    /// When the half-open probe in flight started (ms), 0 when none.
    probe_started_ms: Arc<AtomicI64>,
}

/// A half-open probe that never reported back (its caller gave up before
/// calling WeChat) stops blocking others after this.
const PROBE_TIMEOUT_MS: i64 = 10_000;

/// A snapshot for `GetBreakerState`.
#[derive(Debug, Clone)]
pub struct BreakerView {
    pub app_id: String,
    pub state: State,
    pub consecutive_failures: u32,
    /// While open: when calls are let through again.
    pub next_probe_at: Option<SystemTime>,
}

impl Breaker {
    fn new(app_id: &str, s: &BreakerSettings, metrics: &BreakerMetrics) -> Self {
        let min = s.open_min_secs.max(1);
        let max = s.open_max_secs.max(min);
        let tracker = Arc::new(Tracker {
            min_secs: min,
            max_secs: max,
            ..Default::default()
        });
        let policy = failsafe::failure_policy::consecutive_failures(
            s.failure_threshold.max(1),
            failsafe::backoff::exponential(Duration::from_secs(min), Duration::from_secs(max)),
        );
        let instrument = Tracked {
            tracker: tracker.clone(),
            app: AppLabel {
                app_id: app_id.into(),
            },
            metrics: metrics.clone(),
        };
        let machine = Config::new()
            .failure_policy(policy)
            .instrument(instrument)
            .build();
        Self {
            machine,
            tracker,
            consecutive_failures: Arc::default(),
            probe_started_ms: Arc::default(),
        }
    }

    /// Whether a call may go to WeChat now (moves open to half-open when the
    /// open period is over).
    /// While half-open only one call (the probe) goes through at a time, so
    /// a recovering WeChat is not hit by every waiting message at once.
    pub fn permits(&self) -> bool {
        if !self.machine.is_call_permitted() {
            return false;
        }
        if self.tracker.state() != State::HalfOpen {
            return true;
        }
        let now = now_ms();
        let started = self.probe_started_ms.load(Ordering::SeqCst);
        let free = started == 0 || now - started > PROBE_TIMEOUT_MS;
        free && self
            .probe_started_ms
            .compare_exchange(started, now, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// WeChat answered properly (whatever it said about the message).
    pub fn healthy(&self) {
        self.probe_started_ms.store(0, Ordering::SeqCst);
        self.consecutive_failures.store(0, Ordering::SeqCst);
        self.machine.on_success();
    }

    /// WeChat failed transiently.
    pub fn unhealthy(&self) {
        self.probe_started_ms.store(0, Ordering::SeqCst);
        self.consecutive_failures.fetch_add(1, Ordering::SeqCst);
        self.machine.on_error();
    }

    /// How long until calls are let through again (zero unless open).
    pub fn retry_after(&self) -> Duration {
        self.next_probe_at()
            .and_then(|t| t.duration_since(SystemTime::now()).ok())
            .unwrap_or(Duration::ZERO)
    }

    /// When a message held back by this breaker should be looked at again
    /// (ms since the epoch): the end of the open period, at least
    /// [`MIN_HOLD`] from now (so a half-open breaker busy with its probe is
    /// not polled in a loop).
    pub fn hold_until_ms(&self) -> i64 {
        now_ms() + self.retry_after().max(MIN_HOLD).as_millis() as i64
    }

    fn next_probe_at(&self) -> Option<SystemTime> {
        if self.tracker.state() != State::Open {
            return None;
        }
        let opens = self.tracker.opens_in_a_row.load(Ordering::SeqCst).max(1);
        let secs = (self.tracker.min_secs << (opens - 1).min(16)).min(self.tracker.max_secs);
        let opened = self.tracker.opened_at_ms.load(Ordering::SeqCst).max(0) as u64;
        Some(UNIX_EPOCH + Duration::from_millis(opened) + Duration::from_secs(secs))
    }

    pub fn state(&self) -> State {
        self.tracker.state()
    }
}

/// Shortest wait for a message held back by a breaker.
pub const MIN_HOLD: Duration = Duration::from_millis(500);

/// Every app's breaker, created on first use.
#[derive(Clone)]
pub struct Breakers {
    settings: BreakerSettings,
    by_app: Arc<Mutex<HashMap<String, Breaker>>>,
    metrics: BreakerMetrics,
}

impl Breakers {
    pub fn new(settings: BreakerSettings) -> Self {
        Self {
            settings,
            by_app: Arc::default(),
            metrics: BreakerMetrics::default(),
        }
    }

    /// The breaker metrics, to register on the admin port.
    pub fn metrics(&self) -> &BreakerMetrics {
        &self.metrics
    }

    /// The app's breaker.
    pub fn get(&self, app_id: &str) -> Breaker {
        let mut map = self.by_app.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(app_id.to_string())
            .or_insert_with(|| Breaker::new(app_id, &self.settings, &self.metrics))
            .clone()
    }

    /// Snapshots of one app's breaker or all, by app id.
    pub fn views(&self, app_id: Option<&str>) -> Vec<BreakerView> {
        let map = self.by_app.lock().unwrap_or_else(|p| p.into_inner());
        let mut views: Vec<BreakerView> = map
            .iter()
            .filter(|(id, _)| app_id.is_none_or(|a| a == id.as_str()))
            .map(|(id, b)| BreakerView {
                app_id: id.clone(),
                state: b.state(),
                consecutive_failures: b.consecutive_failures.load(Ordering::SeqCst),
                next_probe_at: b.next_probe_at(),
            })
            .collect();
        views.sort_by(|a, b| a.app_id.cmp(&b.app_id));
        views
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_closes_after_a_half_open_success() {
        let breakers = Breakers::new(BreakerSettings {
            failure_threshold: 3,
            open_min_secs: 1,
            open_max_secs: 1,
            ..Default::default()
        });
        let b = breakers.get("wx1");
        for _ in 0..3 {
            assert!(b.permits());
            b.unhealthy();
        }
        assert_eq!(b.state(), State::Open);
        assert!(!b.permits());
        assert!(b.retry_after() > Duration::ZERO);
        std::thread::sleep(Duration::from_millis(1100));
        assert!(b.permits());
        assert_eq!(b.state(), State::HalfOpen);
        assert!(!b.permits(), "one probe at a time while half-open");
        b.healthy();
        assert!(b.permits());
        assert_eq!(breakers.views(Some("wx1"))[0].state, State::Closed);
        let registry = wxpush_metrics::SharedRegistry::new();
        registry.register_with(|r| breakers.metrics().register(r));
        let text = registry.encode();
        assert!(
            text.contains(r#"wxpush_breaker_state{app_id="wx1",state="CLOSED"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"wxpush_breaker_state{app_id="wx1",state="OPEN"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"wxpush_breaker_rejected_total{app_id="wx1"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn healthy_answers_reset_the_count() {
        let b = Breakers::new(BreakerSettings {
            failure_threshold: 2,
            ..Default::default()
        })
        .get("wx1");
        for _ in 0..10 {
            b.unhealthy();
            b.healthy();
        }
        assert_eq!(b.state(), State::Closed);
    }
}
