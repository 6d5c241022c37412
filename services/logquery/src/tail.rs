//! The live tail behind `TailLogs`: records as ingestion applies them.
//!
//! Alone (memory, `wxpush dev`) the tail is an in-process broadcast. With
//! Redis, replicas split the event stream between them, so each one
//! publishes what it applied on a Redis Pub/Sub channel and every replica
//! feeds its own subscribers from that channel: a `TailLogs` stream sees the
//! records of every replica. It is a live view: a subscriber that falls
//! behind, or a reconnect to Redis, skips records; the log itself is
//! complete. Streams end when the process shuts down.

use prost::Message;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use wxpush_proto::v1::tail_logs_response::Event;
use wxpush_proto::v1::{LogRecord, TailGap, TailLogsResponse};

/// Most `TailLogs` streams open at once on one replica: each holds up to
/// [`STREAM_BUFFER`] records for a client that reads slowly.
pub const MAX_STREAMS: usize = 100;
/// Records buffered per stream for its client.
pub const STREAM_BUFFER: usize = 64;
/// Longest a `TailLogs` stream stays open; the client then opens another
/// (`wxpush logs --follow` does so by itself).
pub const MAX_STREAM_LIFETIME: Duration = Duration::from_secs(3600);

/// Records as they are applied; cheap to clone.
#[derive(Clone)]
pub struct Tail {
    local: broadcast::Sender<Arc<LogRecord>>,
    relay: Option<Relay>,
    closed: Arc<watch::Sender<bool>>,
    streams: Arc<tokio::sync::Semaphore>,
}

/// The Redis channel replicas publish to.
#[derive(Clone)]
struct Relay {
    conn: wxpush_redis::Connection,
    channel: String,
}

impl Tail {
    /// An in-process tail keeping up to `capacity` records per subscriber.
    pub fn new(capacity: usize) -> Self {
        Self {
            local: broadcast::channel(capacity.max(1)).0,
            relay: None,
            closed: Arc::new(watch::channel(false).0),
            streams: Arc::new(tokio::sync::Semaphore::new(MAX_STREAMS)),
        }
    }

    /// A tail shared by every replica through Redis Pub/Sub on
    /// `{key_prefix}log:tail`, and the task that feeds this replica's
    /// subscribers from the channel (subscribing, and again after a lost
    /// connection, until the tail closes). Nothing is dialled here.
    pub fn relayed(
        redis_url: &str,
        key_prefix: &str,
    ) -> Result<(Self, impl Future<Output = ()> + Send + 'static), wxpush_redis::OpenError> {
        let (tail, relay, _) = Self::wired(redis_url, key_prefix)?;
        Ok((tail, relay))
    }

    /// [`Self::relayed`] with the relay running; returns once this replica
    /// is subscribed.
    pub async fn over_redis(redis_url: &str, key_prefix: &str) -> anyhow::Result<Self> {
        let (tail, relay, mut subscribed) = Self::wired(redis_url, key_prefix)?;
        tokio::spawn(relay);
        subscribed.wait_for(|s| *s).await?;
        Ok(tail)
    }

    /// The tail, its relay, and whether the relay is subscribed.
    fn wired(
        redis_url: &str,
        key_prefix: &str,
    ) -> Result<
        (
            Self,
            impl Future<Output = ()> + Send + 'static,
            watch::Receiver<bool>,
        ),
        wxpush_redis::OpenError,
    > {
        let client = wxpush_redis::client(redis_url)?;
        let channel = format!("{key_prefix}log:tail");
        let conn = wxpush_redis::connect(redis_url, wxpush_redis::Timeouts::Commands)?;
        let tail = Self {
            relay: Some(Relay {
                conn,
                channel: channel.clone(),
            }),
            ..Self::default()
        };
        let (subscribed, seen) = watch::channel(false);
        let relay = relay_in(client, channel, tail.clone(), subscribed);
        Ok((tail, relay, seen))
    }

    /// Records applied from now on (in this process, or on any replica with
    /// a Redis tail).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LogRecord>> {
        self.local.subscribe()
    }

    /// Hands records just applied to every subscriber.
    pub async fn publish(&self, records: Vec<LogRecord>) {
        let Some(relay) = &self.relay else {
            for r in records {
                // No subscriber is not an error.
                let _ = self.local.send(Arc::new(r));
            }
            return;
        };
        if records.is_empty() {
            return;
        }
        let mut pipe = redis::pipe();
        for r in &records {
            pipe.cmd("PUBLISH")
                .arg(&relay.channel)
                .arg(r.encode_to_vec())
                .ignore();
        }
        let mut conn = relay.conn.clone();
        if let Err(e) = pipe.exec_async(&mut conn).await {
            tracing::warn!(error = %e, records = records.len(), "publishing to the live tail failed");
        }
    }

    /// The records `keep` accepts, and a [`TailGap`] wherever the stream
    /// fell behind and skipped records (the count is of every record
    /// skipped, matching or not), until the subscriber goes away or the tail
    /// closes.
    ///
    /// At most [`MAX_STREAMS`] at once (`None` past that), each ending after
    /// [`MAX_STREAM_LIFETIME`].
    pub fn stream(
        &self,
        keep: impl Fn(&LogRecord) -> bool + Send + 'static,
    ) -> Option<ReceiverStream<TailLogsResponse>> {
        let permit = self.streams.clone().try_acquire_owned().ok()?;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let mut records = self.subscribe();
        let mut closed = self.closed.subscribe();
        tokio::spawn(async move {
            let _permit = permit;
            let expired = tokio::time::sleep(MAX_STREAM_LIFETIME);
            tokio::pin!(expired);
            loop {
                // Closing wins over a busy stream and over a client that
                // stopped reading (a full channel).
                let r = tokio::select! {
                    biased;
                    _ = closed.wait_for(|c| *c) => break,
                    _ = tx.closed() => break,
                    _ = &mut expired => break,
                    r = records.recv() => r,
                };
                let event = match r {
                    Ok(r) if keep(&r) => Event::Record(LogRecord::clone(&r)),
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(skipped)) => {
                        tracing::warn!(skipped, "a TailLogs subscriber fell behind");
                        Event::Gap(TailGap { skipped })
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                let sent = tokio::select! {
                    biased;
                    _ = closed.wait_for(|c| *c) => break,
                    sent = tx.send(TailLogsResponse { event: Some(event) }) => sent,
                };
                if sent.is_err() {
                    break;
                }
            }
        });
        Some(ReceiverStream::new(rx))
    }

    /// Ends every stream (shutdown: an open `TailLogs` must not hold the
    /// server's drain).
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Closes the tail once `signal` completes.
    pub fn close_on(&self, signal: impl Future<Output = ()> + Send + 'static) {
        let tail = self.clone();
        tokio::spawn(async move {
            signal.await;
            tail.close();
        });
    }
}

impl Default for Tail {
    fn default() -> Self {
        Self::new(1024)
    }
}

/// Feeds the channel's records to this replica's subscribers, subscribing
/// again after a lost connection, until the tail closes.
async fn relay_in(
    client: redis::Client,
    channel: String,
    tail: Tail,
    subscribed: watch::Sender<bool>,
) {
    let mut closed = tail.closed.subscribe();
    loop {
        let subscription = async {
            let mut p = client.get_async_pubsub().await?;
            p.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(p)
        };
        let mut pubsub = match subscription.await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "subscribing to the live tail");
                tokio::select! {
                    _ = closed.wait_for(|c| *c) => return,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                }
            }
        };
        subscribed.send_replace(true);
        let mut messages = pubsub.on_message();
        loop {
            let msg = tokio::select! {
                biased;
                _ = closed.wait_for(|c| *c) => return,
                m = tokio_stream::StreamExt::next(&mut messages) => m,
            };
            let Some(msg) = msg else { break };
            match LogRecord::decode(msg.get_payload_bytes()) {
                Ok(r) => {
                    let _ = tail.local.send(Arc::new(r));
                }
                Err(e) => tracing::warn!(error = %e, "undecodable live tail message"),
            }
        }
        tracing::warn!("live tail subscription lost; resubscribing");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt;

    fn record(i: usize) -> LogRecord {
        LogRecord {
            message_id: format!("m{i}"),
            ..Default::default()
        }
    }

    /// A reader that falls behind is told how many records it missed, in
    /// the stream, and then gets the newer ones.
    #[tokio::test]
    async fn a_slow_reader_gets_a_gap_notice() {
        let tail = Tail::new(4);
        let mut stream = tail.stream(|_| true).expect("a stream");
        // Far more than the stream's buffer and the tail's 4: the reader is
        // not reading.
        let total = STREAM_BUFFER + 100;
        tail.publish((0..total).map(record).collect()).await;
        let mut records = 0;
        let mut skipped = 0;
        while records + skipped < total as u64 {
            let event = tokio::time::timeout(Duration::from_secs(5), stream.next())
                .await
                .expect("an event")
                .expect("open");
            match event.event {
                Some(Event::Record(_)) => records += 1,
                Some(Event::Gap(g)) => skipped += g.skipped,
                None => panic!("an empty event"),
            }
        }
        assert!(skipped > 0, "the gap was reported");
        assert_eq!(
            records + skipped,
            total as u64,
            "every record read or counted"
        );
    }
}
