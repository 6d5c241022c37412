//! One reader of a stream split into partitions (see
//! [`wxpush_redis::partition`]): a [`StreamConsumer`] per partition, read
//! as one.
//!
//! A partition's blocking read must not hold up the others, so each read
//! runs as a task of its own; [`PartitionedConsumer::next_batch`] starts a
//! read on every partition that has none in flight and hands out the first
//! entries that arrive, keeping the rest for the next call. Each read asks
//! for its share of the caller's `max` (rounded up), so the entries taken
//! from Redis but not yet handed out stay near `max`, never `max` per
//! partition: a worker does not sit on entries it cannot start before
//! another worker would claim them.
//!
//! Entry ids handed out name their partition (`3/1700000000000-0`); they
//! are made and read only here.

use crate::consumer::{ConsumerSettings, StreamConsumer, StreamEntry};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, mpsc};
use wxpush_redis::{OpenError, RedisError};

/// A read taking this much longer than its `block` is given up and its
/// partition's connections opened afresh: a connection to a node that was
/// stalled and then restarted can stay wedged, and a partition whose read
/// never ends would never be read again.
const READ_GRACE: Duration = Duration::from_secs(5);

/// A partition whose read failed (its node down) is read again after this.
const ERROR_PAUSE: Duration = Duration::from_millis(500);

type ReadResult = (usize, Result<Vec<StreamEntry>, RedisError>);

struct Reads {
    /// Entries read and not yet handed out, with their partition.
    ready: VecDeque<(usize, StreamEntry)>,
    in_flight: Vec<bool>,
    done: mpsc::UnboundedReceiver<ReadResult>,
}

/// Each partition's reader, replaced after a read that hung.
struct Readers {
    partitions: Vec<std::sync::Mutex<Arc<StreamConsumer>>>,
    url: String,
}

/// A consumer-group reader of every partition of a stream.
pub struct PartitionedConsumer {
    readers: Arc<Readers>,
    reads: Mutex<Reads>,
    report: mpsc::UnboundedSender<ReadResult>,
}

impl PartitionedConsumer {
    /// A reader of `streams` (one key per partition, in partition order)
    /// with the same group and consumer name on each; connects on first use.
    pub fn open(
        url: &str,
        settings: ConsumerSettings,
        streams: Vec<String>,
    ) -> Result<Self, OpenError> {
        let partitions = streams
            .into_iter()
            .map(|stream| {
                StreamConsumer::open(
                    url,
                    ConsumerSettings {
                        stream,
                        ..settings.clone()
                    },
                )
                .map(|c| std::sync::Mutex::new(Arc::new(c)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (report, done) = mpsc::unbounded_channel();
        Ok(Self {
            reads: Mutex::new(Reads {
                ready: VecDeque::new(),
                in_flight: vec![false; partitions.len()],
                done,
            }),
            readers: Arc::new(Readers {
                partitions,
                url: url.to_string(),
            }),
            report,
        })
    }
}

impl Readers {
    /// Partition `p`'s reader now.
    fn partition(&self, p: usize) -> Arc<StreamConsumer> {
        self.partitions[p]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// One read of partition `p`, bounded; a hung one replaces the
    /// partition's reader (same group and name: nothing pending is lost).
    async fn read(&self, p: usize, share: usize) -> Result<Vec<StreamEntry>, RedisError> {
        let consumer = self.partition(p);
        let bound = consumer.settings().block + READ_GRACE;
        match tokio::time::timeout(bound, consumer.next_batch(share)).await {
            Ok(Ok(entries)) => Ok(entries),
            Ok(Err(e)) => {
                // This partition waits before it is read again; the others
                // go on meanwhile.
                tokio::time::sleep(ERROR_PAUSE).await;
                Err(e)
            }
            Err(_) => {
                tracing::warn!(stream = %consumer.settings().stream, "a stream read hung; reconnecting that partition");
                if let Ok(fresh) = StreamConsumer::open(&self.url, consumer.settings().clone()) {
                    *self.partitions[p].lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
                }
                Err(RedisError::from((
                    redis::ErrorKind::Io,
                    "a stream read hung past its block",
                )))
            }
        }
    }
}

impl PartitionedConsumer {
    /// Up to `max` entries from any partition; empty when a read found
    /// nothing within its `block`.
    pub async fn next_batch(&self, max: usize) -> Result<Vec<StreamEntry>, RedisError> {
        let max = max.max(1);
        let mut reads = self.reads.lock().await;
        if reads.ready.is_empty() {
            let share = max.div_ceil(self.readers.partitions.len());
            for p in 0..self.readers.partitions.len() {
                if std::mem::replace(&mut reads.in_flight[p], true) {
                    continue;
                }
                let (readers, report) = (self.readers.clone(), self.report.clone());
                tokio::spawn(async move {
                    // The receiver lives as long as `self`; after that
                    // nobody waits for the entries (they stay pending).
                    let _ = report.send((p, readers.read(p, share).await));
                });
            }
            // Cancel-safe: a result not received here is received next time.
            let Some((p, read)) = reads.done.recv().await else {
                unreachable!("`self` holds a sender");
            };
            // Cancel-safe from here: no await until the entries are handed out.
            reads.in_flight[p] = false;
            reads.ready.extend(read?.into_iter().map(|e| (p, e)));
            // Reads that finished meanwhile.
            while let Ok((p, read)) = reads.done.try_recv() {
                reads.in_flight[p] = false;
                match read {
                    Ok(entries) => reads.ready.extend(entries.into_iter().map(|e| (p, e))),
                    Err(e) => {
                        tracing::warn!(partition = p, error = %e, "reading a stream partition failed")
                    }
                }
            }
        }
        let n = max.min(reads.ready.len());
        Ok(reads
            .ready
            .drain(..n)
            .map(|(p, e)| StreamEntry {
                id: format!("{p}/{}", e.id),
                payload: e.payload,
            })
            .collect())
    }

    /// Marks entries (ids as handed out) as done.
    pub async fn ack(&self, ids: &[String]) -> Result<(), RedisError> {
        let mut by_partition: Vec<Vec<String>> = vec![Vec::new(); self.readers.partitions.len()];
        for id in ids {
            let (p, id) = self.split(id)?;
            by_partition[p].push(id.to_string());
        }
        let acks = by_partition
            .iter()
            .enumerate()
            .filter(|(_, ids)| !ids.is_empty())
            .map(|(p, ids)| {
                let consumer = self.readers.partition(p);
                async move { consumer.ack(ids).await }
            });
        for done in futures_util::future::join_all(acks).await {
            done?;
        }
        Ok(())
    }

    /// Entries (ids as handed out) not processed after all: handed out
    /// again on their partition's next idle re-read of its backlog.
    pub fn release(&self, ids: &[String]) {
        for id in ids {
            if let Ok((p, id)) = self.split(id) {
                self.readers.partition(p).release(&[id.to_string()]);
            }
        }
    }

    /// Keeps an entry that can never be processed in its partition's
    /// `:rejected` stream, then acknowledges it.
    pub async fn reject(&self, entry: &StreamEntry, why: &str) -> Result<(), RedisError> {
        let (p, id) = self.split(&entry.id)?;
        let inner = StreamEntry {
            id: id.to_string(),
            payload: entry.payload.clone(),
        };
        self.readers.partition(p).reject(&inner, why).await
    }

    /// Where each partition keeps rejected entries.
    pub fn rejected_keys(&self) -> Vec<String> {
        (0..self.readers.partitions.len())
            .map(|p| self.readers.partition(p).rejected_key())
            .collect()
    }

    /// The partition and stream id of a handed-out id.
    fn split<'a>(&self, id: &'a str) -> Result<(usize, &'a str), RedisError> {
        id.split_once('/')
            .and_then(|(p, id)| Some((p.parse::<usize>().ok()?, id)))
            .filter(|(p, _)| *p < self.readers.partitions.len())
            .ok_or_else(|| {
                RedisError::from((
                    redis::ErrorKind::Client,
                    "not an entry id handed out by this consumer",
                    id.to_string(),
                ))
            })
    }
}
