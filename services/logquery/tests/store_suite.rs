//! The acceptance suite, one body generic over the store, run on memory, on
//! a real Redis and on a real PostgreSQL (private servers from
//! wxpush-testkit).

#[macro_use]
mod common;

use common::{Backend, Kind, Rng, brute_force, fold, generate, page_all, query, random_filter, ts};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wxpush_events::{EventSource, Receipt, Received};
use wxpush_logquery::stats::{StatsQuery, align, check_stats, status_name};
use wxpush_logquery::{LogStore, Tail, ingest};
use wxpush_proto::v1::{
    GetStatsRequest, LogFilter, LogRecord, StatsGroupBy, StatsSeries, TimeRange,
};

async fn load(store: &dyn LogStore, events: &[wxpush_proto::v1::DeliveryEvent]) {
    for chunk in events.chunks(4000) {
        store.apply(chunk).await.expect("apply");
    }
}

fn ids<R: std::borrow::Borrow<LogRecord>>(rs: &[R]) -> Vec<&str> {
    rs.iter().map(|r| r.borrow().message_id.as_str()).collect()
}

fn expected_stats(all: &[LogRecord], q: &StatsQuery) -> Vec<StatsSeries> {
    let mut counts: BTreeMap<String, BTreeMap<i64, u64>> = BTreeMap::new();
    for r in brute_force(all, &q.filter) {
        let group = match q.group_by {
            StatsGroupBy::Errcode => r.errcode.to_string(),
            StatsGroupBy::Template => r.template_key.clone(),
            _ => status_name(r.status),
        };
        let t = r
            .accepted_at
            .map_or(0, |t| t.seconds * 1_000_000 + i64::from(t.nanos) / 1000);
        *counts
            .entry(group)
            .or_default()
            .entry(align(t, q.bucket))
            .or_default() += 1;
    }
    counts
        .into_iter()
        .map(|(group, points)| StatsSeries {
            group,
            points: points
                .into_iter()
                .map(|(t, count)| wxpush_proto::v1::StatsPoint {
                    bucket_start: ts(t),
                    count,
                })
                .collect(),
        })
        .collect()
}

async fn indexed_queries_match_brute_force(kind: Kind) {
    let backend = Backend::start(kind).await;
    let events = generate(100_000, 7);
    let started = Instant::now();
    load(backend.store.as_ref(), &events).await;
    eprintln!(
        "{}: 100 000 records loaded in {:?}",
        backend.name,
        started.elapsed()
    );
    let all = fold(&events);
    assert_eq!(all.len(), 100_000);
    let mut rng = Rng::new(42);
    let started = Instant::now();
    let (mut nonempty, mut full) = (0, 0);
    let mut in_store = Duration::ZERO;
    for i in 0..150 {
        let f = random_filter(&mut rng, &all);
        let want = brute_force(&all, &f);
        let size = [1, 7, 50, 500][rng.below(4) as usize];
        // Page to the end when that takes at most 300 pages.
        let pages = if want.len() / size as usize <= 300 {
            301
        } else {
            3
        };
        let t = Instant::now();
        let (got, complete) = page_all(backend.store.as_ref(), &f, size, pages).await;
        in_store += t.elapsed();
        let n = got.len();
        assert_eq!(
            ids(&got),
            ids(&want[..n.min(want.len())]),
            "query {i} {f:?} page size {size}"
        );
        if complete {
            assert_eq!(n, want.len(), "query {i} {f:?}: all pages");
            full += 1;
        } else {
            assert_eq!(
                n,
                3 * size as usize,
                "query {i}: full pages while more remain"
            );
        }
        assert!(
            got.iter().zip(&want).all(|(g, w)| g == *w),
            "query {i}: whole records"
        );
        nonempty += usize::from(n > 0);
    }
    assert!(
        nonempty > 100,
        "the generated queries find records ({nonempty})"
    );
    assert!(full > 50, "most queries are paged to the end ({full})");
    let day = 86_400_000_000;
    let end = wxpush_logquery::store::now_micros();
    for i in 0..12 {
        let mut f = random_filter(&mut rng, &all);
        f.time_range = None;
        f.message_id.clear();
        if i % 2 == 0 {
            f.openid.clear();
            f.trace_id.clear();
        }
        let q = check_stats(GetStatsRequest {
            time_range: Some(TimeRange {
                start: ts(end - 6 * day),
                end: ts(end - rng.below(3) as i64 * day),
            }),
            bucket_seconds: [3600, 86_400, 7200][i % 3],
            group_by: (1 + i % 3) as i32,
            filter: Some(f),
        })
        .expect("valid stats");
        let got = backend.store.stats(&q).await.expect("stats");
        assert_eq!(got, expected_stats(&all, &q), "stats {i} {q:?}");
    }
    eprintln!(
        "{}: 150 queries ({in_store:?} in the store) + 12 stats checked in {:?}",
        backend.name,
        started.elapsed()
    );
}

on_both_backends!(indexed_queries_match_brute_force => memory_indexed_queries_match_brute_force_on_100k_records, redis_indexed_queries_match_brute_force_on_100k_records, postgres_indexed_queries_match_brute_force_on_100k_records);

async fn paging_while_inserting(kind: Kind) {
    let backend = Backend::start(kind).await;
    let events = generate(6000, 11);
    let (initial, later) = events.split_at(events.len() / 2);
    load(backend.store.as_ref(), initial).await;
    let before = fold(initial);
    let f = LogFilter {
        app_id: "wx_app_1".into(),
        ..Default::default()
    };
    let want: HashSet<String> = brute_force(&before, &f)
        .into_iter()
        .map(|r| r.message_id.clone())
        .collect();
    let writer = {
        let store = backend.store.clone();
        let later = later.to_vec();
        tokio::spawn(async move {
            for chunk in later.chunks(40) {
                store.apply(chunk).await.expect("apply");
                tokio::task::yield_now().await;
            }
        })
    };
    let mut seen = HashSet::new();
    let mut last: Option<(i64, String)> = None;
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = backend
            .store
            .query(&query(&f, 37, token))
            .await
            .expect("query");
        pages += 1;
        for r in &page.records {
            assert!(
                seen.insert(r.message_id.clone()),
                "{} seen twice",
                r.message_id
            );
            let key = (
                r.accepted_at
                    .map_or(0, |t| t.seconds * 1_000_000 + i64::from(t.nanos) / 1000),
                r.message_id.clone(),
            );
            assert!(last.as_ref().is_none_or(|l| &key < l), "newest first");
            last = Some(key);
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    writer.await.unwrap();
    let missing: Vec<_> = want.difference(&seen).collect();
    assert!(
        missing.is_empty(),
        "{}: {} skipped, e.g. {:?}",
        backend.name,
        missing.len(),
        missing.first()
    );
    assert!(pages > 20, "paged while writing ({pages} pages)");
}

on_both_backends!(paging_while_inserting => memory_paging_while_inserting_skips_and_repeats_nothing, redis_paging_while_inserting_skips_and_repeats_nothing, postgres_paging_while_inserting_skips_and_repeats_nothing);

/// A consumer that crashes after applying, before acknowledging.
struct NeverAcks(Arc<dyn EventSource>);

#[async_trait::async_trait]
impl EventSource for NeverAcks {
    async fn next_batch(
        &self,
        max: usize,
    ) -> Result<Option<Vec<Received>>, wxpush_events::EventError> {
        self.0.next_batch(max).await
    }
    async fn ack(&self, _: &[Receipt]) -> Result<(), wxpush_events::EventError> {
        Ok(())
    }
}

async fn wait_for(store: &dyn LogStore, want: &[LogRecord], within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let mut done = 0;
        for r in want {
            if store
                .get(&r.message_id)
                .await
                .unwrap()
                .is_some_and(|g| g.history.len() == r.history.len())
            {
                done += 1;
            }
        }
        if done == want.len() || Instant::now() > deadline {
            return done;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn restart_loses_nothing_and_duplicates_nothing(kind: Kind) {
    let backend = Backend::start(kind).await;
    let events = generate(800, 5);
    let want = fold(&events);
    let (first, second) = events.split_at(events.len() / 2);
    for e in first {
        backend.sink.publish(e.clone()).await.unwrap();
    }
    // Logquery #1 applies but dies before acknowledging anything.
    let crashed = ingest::spawn(
        Arc::new(NeverAcks(backend.source().await)),
        backend.store.clone(),
        Tail::default(),
    );
    let applied = wait_for(
        backend.store.as_ref(),
        &fold(first),
        Duration::from_secs(20),
    )
    .await;
    crashed.abort();
    let _ = crashed.await;
    assert!(applied > 0, "the first logquery ingested something");
    // Meanwhile delivery goes on, and re-sends part of what it sent.
    for e in second.iter().chain(first.iter().step_by(7)) {
        backend.sink.publish(e.clone()).await.unwrap();
    }
    // Logquery #2 re-reads everything #1 left unacknowledged.
    let tail = Tail::default();
    let mut changes = tail.subscribe();
    let restarted = ingest::spawn(backend.source().await, backend.store.clone(), tail);
    let done = wait_for(backend.store.as_ref(), &want, Duration::from_secs(20)).await;
    assert_eq!(
        done,
        want.len(),
        "{}: every message complete after the restart",
        backend.name
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    restarted.abort();
    for r in &want {
        let got = backend.store.get(&r.message_id).await.unwrap().unwrap();
        let attempts: Vec<u32> = got.history.iter().map(|a| a.attempt).collect();
        let expected: Vec<u32> = (1..=r.attempts).collect();
        assert_eq!(
            attempts, expected,
            "{}: attempts of {} in order, once each",
            backend.name, r.message_id
        );
        assert_eq!(&got, r);
    }
    // Replays (of events #1 already applied) changed nothing: only the second half did.
    let mut changed = 0;
    while let Ok(r) = changes.try_recv() {
        assert!(
            second.iter().any(|e| e.message_id == r.message_id),
            "replay changed {}",
            r.message_id
        );
        changed += 1;
    }
    assert!(changed > 0);
}

on_both_backends!(restart_loses_nothing_and_duplicates_nothing => memory_restart_mid_ingestion_loses_nothing_and_duplicates_nothing, redis_restart_mid_ingestion_loses_nothing_and_duplicates_nothing, postgres_restart_mid_ingestion_loses_nothing_and_duplicates_nothing);
