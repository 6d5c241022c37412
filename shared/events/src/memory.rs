//! The in-process stream for `wxpush dev` and tests: a bounded channel (a
//! slow consumer slows publishers instead of growing memory), with the same
//! at-least-once contract as the Redis stream: events a consumer read but
//! did not acknowledge are read again by the next consumer.

use crate::{DeliveryEvent, EventError, EventSink, EventSource, Receipt, Received};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{Mutex, mpsc};

struct Shared {
    rx: Mutex<mpsc::Receiver<DeliveryEvent>>,
    unacked: std::sync::Mutex<BTreeMap<u64, DeliveryEvent>>,
    seq: AtomicU64,
}

/// The publishing side and the owner of the stream; cheap to clone.
#[derive(Clone)]
pub struct MemoryBus {
    tx: mpsc::Sender<DeliveryEvent>,
    shared: Arc<Shared>,
}

impl MemoryBus {
    /// A bus holding at most `capacity` unread events.
    pub fn new(capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        Self {
            tx,
            shared: Arc::new(Shared {
                rx: Mutex::new(rx),
                unacked: std::sync::Mutex::default(),
                seq: AtomicU64::new(0),
            }),
        }
    }

    /// A new consumer. Like a restarted Redis consumer, it first re-reads
    /// every event read earlier (by any consumer) and not yet acknowledged.
    pub fn source(&self) -> MemorySource {
        MemorySource {
            shared: self.shared.clone(),
            redeliver: Mutex::new(None),
        }
    }

    /// How many events were read and not yet acknowledged.
    pub fn unacked(&self) -> usize {
        self.shared.unacked.lock().expect("not poisoned").len()
    }
}

#[async_trait::async_trait]
impl EventSink for MemoryBus {
    async fn publish(&self, event: DeliveryEvent) -> Result<(), EventError> {
        self.tx.send(event).await.map_err(|_| EventError::Closed)
    }
}

/// One consumer of a [`MemoryBus`].
pub struct MemorySource {
    shared: Arc<Shared>,
    /// Unacknowledged events taken over at the first read.
    redeliver: Mutex<Option<VecDeque<Received>>>,
}

fn received(seq: u64, event: DeliveryEvent) -> Received {
    Received {
        event,
        receipt: Receipt(seq.to_string()),
    }
}

#[async_trait::async_trait]
impl EventSource for MemorySource {
    async fn next_batch(&self, max: usize) -> Result<Option<Vec<Received>>, EventError> {
        let max = max.max(1);
        {
            let mut redeliver = self.redeliver.lock().await;
            let queue = redeliver.get_or_insert_with(|| {
                let unacked = self.shared.unacked.lock().expect("not poisoned");
                unacked
                    .iter()
                    .map(|(seq, e)| received(*seq, e.clone()))
                    .collect()
            });
            if !queue.is_empty() {
                let n = max.min(queue.len());
                return Ok(Some(queue.drain(..n).collect()));
            }
        }
        let mut rx = self.shared.rx.lock().await;
        let Some(first) = rx.recv().await else {
            return Ok(None);
        };
        let mut events = vec![first];
        while events.len() < max {
            match rx.try_recv() {
                Ok(e) => events.push(e),
                Err(_) => break,
            }
        }
        let mut unacked = self.shared.unacked.lock().expect("not poisoned");
        Ok(Some(
            events
                .into_iter()
                .map(|e| {
                    let seq = self.shared.seq.fetch_add(1, Ordering::Relaxed);
                    unacked.insert(seq, e.clone());
                    received(seq, e)
                })
                .collect(),
        ))
    }

    async fn ack(&self, receipts: &[Receipt]) -> Result<(), EventError> {
        let mut unacked = self.shared.unacked.lock().expect("not poisoned");
        for r in receipts {
            if let Ok(seq) = r.0.parse::<u64>() {
                unacked.remove(&seq);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(i: usize) -> DeliveryEvent {
        DeliveryEvent {
            event_id: format!("e{i}"),
            ..Default::default()
        }
    }

    fn ids(batch: &[Received]) -> Vec<String> {
        batch.iter().map(|r| r.event.event_id.clone()).collect()
    }

    #[tokio::test]
    async fn events_arrive_in_order_in_batches() {
        let bus = MemoryBus::new(8);
        for i in 0..3 {
            bus.publish(ev(i)).await.unwrap();
        }
        let src = bus.source();
        let b1 = src.next_batch(2).await.unwrap().unwrap();
        assert_eq!(ids(&b1), ["e0", "e1"]);
        let b2 = src.next_batch(10).await.unwrap().unwrap();
        assert_eq!(ids(&b2), ["e2"]);
    }

    #[tokio::test]
    async fn a_new_consumer_rereads_what_was_not_acknowledged() {
        let bus = MemoryBus::new(8);
        for i in 0..4 {
            bus.publish(ev(i)).await.unwrap();
        }
        let first = bus.source();
        let batch = first.next_batch(4).await.unwrap().unwrap();
        first.ack(&[batch[0].receipt.clone()]).await.unwrap();
        assert_eq!(bus.unacked(), 3);
        drop(first);
        let second = bus.source();
        let again = second.next_batch(10).await.unwrap().unwrap();
        assert_eq!(ids(&again), ["e1", "e2", "e3"]);
        let receipts: Vec<_> = again.iter().map(|r| r.receipt.clone()).collect();
        second.ack(&receipts).await.unwrap();
        assert_eq!(bus.unacked(), 0);
    }
}
