//! Retention on both stores: once records are older than the retention and
//! it has been enforced, they leave every answer (queries through each
//! index, history, stats), and on Redis their index entries are gone too.

#[macro_use]
mod common;

use common::{Backend, Kind, brute_force, fold, generate, page_all, ts};
use std::time::Duration;
use wxpush_logquery::stats::check_stats;
use wxpush_logquery::store::now_micros;
use wxpush_logquery::{LogStore, Retention};
use wxpush_proto::v1::{GetStatsRequest, LogFilter, TimeRange};

const RETENTION: Duration = Duration::from_secs(6);

async fn old_records_leave_every_answer(kind: Kind) {
    let backend = Backend::start_with(kind, Retention(RETENTION)).await;
    let mut events = generate(300, 21);
    let now = now_micros();
    // Every other message 4 s old (past the 6 s retention 2.5 s from now),
    // the rest fresh; one trace and one user span both.
    let mut order: Vec<String> = Vec::new();
    for e in &mut events {
        if !order.contains(&e.message_id) {
            order.push(e.message_id.clone());
        }
        let i = order.iter().position(|m| m == &e.message_id).unwrap() as i64;
        let age = if i % 2 == 0 { 4_000_000 } else { 0 };
        e.accepted_at = ts(now - age - i * 1_000);
        if i < 20 {
            e.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736".into();
            e.openid = "o_user_both".into();
        }
    }
    backend.store.apply(&events).await.expect("apply");
    let all = fold(&events);
    let cutoff = now - 4_000_000 + 500_000;
    let (old, fresh): (Vec<_>, Vec<_>) = all.iter().cloned().partition(|r| {
        r.accepted_at
            .is_some_and(|t| t.seconds * 1_000_000 + i64::from(t.nanos) / 1000 < cutoff)
    });
    assert_eq!((old.len(), fresh.len()), (150, 150));

    tokio::time::sleep(Duration::from_micros(
        (now + 2_500_000 - now_micros()).max(0) as u64,
    ))
    .await;
    let removed = backend.store.enforce_retention().await.expect("retention");
    if !matches!(kind, Kind::Postgres) {
        assert_eq!(removed, 150, "{}: one entry per old record", backend.name);
    } // PostgreSQL leaves them on disk until their whole day is past (below).

    for f in [
        LogFilter::default(),
        LogFilter {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            ..Default::default()
        },
        LogFilter {
            openid: "o_user_both".into(),
            ..Default::default()
        },
        LogFilter {
            app_id: "wx_app_1".into(),
            ..Default::default()
        },
    ] {
        let (got, complete) = page_all(backend.store.as_ref(), &f, 40, 100).await;
        assert!(complete);
        let want = brute_force(&fresh, &f);
        assert!(!want.is_empty(), "{f:?} finds fresh records");
        assert_eq!(
            got.iter().map(|r| &r.message_id).collect::<Vec<_>>(),
            want.iter().map(|r| &r.message_id).collect::<Vec<_>>(),
            "{}: {f:?}",
            backend.name
        );
    }
    assert_eq!(backend.store.get(&old[0].message_id).await.unwrap(), None);
    assert!(
        backend
            .store
            .get(&fresh[0].message_id)
            .await
            .unwrap()
            .is_some()
    );

    let stats = check_stats(GetStatsRequest {
        time_range: Some(TimeRange {
            start: ts(now - 60_000_000),
            end: ts(now + 60_000_000),
        }),
        bucket_seconds: 3600,
        group_by: 1,
        filter: None,
    })
    .expect("valid stats");
    let counted: u64 = backend
        .store
        .stats(&stats)
        .await
        .unwrap()
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.count))
        .sum();
    assert_eq!(
        counted, 150,
        "{}: stats count the fresh records",
        backend.name
    );

    if let (Kind::Redis, Some(url)) = (kind, backend.redis_url()) {
        redis_indexes_hold_no_old_entry(&url, now - 4_000_000 + 500_000).await;
    }
}

/// No combo or user zset keeps an entry below `cutoff`, and the combo
/// registry names no empty combo.
async fn redis_indexes_hold_no_old_entry(url: &str, cutoff: i64) {
    use redis::AsyncCommands;
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let combos: Vec<String> = conn.smembers("wxpush:log:combos").await.unwrap();
    assert!(!combos.is_empty());
    for c in &combos {
        let key = format!("wxpush:log:c:{c}");
        let left: u64 = conn.zcount(&key, "-inf", cutoff).await.unwrap();
        let total: u64 = conn.zcard(&key).await.unwrap();
        assert_eq!(left, 0, "{key} keeps old entries");
        assert!(total > 0, "{key} is empty but still registered");
    }
}

on_both_backends!(old_records_leave_every_answer => memory_old_records_leave_every_answer, redis_old_records_leave_every_answer, postgres_old_records_leave_every_answer);

/// On PostgreSQL a day leaves the disk whole, by dropping its partitions,
/// once all of it is past the retention; later days stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_drops_whole_days_past_retention() {
    let backend = Backend::start(Kind::Postgres).await;
    let pg = backend.postgres.as_ref().unwrap();
    let day = 86_400_000_000;
    let now = now_micros();
    let mut events = generate(90, 3);
    let mut ids: Vec<String> = Vec::new();
    for e in &mut events {
        if !ids.contains(&e.message_id) {
            ids.push(e.message_id.clone());
        }
        let i = ids.iter().position(|m| m == &e.message_id).unwrap() as i64;
        // A third each: 3 days old, 2 days old, fresh.
        e.accepted_at = ts(now - [3, 2, 0][(i % 3) as usize] * day - i);
    }
    backend
        .store
        .apply(&events)
        .await
        .expect("apply (7-day retention)");
    let partition = |age: i64| {
        let at = chrono::DateTime::from_timestamp_micros(now - age * day).unwrap();
        format!("log_records_p{}", at.format("%Y%m%d"))
    };
    let count = |table: String| pg.psql(&format!("SELECT count(*) FROM {table}"));
    assert_eq!(count(partition(2)), "30");
    // The attempts as SQL readers (the Grafana dashboard) see them.
    let folded = fold(&events);
    let r = folded
        .iter()
        .find(|r| r.history.len() > 1)
        .expect("a retried message");
    let in_sql = pg.psql(&format!(
        "SELECT string_agg(concat_ws('/', a->>'attempt', a->>'status', a->>'errcode', a->>'latency_ms', \
         a->>'occurred_us'), ',') \
         FROM log_records r, jsonb_array_elements(r.history) a WHERE r.message_id = '{}'",
        r.message_id
    ));
    let want: Vec<String> = r
        .history
        .iter()
        .map(|a| {
            let occurred = a
                .occurred_at
                .map_or(0, |t| t.seconds * 1_000_000 + i64::from(t.nanos) / 1_000);
            format!(
                "{}/{}/{}/{}/{occurred}",
                a.attempt, a.status, a.errcode, a.latency_ms
            )
        })
        .collect();
    assert_eq!(in_sql, want.join(","));
    // The same database, now kept for 36 hours.
    let short = wxpush_logquery::PostgresLogStore::open(
        &pg.url(),
        Retention(Duration::from_secs(36 * 3600)),
    )
    .unwrap();
    short.enforce_retention().await.expect("retention");
    let exists = |table: String| pg.psql(&format!("SELECT to_regclass('{table}') IS NOT NULL"));
    assert_eq!(exists(partition(3)), "f", "the day 3 days ago is dropped");
    assert_eq!(count(partition(0)), "30", "today stays");
    assert_eq!(exists(partition(-2)), "t", "days ahead are made");
    // What is past the retention but still on disk is in no answer.
    let (got, complete) = page_all(&short, &LogFilter::default(), 100, 10).await;
    assert!(complete);
    assert_eq!(got.len(), 30, "only today's records are answered");
    assert!(
        got.iter()
            .all(|r| r.accepted_at.unwrap().seconds * 1_000_000 > now - day)
    );
}

/// A day's partition gone under a replica that thought it had it (another
/// replica dropped it): the batch makes it again and lands, nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_makes_a_partition_again_when_it_is_gone() {
    let backend = Backend::start(Kind::Postgres).await;
    let pg = backend.postgres.as_ref().unwrap();
    let now = now_micros();
    let mut events = generate(20, 9);
    for e in &mut events {
        e.accepted_at = ts(now);
    }
    let (first, second) = events.split_at(events.len() / 2);
    backend.store.apply(first).await.expect("apply");
    let today = chrono::DateTime::from_timestamp_micros(now).unwrap();
    pg.psql(&format!(
        "DROP TABLE log_records_p{}",
        today.format("%Y%m%d")
    ));
    backend
        .store
        .apply(second)
        .await
        .expect("made again, applied");
    let want: Vec<_> = fold(second);
    for r in &want {
        assert_eq!(
            backend.store.get(&r.message_id).await.unwrap().as_ref(),
            Some(r)
        );
    }
}
