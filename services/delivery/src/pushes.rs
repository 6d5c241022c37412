//! WeChat's pushes, as delivery uses them (read from the callback stream
//! in its own consumer group, or `wxpush dev`'s in-process stream):
//! subscription answers go into the [`crate::consent`] ledger, and a
//! receipt gives the message it names its final status (DELIVERED,
//! BLOCKED, UNDELIVERED) for `GetMessage`. A receipt that comes before the
//! message's SENT was stored waits in the stream, read again when the
//! reader is idle, for at most [`callbacks::WAIT_AT_MOST`].

use crate::consent::{self, ConsentLedger};
use crate::queue::{Queue, QueueError};
use std::sync::Arc;
use wxpush_events::callbacks::{self, HandedOn, Handled, PushSource, status_of};

/// Why a push is not done with.
#[derive(Debug, thiserror::Error)]
enum NotYet {
    /// A receipt names a msgid no SENT message has (yet).
    #[error("no message sent as that msgid yet")]
    NoMessage,
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Consent(#[from] consent::ConsentError),
}

/// Reads pushes until `stop`.
pub async fn follow(
    source: Arc<dyn PushSource>,
    ledger: Arc<dyn ConsentLedger>,
    queue: Arc<dyn Queue>,
    stop: impl std::future::Future<Output = ()>,
) {
    callbacks::follow(source, "delivery", stop, |pushed| {
        let (ledger, queue) = (ledger.clone(), queue.clone());
        async move {
            match apply(ledger.as_ref(), queue.as_ref(), &pushed).await {
                Ok(()) => Handled::Done,
                Err(NotYet::NoMessage) => Handled::Waiting,
                Err(e) => Handled::Failed(e.to_string()),
            }
        }
    })
    .await
}

/// One push: its subscription answers, then its receipts.
async fn apply(
    ledger: &dyn ConsentLedger,
    queue: &dyn Queue,
    pushed: &HandedOn,
) -> Result<(), NotYet> {
    consent::record(ledger, pushed).await?;
    for receipt in pushed.receipts() {
        let id = queue
            .by_msgid(&pushed.app_id, receipt.msg_id)
            .await?
            .ok_or(NotYet::NoMessage)?;
        let mut status = queue.status(&id).await?.ok_or(NotYet::NoMessage)?;
        status.status = status_of(receipt.outcome) as i32;
        status.updated_at = Some(wxpush_proto::timestamp_from_micros(
            pushed.pushed_at_ms() * 1_000,
        ));
        // A repeat, or an older receipt than the one stored, changes nothing
        // that matters; a live status never replaces it.
        queue.set_status(&status).await?;
    }
    Ok(())
}
