//! The callback stream in one process (`wxpush dev`, tests): the newest
//! pushes, each kept once, and a reader per consumer group with the same
//! contract as the Redis stream's ([`super::PushSource`]): a released push
//! is handed out again when the reader is next idle, or a second after its
//! release while new pushes keep coming.

use super::{HandedOn, PushSource, ReadPush};
use crate::EventError;
use crate::consumer::REREAD_RELEASED_AFTER;
use std::collections::{BTreeSet, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How long a read waits for a push.
const WAIT: Duration = Duration::from_secs(1);

/// The pushes handed on in this process.
pub struct MemoryPushes {
    log: Mutex<Log>,
    arrived: Notify,
    keep: usize,
}

#[derive(Default)]
struct Log {
    /// (sequence number, push), oldest first; at most `keep`.
    entries: VecDeque<(u64, HandedOn)>,
    next: u64,
    /// Event ids of the kept pushes: a repeat is not kept twice.
    seen: HashSet<String>,
}

impl MemoryPushes {
    /// Keeps the newest `keep` pushes.
    pub fn new(keep: usize) -> Arc<Self> {
        Arc::new(Self {
            log: Mutex::default(),
            arrived: Notify::new(),
            keep: keep.max(1),
        })
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `record` unless it was kept before; `false` for a repeat.
    pub fn hand_on(&self, record: &HandedOn) -> bool {
        let mut log = self.log();
        if !log.seen.insert(record.event_id.clone()) {
            return false;
        }
        if log.entries.len() == self.keep
            && let Some((_, oldest)) = log.entries.pop_front()
        {
            log.seen.remove(&oldest.event_id);
        }
        let seq = log.next;
        log.next += 1;
        log.entries.push_back((seq, record.clone()));
        drop(log);
        self.arrived.notify_waiters();
        true
    }

    /// Every push kept, oldest first.
    pub fn records(&self) -> Vec<HandedOn> {
        self.log().entries.iter().map(|(_, r)| r.clone()).collect()
    }

    /// A reader of its own (a consumer group), from the oldest push kept.
    pub fn reader(self: &Arc<Self>) -> MemoryPushReader {
        MemoryPushReader {
            pushes: self.clone(),
            state: Mutex::default(),
        }
    }

    /// Pushes from `from` on (at most `max`), and the sequence after them.
    fn after(&self, from: u64, max: usize) -> (Vec<ReadPush>, u64) {
        let log = self.log();
        let read: Vec<ReadPush> = log
            .entries
            .iter()
            .filter(|(seq, _)| *seq >= from)
            .take(max)
            .map(|(seq, r)| read_push(*seq, r))
            .collect();
        let next = read
            .last()
            .and_then(|r| r.entry.parse::<u64>().ok())
            .map_or(from, |seq| seq + 1);
        (read, next)
    }

    /// The kept pushes among `seqs`.
    fn these(&self, seqs: &BTreeSet<u64>) -> Vec<ReadPush> {
        let log = self.log();
        log.entries
            .iter()
            .filter(|(seq, _)| seqs.contains(seq))
            .map(|(seq, r)| read_push(*seq, r))
            .collect()
    }
}

fn read_push(seq: u64, record: &HandedOn) -> ReadPush {
    ReadPush {
        entry: seq.to_string(),
        record: record.clone(),
    }
}

/// One consumer group's reader of [`MemoryPushes`].
pub struct MemoryPushReader {
    pushes: Arc<MemoryPushes>,
    state: Mutex<ReaderState>,
}

#[derive(Default)]
struct ReaderState {
    next: u64,
    released: BTreeSet<u64>,
    /// The first release not yet handed out again.
    released_at: Option<Instant>,
}

impl MemoryPushReader {
    fn state(&self) -> MutexGuard<'_, ReaderState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// New pushes, else the released ones (idle); the released ones first
    /// once they waited [`REREAD_RELEASED_AFTER`] (a busy stream would
    /// starve them).
    fn take(&self, max: usize) -> Vec<ReadPush> {
        let mut state = self.state();
        let due = state
            .released_at
            .is_some_and(|t| t.elapsed() >= REREAD_RELEASED_AFTER);
        if !due {
            let (read, next) = self.pushes.after(state.next, max);
            state.next = next;
            if !read.is_empty() {
                return read;
            }
        }
        state.released_at = None;
        let released = std::mem::take(&mut state.released);
        self.pushes.these(&released)
    }
}

#[async_trait::async_trait]
impl PushSource for MemoryPushReader {
    async fn next_batch(&self, max: usize) -> Result<Vec<ReadPush>, EventError> {
        let arrived = self.pushes.arrived.notified();
        tokio::pin!(arrived);
        arrived.as_mut().enable();
        let read = self.take(max.max(1));
        if !read.is_empty() {
            return Ok(read);
        }
        let _ = tokio::time::timeout(WAIT, arrived).await;
        Ok(self.take(max.max(1)))
    }

    /// In one process a push handed out is done unless released.
    async fn ack(&self, _entries: &[String]) -> Result<(), EventError> {
        Ok(())
    }

    fn release(&self, entries: &[String]) {
        let mut state = self.state();
        state
            .released
            .extend(entries.iter().filter_map(|e| e.parse::<u64>().ok()));
        if !state.released.is_empty() {
            state.released_at.get_or_insert_with(Instant::now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wxpush_wechat::push::Push;

    fn push(n: u8) -> HandedOn {
        let body = format!(
            "<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><CreateTime>1</CreateTime>\
             <MsgType>event</MsgType><Event>TEMPLATESENDJOBFINISH</Event><MsgID>{n}</MsgID><Status>success</Status></xml>"
        );
        HandedOn::new(
            "wx",
            body.as_bytes(),
            Push::parse(body.as_bytes()).unwrap(),
            0,
        )
    }

    #[tokio::test]
    async fn each_group_reads_every_push_once_and_released_ones_again_when_idle() {
        let pushes = MemoryPushes::new(10);
        assert!(pushes.hand_on(&push(1)));
        assert!(!pushes.hand_on(&push(1)), "a repeat is kept once");
        assert!(pushes.hand_on(&push(2)));
        let (log, consent) = (pushes.reader(), pushes.reader());
        let read = log.next_batch(10).await.unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(consent.next_batch(1).await.unwrap().len(), 1);
        log.release(&[read[0].entry.clone()]);
        let again = log.next_batch(10).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].record, read[0].record);
        // A push handed on while a reader waits wakes it.
        let waiting = tokio::spawn(async move { log.next_batch(10).await.unwrap() });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(pushes.hand_on(&push(3)));
        let woken = waiting.await.unwrap();
        assert_eq!(woken.len(), 1);
        assert_eq!(woken[0].record, push(3));
    }

    #[tokio::test]
    async fn a_released_push_comes_back_within_a_second_while_new_ones_keep_coming() {
        let pushes = MemoryPushes::new(100);
        let log = pushes.reader();
        assert!(pushes.hand_on(&push(1)));
        let first = log.next_batch(10).await.unwrap();
        log.release(&[first[0].entry.clone()]);
        let started = std::time::Instant::now();
        let mut n = 2;
        // A new push before every read: the reader is never idle.
        let back = loop {
            assert!(pushes.hand_on(&push(n)));
            n += 1;
            let read = log.next_batch(10).await.unwrap();
            if read.iter().any(|r| r.record == push(1)) {
                break started.elapsed();
            }
            assert!(started.elapsed() < Duration::from_secs(5), "starved");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(
            back >= REREAD_RELEASED_AFTER,
            "{back:?}: not before its time"
        );
        // The new pushes meanwhile are all read, none lost.
        let rest = log.next_batch(100).await.unwrap();
        assert!(rest.iter().any(|r| r.record == push(n - 1)));
    }

    #[test]
    fn the_newest_are_kept() {
        let pushes = MemoryPushes::new(2);
        for n in 1..=3 {
            assert!(pushes.hand_on(&push(n)));
        }
        assert_eq!(pushes.records(), vec![push(2), push(3)]);
        assert!(pushes.hand_on(&push(1)), "forgotten with its entry");
    }
}
