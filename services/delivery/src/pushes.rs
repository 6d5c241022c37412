//! WeChat's pushes, as delivery uses them (read from the callback stream
//! in its own consumer group, or `wxpush dev`'s in-process stream):
//! subscription answers go into the [`crate::consent`] ledger, and a
//! receipt gives the message it names its final status (DELIVERED,
//! BLOCKED, UNDELIVERED) for `GetMessage`. A receipt that comes before the
//! message's SENT was stored waits in the stream, read again when the
//! reader is idle, for at most [`WAIT_FOR_SENT`].

use crate::consent::{self, ConsentLedger};
use crate::queue::{Queue, QueueError};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;
use wxpush_events::callbacks::{HandedOn, PushSource, status_of};
use wxpush_server::rpc::propagation::queue_process_span;

/// How long a receipt waits for the SENT it names (stored moments after
/// WeChat answered); one for a message sent by another system never comes.
pub const WAIT_FOR_SENT: Duration = Duration::from_secs(600);

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
    tokio::pin!(stop);
    loop {
        let batch = tokio::select! {
            batch = source.next_batch(100) => batch,
            () = &mut stop => return,
        };
        let batch = match batch {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(error = %e, "reading WeChat's pushes failed");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let (mut done, mut again) = (Vec::new(), Vec::new());
        for read in batch {
            let span = queue_process_span("wxpush.callbacks", &read.record.carrier);
            match apply(ledger.as_ref(), queue.as_ref(), &read.record)
                .instrument(span)
                .await
            {
                Ok(()) => done.push(read.entry),
                Err(NotYet::NoMessage) if waited_too_long(&read.record) => {
                    tracing::warn!(app_id = %read.record.app_id, "a receipt named no message sent by wxpush within 10 minutes; dropped");
                    done.push(read.entry);
                }
                Err(NotYet::NoMessage) => again.push(read.entry),
                Err(e) => {
                    tracing::warn!(error = %e, "a push was not applied; it will be read again");
                    again.push(read.entry);
                }
            }
        }
        source.release(&again);
        if let Err(e) = source.ack(&done).await {
            tracing::warn!(error = %e, "acknowledging pushes failed; they will be read again (applied once)");
        }
        if done.is_empty() && !again.is_empty() {
            // Only pushes waiting: do not spin on them.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
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

fn waited_too_long(pushed: &HandedOn) -> bool {
    crate::queue::now_ms() - pushed.received_at_ms > WAIT_FOR_SENT.as_millis() as i64
}
