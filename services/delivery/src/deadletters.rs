//! Operators' view of messages that ran out of attempts or failed for
//! good: list them (filter, pages) and put them back on the queue.

use crate::error::DeliveryError;
use crate::intake::Intake;
use crate::message::{MessageCtx, Step};
use crate::queue::DeadRecord;
use wxpush_auth::Operation;
use wxpush_proto::v1::*;
use wxpush_server::caller::Caller;
use wxpush_server::status::{Violation, check_timestamp};
use wxpush_server::trace_context::TraceContext;

/// Largest page of dead letters.
pub const MAX_PAGE_SIZE: usize = 500;
/// Most dead letters one replay by filter takes.
pub const MAX_REPLAY: usize = 10_000;
/// Most message ids one replay may name.
pub const MAX_REPLAY_IDS: usize = 1000;

/// A dead-letter filter's time range must hold valid timestamps.
fn check_dead_letter_filter(f: &DeadLetterFilter) -> Result<(), DeliveryError> {
    let v: Vec<Violation> = f
        .time_range
        .iter()
        .flat_map(|r| {
            [
                ("filter.time_range.start", &r.start),
                ("filter.time_range.end", &r.end),
            ]
        })
        .filter_map(|(field, t)| t.as_ref().and_then(|t| check_timestamp(field, t)))
        .collect();
    if v.is_empty() {
        Ok(())
    } else {
        Err(DeliveryError::InvalidArgument(v))
    }
}

/// The app a dead-letter call acts on: the filter's, if the caller may
/// replay it; the caller's one app when the filter names none; a caller of
/// several apps names one.
fn replay_scope(filter: &mut DeadLetterFilter) -> Result<(), DeliveryError> {
    let caller = Caller::current();
    if !filter.app_id.is_empty() {
        return caller
            .check(Operation::Replay, &filter.app_id, None)
            .map_err(DeliveryError::Denied);
    }
    match caller.apps() {
        None => Ok(()),
        Some(apps) if apps.len() == 1 => {
            filter.app_id = apps[0].clone();
            Ok(())
        }
        Some(apps) => Err(DeliveryError::InvalidArgument(vec![Violation::new(
            "filter.app_id",
            format!(
                "required: caller {} may replay for {} only",
                caller.name(),
                apps.join(", ")
            ),
        )])),
    }
}

impl Intake {
    /// Dead letters matching the filter, newest first.
    pub async fn list_dead_letters(
        &self,
        req: ListDeadLettersRequest,
    ) -> Result<ListDeadLettersResponse, DeliveryError> {
        let page_size = wxpush_server::paging::page_size(req.page_size, 50).min(MAX_PAGE_SIZE);
        if !req.page_token.is_empty() && crate::queue::decode_cursor(&req.page_token).is_none() {
            return Err(DeliveryError::InvalidArgument(vec![Violation::new(
                "page_token",
                "is not a token returned by ListDeadLetters",
            )]));
        }
        let mut filter = req.filter.unwrap_or_default();
        check_dead_letter_filter(&filter)?;
        replay_scope(&mut filter)?;
        let page = self
            .ledger
            .queue
            .dead_letters(&filter, page_size, &req.page_token)
            .await?;
        Ok(ListDeadLettersResponse {
            dead_letters: page.records.iter().map(DeadRecord::to_proto).collect(),
            next_page_token: page.next_page_token,
        })
    }

    /// Puts dead letters back on the queue with a fresh attempt budget.
    pub async fn replay_dead_letters(
        &self,
        req: ReplayDeadLettersRequest,
    ) -> Result<ReplayDeadLettersResponse, DeliveryError> {
        let ids = if req.message_ids.len() > MAX_REPLAY_IDS {
            return Err(DeliveryError::InvalidArgument(vec![Violation::new(
                "message_ids",
                format!(
                    "{} ids, at most {MAX_REPLAY_IDS} allowed",
                    req.message_ids.len()
                ),
            )]));
        } else if !req.message_ids.is_empty() && Caller::current().apps().is_none() {
            req.message_ids
        } else if !req.message_ids.is_empty() || req.filter.is_some() {
            // A caller of some apps replays ids of those only: the ids are
            // looked up under its app's filter.
            let mut filter = req.filter.unwrap_or_default();
            check_dead_letter_filter(&filter)?;
            replay_scope(&mut filter)?;
            let mut ids = Vec::new();
            let mut token = String::new();
            loop {
                let page = self
                    .ledger
                    .queue
                    .dead_letters(&filter, MAX_PAGE_SIZE, &token)
                    .await?;
                ids.extend(page.records.iter().map(|r| r.message.message_id.clone()));
                if page.next_page_token.is_empty() || ids.len() >= MAX_REPLAY {
                    break;
                }
                token = page.next_page_token;
            }
            if !req.message_ids.is_empty() {
                ids.retain(|id| req.message_ids.contains(id));
            }
            ids.truncate(MAX_REPLAY);
            ids
        } else {
            return Err(DeliveryError::InvalidArgument(vec![Violation::new(
                "message_ids",
                "give message_ids or a filter",
            )]));
        };
        let records = self.ledger.queue.exhume(&ids).await?;
        let mut replayed = Vec::with_capacity(records.len());
        for record in records {
            let mut m = record.message;
            m.failures = 0;
            m.token_refreshed = false;
            let trace = TraceContext::parse(&m.traceparent).unwrap_or_else(TraceContext::new_root);
            let ctx = MessageCtx::for_queued_unrendered(&m, &trace);
            let step = Step::change(
                DeliveryStatus::Queued,
                m.attempts,
                "replayed from the dead-letter store",
            );
            self.ledger.emit(&ctx, &step).await;
            self.ledger.reopen(&ctx, &m, &step).await?;
            replayed.push(m.message_id);
        }
        Ok(ReplayDeadLettersResponse {
            replayed: replayed.len() as u32,
            message_ids: replayed,
        })
    }

    /// The live status of a message.
    pub async fn get_message(
        &self,
        message_id: &str,
    ) -> Result<Option<DeliveryResult>, DeliveryError> {
        if message_id.trim().is_empty() {
            return Err(DeliveryError::InvalidArgument(vec![Violation::new(
                "message_id",
                "is required",
            )]));
        }
        // Another app's message is as unknown as a missing one.
        let caller = Caller::current();
        Ok(self
            .ledger
            .queue
            .status(message_id)
            .await?
            .filter(|r| caller.sees_app(&r.app_id)))
    }
}
