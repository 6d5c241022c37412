//! Trace lookups on both stores: a trace with one message, a trace with
//! many over several days (a batch, a caller's loop), and two traces whose
//! ids share the bytes the Redis trace index keys them by. Each query must
//! return exactly the brute-force answer, on every page size.

#[macro_use]
mod common;

use common::{Backend, Kind, Rng, brute_force, fold, generate, page_all, ts};
use std::collections::HashMap;
use wxpush_logquery::LogStore;
use wxpush_proto::v1::{LogFilter, TimeRange};

/// Every page of a query: the message ids.
async fn query_all(store: &dyn LogStore, f: &LogFilter, size: u32) -> Vec<String> {
    let (records, complete) = page_all(store, f, size, usize::MAX).await;
    assert!(complete);
    records.into_iter().map(|r| r.message_id).collect()
}

async fn trace_lookups_match_brute_force(kind: Kind) {
    let backend = Backend::start(kind).await;
    let mut events = generate(400, 5);
    let batch = "4bf92f3577b34da6a3ce929d0e0e4736";
    // The same first 18 hex digits: one day bucket, one field.
    let twins = [
        "00f067aa0ba902b7aaaaaaaaaaaaaaaa",
        "00f067aa0ba902b7aabbbbbbbbbbbbbb",
    ];
    let mut traces: HashMap<String, String> = HashMap::new();
    for e in &mut events {
        let n = traces.len();
        let trace = traces
            .entry(e.message_id.clone())
            .or_insert_with(|| match n {
                0..40 => batch.into(),
                40..44 => twins[n % 2].into(),
                _ => format!("{n:032x}"),
            });
        e.trace_id = trace.clone();
    }
    // The twins on one day, so they meet in one bucket.
    let day_of_first = events[0].accepted_at;
    for e in &mut events {
        if twins.contains(&e.trace_id.as_str()) {
            e.accepted_at = day_of_first;
        }
    }
    for chunk in events.chunks(97) {
        backend.store.apply(chunk).await.expect("apply");
    }
    let all = fold(&events);
    let mut rng = Rng::new(9);
    let mut checked = 0;
    for trace in [batch, twins[0], twins[1], &format!("{:032x}", 100)] {
        for size in [1, 3, 50] {
            let mut f = LogFilter {
                trace_id: trace.to_string(),
                ..Default::default()
            };
            if size == 3 {
                // A window inside the trace's own time span.
                let mine = brute_force(&all, &f);
                let at = |i: usize| {
                    mine[i]
                        .accepted_at
                        .map_or(0, |t| t.seconds * 1_000_000 + i64::from(t.nanos) / 1000)
                };
                let lo = rng.below(mine.len() as u64) as usize;
                f.time_range = Some(TimeRange {
                    start: ts(at(lo)),
                    end: ts(at(0) + 1),
                });
            }
            let want: Vec<String> = brute_force(&all, &f)
                .into_iter()
                .map(|r| r.message_id.clone())
                .collect();
            let got = query_all(backend.store.as_ref(), &f, size).await;
            assert_eq!(
                got, want,
                "{}: trace {trace}, page size {size}",
                backend.name
            );
            checked += want.len();
        }
    }
    let batch_count = brute_force(
        &all,
        &LogFilter {
            trace_id: batch.into(),
            ..Default::default()
        },
    )
    .len();
    assert_eq!(batch_count, 40, "the batch trace holds its 40 messages");
    // Ranges with no day to look in: before retention, and in the future.
    let now = wxpush_logquery::store::now_micros();
    let day = 86_400_000_000;
    for (start, end) in [
        (now - 30 * day, now - 20 * day),
        (now + 2 * day, now + 3 * day),
    ] {
        let f = LogFilter {
            trace_id: batch.into(),
            time_range: Some(TimeRange {
                start: ts(start),
                end: ts(end),
            }),
            ..Default::default()
        };
        assert!(query_all(backend.store.as_ref(), &f, 50).await.is_empty());
    }
    assert!(checked > 100, "the lookups found records ({checked})");
}

on_both_backends!(trace_lookups_match_brute_force => memory_trace_lookups_match_brute_force, redis_trace_lookups_match_brute_force);
