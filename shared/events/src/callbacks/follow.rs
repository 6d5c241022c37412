//! The one loop that reads WeChat's pushes for a service (the log's
//! receipts, delivery's consent and receipts): each push handled in a span
//! continuing the trace of its receipt at the callback endpoint, the
//! handled ones acknowledged, the others read again when the reader is
//! idle; one that waits for something that never comes is dropped after
//! [`WAIT_AT_MOST`].

use super::{HandedOn, PushSource};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;
use wxpush_server::rpc::propagation::queue_process_span;

/// How long a push may wait for what it names (a receipt for its message's
/// SENT, stored moments after WeChat answered): one for a message another
/// system sent must not sit in the stream.
pub const WAIT_AT_MOST: Duration = Duration::from_secs(600);

/// What became of one push.
#[derive(Debug)]
pub enum Handled {
    /// Done with (also: nothing in it for this reader).
    Done,
    /// It names what is not there yet: read again later.
    Waiting,
    /// Handling it failed (a backend): read again later.
    Failed(String),
}

/// Reads `source` until `stop`, handing each push to `handle`. `reader`
/// names the reader in logs.
pub async fn follow<F, Fut>(
    source: Arc<dyn PushSource>,
    reader: &'static str,
    stop: impl std::future::Future<Output = ()>,
    handle: F,
) where
    F: Fn(HandedOn) -> Fut,
    Fut: std::future::Future<Output = Handled>,
{
    tokio::pin!(stop);
    loop {
        let batch = tokio::select! {
            batch = source.next_batch(100) => batch,
            () = &mut stop => return,
        };
        let batch = match batch {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(reader, error = %e, "reading WeChat's pushes failed");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let (mut done, mut again) = (Vec::new(), Vec::new());
        for read in batch {
            let span = queue_process_span("wxpush.callbacks", &read.record.carrier);
            let (app_id, waited) = (read.record.app_id.clone(), waited_too_long(&read.record));
            match handle(read.record).instrument(span).await {
                Handled::Done => done.push(read.entry),
                Handled::Waiting if waited => {
                    tracing::warn!(reader, app_id = %app_id, waited = ?WAIT_AT_MOST, "a push named no message of wxpush's within the wait; dropped");
                    done.push(read.entry);
                }
                Handled::Waiting => again.push(read.entry),
                Handled::Failed(e) => {
                    tracing::warn!(reader, error = %e, "a push was not handled; it will be read again");
                    again.push(read.entry);
                }
            }
        }
        // Left pending: read again when the reader is next idle.
        source.release(&again);
        if let Err(e) = source.ack(&done).await {
            tracing::warn!(reader, error = %e, "acknowledging pushes failed; they will be read again (handled once)");
        }
        if done.is_empty() && !again.is_empty() {
            // Only pushes waiting: do not spin on them.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

fn waited_too_long(pushed: &HandedOn) -> bool {
    super::now_ms() - pushed.received_at_ms > WAIT_AT_MOST.as_millis() as i64
}
