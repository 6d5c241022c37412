//! Appends delivery events to the event stream as fast as Redis takes them,
//! for the logquery benchmark (`bench/bench.py logquery`): one SENT event
//! per message, `count` messages to `users` recipients over the last six
//! days, in the exact entry format delivery writes. Ids are derived from the
//! message number so the benchmark can ask for any of them: message `m{n}`,
//! trace id `n + 1` as 32 hex digits, openid `o_bench_{n % users}`.
//!
//! Usage: `load_events REDIS_URL PREFIX COUNT USERS`

use prost::Message;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wxpush_proto::v1::{DeliveryEvent, DeliveryStatus, MessageKind};

const BATCH: usize = 2_000;
const TEMPLATES: [&str; 4] = ["order_shipped", "order_paid", "refund_done", "coupon_sent"];

fn event(n: u64, count: u64, users: u64, now: SystemTime) -> DeliveryEvent {
    // Spread over six days, oldest first; a few failures among them.
    let age = Duration::from_millis(6 * 86_400_000 * (count - n) / count);
    let at = wxpush_proto::timestamp(now - age);
    let failed = n.is_multiple_of(50);
    DeliveryEvent {
        event_id: format!("e{n}"),
        message_id: format!("m{n}"),
        trace_id: format!("{:032x}", n + 1),
        app_id: if n.is_multiple_of(5) {
            "wx_bench_mp"
        } else {
            "wx_bench_oa"
        }
        .into(),
        openid: format!("o_bench_{}", n % users),
        caller: "bench".into(),
        template_key: TEMPLATES[(n % 4) as usize].into(),
        template_id: format!("tmpl_{}", n % 4),
        kind: MessageKind::Template.into(),
        attempt: 1,
        status: if failed {
            DeliveryStatus::Failed
        } else {
            DeliveryStatus::Sent
        }
        .into(),
        errcode: if failed { 43004 } else { 0 },
        errmsg: if failed { "require subscribe" } else { "ok" }.into(),
        wechat_msgid: if failed {
            String::new()
        } else {
            format!("{}", 2_000_000_000 + n)
        },
        latency_ms: 3,
        accepted_at: Some(at),
        occurred_at: Some(at),
        data_json: format!(
            r#"{{"character_string1":{{"value":"SF{n:010}"}},"thing2":{{"value":"已发货"}},"amount3":{{"value":"{}.00元"}}}}"#,
            n % 1000
        ),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, prefix, count, users] = args.as_slice() else {
        anyhow::bail!("usage: load_events REDIS_URL PREFIX COUNT USERS");
    };
    let (count, users): (u64, u64) = (count.parse()?, users.parse()?);
    // One partition: the benchmark's single Redis.
    let key = wxpush_events::stream_keys(prefix, wxpush_redis::Partitions::ONE).remove(0);
    let mut conn = redis::Client::open(url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let now = SystemTime::now();
    let started = std::time::Instant::now();
    let mut n = 0;
    while n < count {
        let mut pipe = redis::pipe();
        for _ in 0..BATCH.min((count - n) as usize) {
            pipe.cmd("XADD")
                .arg(&key)
                .arg("*")
                .arg("d")
                .arg(event(n, count, users, now).encode_to_vec())
                .ignore();
            n += 1;
        }
        pipe.exec_async(&mut conn).await?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{count} events appended in {secs:.1} s ({:.0}/s) at {}",
        count as f64 / secs,
        now.duration_since(UNIX_EPOCH)?.as_secs()
    );
    Ok(())
}
