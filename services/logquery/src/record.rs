//! One record per message, built from its delivery events. Applying the same
//! event twice changes nothing, so a replayed stream never duplicates an
//! attempt.

use prost::Message;
use wxpush_proto::v1::{Attempt, DeliveryEvent, DeliveryStatus, LogRecord};

/// The stored form of a [`StoredRecord`] (the Redis value): protobuf, so it
/// is compact and new `LogRecord` fields need no migration.
#[derive(Clone, PartialEq, prost::Message)]
struct StoredProto {
    #[prost(message, optional, tag = "1")]
    record: Option<LogRecord>,
    #[prost(string, repeated, tag = "2")]
    event_ids: Vec<String>,
}

/// A record plus the ids of the events already folded into it.
#[derive(Debug, Clone, Default)]
pub struct StoredRecord {
    pub record: LogRecord,
    pub event_ids: Vec<String>,
}

impl StoredRecord {
    /// A record for the first event seen of a message.
    pub fn new(e: &DeliveryEvent) -> Self {
        Self {
            record: LogRecord {
                message_id: e.message_id.clone(),
                trace_id: e.trace_id.clone(),
                app_id: e.app_id.clone(),
                openid: e.openid.clone(),
                template_key: e.template_key.clone(),
                template_id: e.template_id.clone(),
                kind: e.kind,
                accepted_at: e.accepted_at,
                caller: e.caller.clone(),
                ..Default::default()
            },
            event_ids: Vec::new(),
        }
    }

    /// The bytes a backend stores.
    pub fn encode(&self) -> Vec<u8> {
        StoredProto {
            record: Some(self.record.clone()),
            event_ids: self.event_ids.clone(),
        }
        .encode_to_vec()
    }

    /// Reads bytes written by [`StoredRecord::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        let p = StoredProto::decode(bytes)?;
        Ok(Self {
            record: p.record.unwrap_or_default(),
            event_ids: p.event_ids,
        })
    }

    /// Folds one event in; returns false if it was already applied.
    pub fn apply(&mut self, e: &DeliveryEvent) -> bool {
        if self.event_ids.iter().any(|id| id == &e.event_id) {
            return false;
        }
        self.event_ids.push(e.event_id.clone());
        let r = &mut self.record;
        if e.attempt > 0 {
            let attempt = Attempt {
                attempt: e.attempt,
                status: e.status,
                errcode: e.errcode,
                errmsg: e.errmsg.clone(),
                wechat_msgid: e.wechat_msgid.clone(),
                latency_ms: e.latency_ms,
                occurred_at: e.occurred_at,
            };
            let at = r.history.partition_point(|a| a.attempt <= e.attempt);
            r.history.insert(at, attempt);
        }
        // The newest event decides the current state; attempts arrive in
        // order from one sender, but a replay may bring an old one late. A
        // receipt is WeChat's last word: nothing but another receipt moves
        // the status after it (its time has whole seconds only, so a SENT
        // of the same second may look newer). SENT is WeChat's acceptance:
        // a copy of the message a crashed worker left queued may still be
        // held back (DEFERRED) or fail after another copy was sent, and
        // that never takes the status back.
        let at = |t: Option<wxpush_proto::Timestamp>| t.map(|t| (t.seconds, t.nanos));
        let newest = match (rank(r.status), rank(e.status)) {
            (Rank::Receipt, Rank::Receipt) => at(e.occurred_at) > at(r.updated_at),
            (Rank::Receipt, _) | (Rank::Sent, Rank::Live) => false,
            (_, Rank::Receipt) | (Rank::Live, Rank::Sent) => true,
            _ => r.updated_at.is_none() || at(e.occurred_at) >= at(r.updated_at),
        };
        if newest {
            r.status = e.status;
            r.updated_at = e.occurred_at;
            if e.attempt > 0 {
                r.errcode = e.errcode;
                r.errmsg = e.errmsg.clone();
                r.latency_ms = e.latency_ms;
            }
        }
        if !e.data_json.is_empty() {
            r.data_json = e.data_json.clone();
        }
        // The sender's events name it; WeChat's receipts do not.
        if r.caller.is_empty() && !e.caller.is_empty() {
            r.caller = e.caller.clone();
        }
        if e.status == DeliveryStatus::Sent as i32 {
            r.wechat_msgid = e.wechat_msgid.clone();
            r.sent_at = e.occurred_at;
        }
        r.attempts = r.history.iter().map(|a| a.attempt).max().unwrap_or(0);
        true
    }
}

/// Whether `status` comes from WeChat's receipt (DELIVERED, BLOCKED,
/// UNDELIVERED): final, after SENT.
pub fn is_receipt(status: i32) -> bool {
    use DeliveryStatus::*;
    matches!(
        DeliveryStatus::try_from(status),
        Ok(Delivered | Blocked | Undelivered)
    )
}

/// How far a status has come: only a later rank, or the same one newer,
/// replaces it (SENT by another SENT; a receipt by a newer receipt).
#[derive(PartialEq)]
enum Rank {
    /// Accepted, queued, retrying, held, failed, dead-lettered, replayed.
    Live,
    /// WeChat took the message.
    Sent,
    /// WeChat's receipt for it.
    Receipt,
}

fn rank(status: i32) -> Rank {
    if is_receipt(status) {
        Rank::Receipt
    } else if status == DeliveryStatus::Sent as i32 {
        Rank::Sent
    } else {
        Rank::Live
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(seconds: i64) -> Option<wxpush_proto::Timestamp> {
        Some(wxpush_proto::Timestamp { seconds, nanos: 0 })
    }

    fn ev(attempt: u32, status: DeliveryStatus, errcode: i64, at: i64) -> DeliveryEvent {
        DeliveryEvent {
            event_id: format!("m1/{attempt}"),
            message_id: "m1".into(),
            attempt,
            status: status as i32,
            errcode,
            occurred_at: ts(at),
            accepted_at: ts(0),
            ..Default::default()
        }
    }

    #[test]
    fn replays_do_not_duplicate_and_late_events_do_not_regress() {
        let first = ev(1, DeliveryStatus::Retrying, -1, 10);
        let second = ev(2, DeliveryStatus::Sent, 0, 20);
        let mut r = StoredRecord::new(&first);
        assert!(r.apply(&second));
        assert!(r.apply(&first));
        assert!(!r.apply(&first));
        assert!(!r.apply(&second));
        assert_eq!(r.record.attempts, 2);
        assert_eq!(
            r.record
                .history
                .iter()
                .map(|a| a.attempt)
                .collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(r.record.status, DeliveryStatus::Sent as i32);
        assert_eq!(r.record.errcode, 0);
        let back = StoredRecord::decode(&r.encode()).unwrap();
        assert_eq!(back.record, r.record);
        assert_eq!(back.event_ids, r.event_ids);
    }

    #[test]
    fn a_copy_held_or_failed_after_another_was_sent_leaves_it_sent() {
        // Two copies of one message (a crashed worker's entry and its
        // re-queued one): the first is sent, the second meets an open
        // breaker a moment later, then fails.
        let sent = ev(1, DeliveryStatus::Sent, 0, 10);
        let mut held = ev(1, DeliveryStatus::Deferred, 0, 11);
        held.event_id = "m1/held".into();
        let mut failed = ev(2, DeliveryStatus::Failed, 40001, 12);
        failed.event_id = "m1/failed".into();
        let mut r = StoredRecord::new(&sent);
        assert!(r.apply(&sent));
        assert!(r.apply(&held));
        assert!(r.apply(&failed));
        assert_eq!(r.record.status, DeliveryStatus::Sent as i32);
        assert_eq!(r.record.errcode, 0);
        // The other order too: SENT wins over a newer live status.
        let mut r = StoredRecord::new(&held);
        assert!(r.apply(&held));
        assert!(r.apply(&sent));
        assert_eq!(r.record.status, DeliveryStatus::Sent as i32);
        // A receipt still moves it, and nothing live moves the receipt.
        let mut receipt = ev(0, DeliveryStatus::Delivered, 0, 13);
        receipt.event_id = "receipt/m1".into();
        assert!(r.apply(&receipt));
        assert!(r.apply(&failed));
        assert_eq!(r.record.status, DeliveryStatus::Delivered as i32);
    }
}
