//! What happens to a message after each outcome: its status and its next
//! step. One pure function for both ways a message travels, a sync `Send`
//! (a caller waits) and the queue (SendAsync, SendBatch, replays, sync sends
//! handed over), so the two can only differ where this table says so:
//!
//! - a final failure is dead-lettered only from the queue (a sync caller
//!   holds the FAILED result itself);
//! - attempt budget spent: FAILED for a sync caller, DEAD (dead-lettered)
//!   in the queue;
//! - a sync send also ends when its deadline would pass, and while WeChat
//!   cannot take messages (breaker open, daily quota) it follows the
//!   configured fallback: hand over to the queue (DEFERRED) or refuse.
//!
//! Transient WeChat failures count against the attempt budget only while
//! the breaker is closed: during an outage a message waits for the breaker
//! instead of spending its attempts on it.

use crate::config::SyncFallback;
use crate::policy::Action;
use std::time::Duration;
use wxpush_proto::v1::DeliveryStatus;

/// What happened this time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// WeChat answered (or failed to); the policy's reading of it.
    Answered(Action),
    /// The breaker let no call through: nothing was sent.
    Blocked,
    /// The app's rate limit let no call through now: nothing was sent; the
    /// limiter's wait until one may go.
    Limited(Duration),
    /// The template or token service failed (queue only; a sync caller
    /// gets that error as it is).
    Upstream { transient: bool },
}

/// Who waits for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// A caller (sync `Send`); `out_of_time`: the next backoff would pass
    /// its deadline.
    Sync {
        out_of_time: bool,
        fallback: SyncFallback,
    },
    /// The durable queue.
    Queued,
}

/// A message's counters, carried from attempt to attempt (in the queue:
/// inside the queued message).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// WeChat calls made (the attempt numbers in the log).
    pub attempts: u32,
    /// Transient failures counted against the attempt budget.
    pub failures: u32,
    /// The token was replaced once already (a second bad token is final).
    pub token_refreshed: bool,
}

/// Why a message cannot go to WeChat now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// The app's breaker is open: WeChat is failing.
    Breaker,
    /// The app's daily quota is used up (45009).
    Quota,
    /// The app is over its send rate (`rate_limit.per_second`) for this
    /// long.
    Rate(Duration),
}

/// The step after an outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The status is final.
    Finish { dead_letter: bool },
    /// Replace the token, then attempt again at once.
    RefreshToken,
    /// Attempt again after the backoff.
    Backoff,
    /// Wait in the queue until the hold ends (a sync send is handed over).
    Wait(Hold),
    /// Sync only: answer with an RPC error; the caller retries later.
    Refuse(Hold),
}

/// The status to record, the next step, the counters after this outcome,
/// and whether the outcome is written to the log (a refusal before any
/// attempt never created a message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub status: DeliveryStatus,
    pub next: Next,
    pub tally: Tally,
    pub logged: bool,
}

/// The decision after `outcome`, given the counters before it, the path,
/// whether the breaker is open now and the attempt budget.
pub fn decide(
    outcome: Outcome,
    before: Tally,
    path: Path,
    breaker_open: bool,
    max_attempts: u32,
) -> Decision {
    use DeliveryStatus::*;
    let queued = path == Path::Queued;
    let out_of_time = matches!(
        path,
        Path::Sync {
            out_of_time: true,
            ..
        }
    );
    let decision = |status, next, tally| Decision {
        status,
        next,
        tally,
        logged: true,
    };
    let fail = |tally| {
        decision(
            Failed,
            Next::Finish {
                dead_letter: queued,
            },
            tally,
        )
    };
    let spent = |tally| match path {
        Path::Queued => decision(Dead, Next::Finish { dead_letter: true }, tally),
        Path::Sync { .. } => decision(Failed, Next::Finish { dead_letter: false }, tally),
    };
    let hold = |h, tally: Tally| match path {
        Path::Sync {
            fallback: SyncFallback::Unavailable,
            ..
        } => Decision {
            logged: tally.attempts > 0,
            ..decision(Failed, Next::Refuse(h), tally)
        },
        _ => decision(Deferred, Next::Wait(h), tally),
    };
    match outcome {
        Outcome::Answered(Action::Done) => {
            decision(Sent, Next::Finish { dead_letter: false }, before)
        }
        Outcome::Answered(Action::Fail) | Outcome::Upstream { transient: false } => fail(before),
        Outcome::Answered(Action::RefreshToken) if before.token_refreshed || out_of_time => {
            fail(before)
        }
        Outcome::Answered(Action::RefreshToken) => decision(
            Retrying,
            Next::RefreshToken,
            Tally {
                token_refreshed: true,
                ..before
            },
        ),
        Outcome::Answered(Action::Defer) => hold(Hold::Quota, before),
        Outcome::Blocked => hold(Hold::Breaker, before),
        // A sync caller is refused whatever the fallback: the queue would
        // only pace it later, the caller can as well.
        Outcome::Limited(wait) => match path {
            Path::Queued => decision(Deferred, Next::Wait(Hold::Rate(wait)), before),
            Path::Sync { .. } => Decision {
                logged: before.attempts > 0,
                ..decision(Failed, Next::Refuse(Hold::Rate(wait)), before)
            },
        },
        Outcome::Answered(Action::Retry) | Outcome::Upstream { transient: true } => {
            let counted = Tally {
                failures: before.failures + 1,
                ..before
            };
            let wechat_down = matches!(outcome, Outcome::Answered(_)) && breaker_open;
            if counted.failures >= max_attempts.max(1) {
                spent(counted)
            } else if wechat_down {
                hold(Hold::Breaker, before)
            } else if out_of_time {
                fail(counted)
            } else {
                decision(Retrying, Next::Backoff, counted)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeliveryStatus::*;

    const MAX: u32 = 3;
    const PACE: Duration = Duration::from_millis(50);

    fn tally(attempts: u32, failures: u32, token_refreshed: bool) -> Tally {
        Tally {
            attempts,
            failures,
            token_refreshed,
        }
    }

    const SYNC: Path = Path::Sync {
        out_of_time: false,
        fallback: SyncFallback::Queue,
    };
    const SYNC_LATE: Path = Path::Sync {
        out_of_time: true,
        fallback: SyncFallback::Queue,
    };
    const SYNC_REFUSE: Path = Path::Sync {
        out_of_time: false,
        fallback: SyncFallback::Unavailable,
    };

    /// What a path does: the status and the next step.
    type Does = (DeliveryStatus, Next);
    /// (name, outcome, counters before, breaker open, sync path, sync does, queued does)
    type Row = (&'static str, Outcome, Tally, bool, Path, Does, Does);

    /// Every outcome, sync and queued side by side: (what happened, the
    /// counters before, breaker open, sync path) → (sync status, sync next)
    /// and (queued status, queued next).
    #[test]
    fn every_outcome_for_sync_and_queued_side_by_side() {
        use Action as A;
        use Next as N;
        use Outcome::*;
        let fin = |dead_letter| N::Finish { dead_letter };
        #[rustfmt::skip]
        let table: &[Row] = &[
            ("sent",                     Answered(A::Done),         tally(1, 0, false), false, SYNC,        (Sent, fin(false)),      (Sent, fin(false))),
            ("permanent errcode",        Answered(A::Fail),         tally(1, 0, false), false, SYNC,        (Failed, fin(false)),    (Failed, fin(true))),
            ("bad token, first time",    Answered(A::RefreshToken), tally(1, 0, false), false, SYNC,        (Retrying, N::RefreshToken),(Retrying, N::RefreshToken)),
            ("bad token, again",         Answered(A::RefreshToken), tally(2, 0, true),  false, SYNC,        (Failed, fin(false)),    (Failed, fin(true))),
            ("bad token, no time left",  Answered(A::RefreshToken), tally(1, 0, false), false, SYNC_LATE,   (Failed, fin(false)),    (Retrying, N::RefreshToken)),
            ("busy, budget left",        Answered(A::Retry),        tally(1, 0, false), false, SYNC,        (Retrying, N::Backoff),     (Retrying, N::Backoff)),
            ("busy, budget spent",       Answered(A::Retry),        tally(3, 2, false), false, SYNC,        (Failed, fin(false)),    (Dead, fin(true))),
            ("busy, no time left",       Answered(A::Retry),        tally(1, 0, false), false, SYNC_LATE,   (Failed, fin(false)),    (Retrying, N::Backoff)),
            ("busy, breaker opened",     Answered(A::Retry),        tally(1, 0, false), true,  SYNC,        (Deferred, N::Wait(Hold::Breaker)), (Deferred, N::Wait(Hold::Breaker))),
            ("busy, breaker opened, refuse", Answered(A::Retry),    tally(1, 0, false), true,  SYNC_REFUSE, (Failed, N::Refuse(Hold::Breaker)), (Deferred, N::Wait(Hold::Breaker))),
            ("busy, opened, budget spent", Answered(A::Retry),      tally(3, 2, false), true,  SYNC,        (Failed, fin(false)),    (Dead, fin(true))),
            ("quota",                    Answered(A::Defer),        tally(1, 0, false), false, SYNC,        (Deferred, N::Wait(Hold::Quota)),   (Deferred, N::Wait(Hold::Quota))),
            ("quota, refuse",            Answered(A::Defer),        tally(1, 0, false), false, SYNC_REFUSE, (Failed, N::Refuse(Hold::Quota)),   (Deferred, N::Wait(Hold::Quota))),
            ("breaker open, no call",    Blocked,                tally(0, 0, false), true,  SYNC,        (Deferred, N::Wait(Hold::Breaker)), (Deferred, N::Wait(Hold::Breaker))),
            ("breaker open, refuse",     Blocked,                tally(0, 0, false), true,  SYNC_REFUSE, (Failed, N::Refuse(Hold::Breaker)), (Deferred, N::Wait(Hold::Breaker))),
            ("over the rate limit",      Limited(PACE),          tally(0, 0, false), false, SYNC,        (Failed, N::Refuse(Hold::Rate(PACE))), (Deferred, N::Wait(Hold::Rate(PACE)))),
            ("upstream down",            Upstream { transient: true },  tally(0, 0, false), false, SYNC, (Retrying, N::Backoff),     (Retrying, N::Backoff)),
            ("upstream down, spent",     Upstream { transient: true },  tally(0, 2, false), false, SYNC, (Failed, fin(false)),    (Dead, fin(true))),
            ("upstream down, breaker open", Upstream { transient: true }, tally(0, 0, false), true, SYNC, (Retrying, N::Backoff),    (Retrying, N::Backoff)),
            ("upstream refuses",         Upstream { transient: false }, tally(0, 0, false), false, SYNC, (Failed, fin(false)),    (Failed, fin(true))),
        ];
        for (name, outcome, before, open, sync, want_sync, want_queued) in table {
            let s = decide(*outcome, *before, *sync, *open, MAX);
            let q = decide(*outcome, *before, Path::Queued, *open, MAX);
            assert_eq!((s.status, s.next), *want_sync, "sync: {name}");
            assert_eq!((q.status, q.next), *want_queued, "queued: {name}");
        }
    }

    #[test]
    fn counters_move_only_where_they_should() {
        let busy = Outcome::Answered(Action::Retry);
        let before = tally(1, 1, false);
        assert_eq!(
            decide(busy, before, Path::Queued, false, MAX)
                .tally
                .failures,
            2
        );
        // Waiting for the breaker spends nothing.
        assert_eq!(decide(busy, before, Path::Queued, true, MAX).tally, before);
        let refresh = decide(
            Outcome::Answered(Action::RefreshToken),
            before,
            Path::Queued,
            false,
            MAX,
        );
        assert!(refresh.tally.token_refreshed);
        assert_eq!(refresh.tally.failures, 1);
    }

    #[test]
    fn a_refusal_before_any_attempt_leaves_no_log_record() {
        let refused = decide(Outcome::Blocked, tally(0, 0, false), SYNC_REFUSE, true, MAX);
        assert!(!refused.logged);
        let after_attempts = decide(Outcome::Blocked, tally(2, 1, false), SYNC_REFUSE, true, MAX);
        assert!(after_attempts.logged);
        assert!(
            decide(
                Outcome::Blocked,
                tally(0, 0, false),
                Path::Queued,
                true,
                MAX
            )
            .logged
        );
    }
}
