//! The log through the whole suite: TailLogs shows a user's send within a
//! second and nothing of other users; GetMessageHistory and GetStats see it.

mod common;

use common::{Harness, shipped_to};
use std::time::{Duration, Instant};
use wxpush_proto::Timestamp;
use wxpush_proto::v1::*;

#[tokio::test]
async fn tail_shows_a_users_send_within_a_second_and_stats_count_it() {
    let h = Harness::start().await;
    let mut tail = h
        .logs()
        .tail_logs(TailLogsRequest {
            filter: Some(LogFilter {
                openid: "o_demo_follower".into(),
                ..Default::default()
            }),
        })
        .await
        .expect("TailLogs")
        .into_inner();
    let other = h
        .delivery()
        .send(shipped_to("o_demo_unfollowed"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(other.status, DeliveryStatus::Failed as i32);
    let started = Instant::now();
    let mine = h
        .delivery()
        .send(shipped_to("o_demo_follower"))
        .await
        .unwrap()
        .into_inner();
    let got = tokio::time::timeout(Duration::from_secs(1), tail.message())
        .await
        .expect("within 1 s")
        .unwrap()
        .expect("stream open");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(
        got.message_id, mine.message_id,
        "the unfollowed user's record is not shown"
    );
    assert_eq!(got.trace_id, mine.trace_id);
    let quiet = tokio::time::timeout(Duration::from_millis(300), tail.message()).await;
    assert!(quiet.is_err(), "nothing else: {quiet:?}");
    // An open TailLogs stream would hold up the graceful shutdown.
    drop(tail);

    let history = h
        .logs()
        .get_message_history(GetMessageHistoryRequest {
            message_id: other.message_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(history.attempts.len(), 1);
    assert_eq!(history.attempts[0].errcode, 43004);

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let stats = h
        .logs()
        .get_stats(GetStatsRequest {
            time_range: Some(TimeRange {
                start: Some(Timestamp {
                    seconds: now - 3600,
                    nanos: 0,
                }),
                end: Some(Timestamp {
                    seconds: now + 60,
                    nanos: 0,
                }),
            }),
            bucket_seconds: 3600,
            group_by: StatsGroupBy::Errcode as i32,
            filter: None,
        })
        .await
        .unwrap()
        .into_inner();
    let count = |group: &str| {
        stats
            .series
            .iter()
            .filter(|s| s.group == group)
            .flat_map(|s| &s.points)
            .map(|p| p.count)
            .sum::<u64>()
    };
    assert_eq!((count("0"), count("43004")), (1, 1), "{stats:?}");
    h.suite.shutdown().await;
}
