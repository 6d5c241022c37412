//! WeChat's receipts into the log: a `TEMPLATESENDJOBFINISH` push (read
//! from the callback stream) gives the record of the message WeChat
//! accepted as its msgid the final status DELIVERED, BLOCKED or
//! UNDELIVERED, at the receipt's time; a Mini Program's
//! `subscribe_msg_sent_event` does the same for subscribe messages
//! (DELIVERED or UNDELIVERED).
//!
//! A receipt is a delivery event like any other ([`receipt_event`]), folded
//! by the same code, so a repeated receipt changes nothing (its event id is
//! the push's) and a late SENT never moves the status back
//! ([`crate::record`]). A receipt can arrive before the SENT record it
//! names: it is left unacknowledged in the stream and read again (when the
//! reader is idle, and after a restart) until the record is there, for at
//! most [`wxpush_events::callbacks::WAIT_AT_MOST`]; then it is dropped (logged).

use crate::error::StoreError;
use crate::metrics::LogQueryMetrics;
use crate::store::LogStore;
use crate::tail::Tail;
use std::sync::Arc;
use wxpush_events::callbacks::{HandedOn, Handled, PushSource, follow, status_of};
use wxpush_proto::v1::{DeliveryEvent, LogRecord};
use wxpush_wechat::push::ReceiptOutcome;

/// What became of one push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    /// Folded into its record (or already was: a repeat).
    Applied,
    /// Its record is not (yet) in the log.
    NoRecord,
    /// Not a receipt: nothing for the log.
    NotAReceipt,
}

/// The receipt as an event of `record`'s message.
pub fn receipt_event(
    pushed: &HandedOn,
    outcome: ReceiptOutcome,
    record: &LogRecord,
) -> DeliveryEvent {
    let at_ms = pushed.pushed_at_ms();
    DeliveryEvent {
        event_id: format!("receipt/{}", pushed.event_id),
        message_id: record.message_id.clone(),
        trace_id: record.trace_id.clone(),
        app_id: record.app_id.clone(),
        openid: record.openid.clone(),
        template_key: record.template_key.clone(),
        template_id: record.template_id.clone(),
        kind: record.kind,
        attempt: 0,
        status: status_of(outcome) as i32,
        accepted_at: record.accepted_at,
        occurred_at: Some(wxpush_proto::timestamp_from_micros(at_ms * 1_000)),
        ..Default::default()
    }
}

/// Folds one push into the log when it carries receipts whose records are
/// there (all of them, or it waits: applying one again changes nothing);
/// a record it changed goes to the live tail, and a receipt applied for the
/// first time is counted (by status, and its delay after SENT).
pub async fn apply(
    store: &dyn LogStore,
    tail: &Tail,
    pushed: &HandedOn,
) -> Result<Receipt, StoreError> {
    let receipts = pushed.receipts();
    if receipts.is_empty() {
        return Ok(Receipt::NotAReceipt);
    }
    let mut found = Vec::with_capacity(receipts.len());
    for r in receipts {
        match store.by_wechat_msgid(&pushed.app_id, r.msg_id).await? {
            Some(record) => found.push((record, r.outcome)),
            None => return Ok(Receipt::NoRecord),
        }
    }
    let several = found.len() > 1;
    for (n, (record, outcome)) in found.into_iter().enumerate() {
        let mut event = receipt_event(pushed, outcome, &record);
        if several {
            event.event_id = format!("{}/{n}", event.event_id);
        }
        let changed = store.apply(std::slice::from_ref(&event)).await?;
        if changed.is_empty() {
            continue;
        }
        let micros = |t: Option<wxpush_proto::Timestamp>| {
            t.map(|t| t.seconds * 1_000_000 + i64::from(t.nanos) / 1_000)
        };
        let delay = match (micros(record.sent_at), micros(event.occurred_at)) {
            (Some(sent), Some(at)) => Some((at - sent).max(0) as f64 / 1e6),
            _ => None,
        };
        LogQueryMetrics::global().receipt(&record, status_of(outcome), delay);
        tail.publish(changed).await;
    }
    Ok(Receipt::Applied)
}

/// Reads the callback stream until `stop`: receipts folded in, other
/// pushes acknowledged, a receipt without its record left for later.
pub async fn run(
    source: Arc<dyn PushSource>,
    store: Arc<dyn LogStore>,
    tail: Tail,
    stop: impl std::future::Future<Output = ()>,
) {
    follow(source, "log", stop, |pushed| {
        let (store, tail) = (store.clone(), tail.clone());
        async move {
            match apply(store.as_ref(), &tail, &pushed).await {
                Ok(Receipt::Applied | Receipt::NotAReceipt) => Handled::Done,
                Ok(Receipt::NoRecord) => Handled::Waiting,
                Err(e) => Handled::Failed(e.to_string()),
            }
        }
    })
    .await
}
