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
    let other = h.send(shipped_to("o_demo_unfollowed")).await;
    assert_eq!(other.status, DeliveryStatus::Failed as i32);
    let started = Instant::now();
    let mine = h.send(shipped_to("o_demo_follower")).await;
    let got = tokio::time::timeout(Duration::from_secs(1), tail.message())
        .await
        .expect("within 1 s")
        .unwrap()
        .expect("stream open");
    let Some(tail_logs_response::Event::Record(got)) = got.event else {
        panic!("expected a record, got {got:?}");
    };
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(
        got.message_id, mine.message_id,
        "the unfollowed user's record is not shown"
    );
    assert_eq!(got.trace_id, mine.trace_id);
    let quiet = tokio::time::timeout(Duration::from_millis(300), tail.message()).await;
    assert!(quiet.is_err(), "nothing else: {quiet:?}");
    // The stream stays open: shutdown ends it (it would otherwise hold the drain).

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

/// Lines a child process prints, read on a thread.
fn lines_of(out: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The next line's JSON record; panics after 10 s (a hang, not a speed
/// target).
async fn next_record(lines: &mut std::sync::mpsc::Receiver<String>) -> serde_json::Value {
    let rx = std::mem::replace(lines, std::sync::mpsc::channel().1);
    let (line, rx) = tokio::task::spawn_blocking(move || {
        let line = rx.recv_timeout(Duration::from_secs(10));
        (line, rx)
    })
    .await
    .unwrap();
    *lines = rx;
    let line = line.expect("a line from wxpush logs --follow");
    let event: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?} is not JSON: {e}"));
    // A TailLogsResponse in the protobuf JSON mapping: the oneof's member.
    event["record"].clone()
}

/// `wxpush logs --follow`, a real process against the suite: the user's
/// earlier message first, then each new one as it is logged (one JSON
/// object per line, nothing of other users), and exit 0 when the suite
/// shuts down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_prints_records_as_they_are_logged_until_shutdown() {
    let h = Harness::start().await;
    let earlier = h.send(shipped_to("o_demo_follower")).await;
    h.find_one(LogFilter {
        message_id: earlier.message_id.clone(),
        ..Default::default()
    })
    .await;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wxpush"))
        .args(["logs", "--follow", "--json", "--openid", "o_demo_follower"])
        .args(["--addr", &h.suite.grpc_url()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("wxpush runs");
    let mut lines = lines_of(child.stdout.take().unwrap());
    let first = next_record(&mut lines).await;
    assert_eq!(first["message_id"], earlier.message_id.as_str());

    h.delivery()
        .send(shipped_to("o_demo_unfollowed"))
        .await
        .unwrap();
    let mine = h.send(shipped_to("o_demo_follower")).await;
    let next = next_record(&mut lines).await;
    assert_eq!(next["message_id"], mine.message_id.as_str(), "{next}");
    assert_eq!(next["openid"], "o_demo_follower");

    h.suite.shutdown().await;
    let exit = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    let status = exit.expect("wxpush logs --follow exits when the server ends the stream");
    assert!(status.success(), "{status:?}");
    for line in lines.try_iter() {
        assert!(
            line.contains(&mine.message_id),
            "nothing else printed: {line}"
        );
    }
}
