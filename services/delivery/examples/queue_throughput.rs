//! The queue's own throughput on a Redis or a Redis Cluster, for
//! `bench/bench.py shards`: `messages` are pushed (batches of 100), then
//! `readers` queue readers (each its own process-like consumer) take them,
//! store a final status and acknowledge, as delivery's workers do around a
//! WeChat call. Prints one JSON line: messages, seconds, rate.
//!
//! `queue_throughput REDIS_URL PARTITIONS MESSAGES READERS`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use wxpush_delivery::config::QueueSettings;
use wxpush_delivery::queue::{Queue, QueuedMessage, RedisQueue, now_ms};
use wxpush_proto::v1::{DeliveryResult, DeliveryStatus};
use wxpush_redis::Partitions;

fn message(i: usize) -> QueuedMessage {
    QueuedMessage {
        message_id: format!("{:032x}", i as u128 * 104_729 + 1),
        traceparent: format!("00-{:032x}-{:016x}-01", i, i),
        app_id: "wx_demo_oa".into(),
        template_key: "order_shipped".into(),
        openid: format!("o6_bmjrPTlm6_2sgVt7hMZ{i:06}"),
        variables: [("order_id".to_string(), format!("SF{i:010}"))].into(),
        accepted_at_ms: now_ms(),
        ..Default::default()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, partitions, messages, readers] = args.as_slice() else {
        anyhow::bail!("usage: queue_throughput REDIS_URL PARTITIONS MESSAGES READERS");
    };
    let partitions = Partitions::new(partitions.parse()?).map_err(anyhow::Error::msg)?;
    let (messages, readers): (usize, usize) = (messages.parse()?, readers.parse()?);
    let settings = QueueSettings::default();
    let open = || RedisQueue::open(url, "bench:", partitions, &settings);
    let producer = open()?;
    let started = Instant::now();
    let all: Vec<QueuedMessage> = (0..messages).map(message).collect();
    let pushes = all.chunks(100).map(|chunk| producer.push(chunk, 0));
    for pushed in futures_util::future::join_all(pushes).await {
        pushed?;
    }
    let pushed_s = started.elapsed().as_secs_f64();
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..readers {
        let (queue, done) = (open()?, done.clone());
        tasks.push(tokio::spawn(async move {
            while done.load(Ordering::Relaxed) < messages {
                let batch = queue.next_batch(64).await?;
                let steps = batch.iter().map(|d| async {
                    let result = DeliveryResult {
                        message_id: d.message.message_id.clone(),
                        status: DeliveryStatus::Sent.into(),
                        ..Default::default()
                    };
                    queue.set_status(&result).await?;
                    queue.ack(&d.id).await
                });
                for step in futures_util::future::join_all(steps).await {
                    step?;
                }
                done.fetch_add(batch.len(), Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{{\"messages\": {messages}, \"push_s\": {pushed_s:.3}, \"seconds\": {secs:.3}, \"rate_per_s\": {:.0}}}",
        messages as f64 / secs
    );
    Ok(())
}
