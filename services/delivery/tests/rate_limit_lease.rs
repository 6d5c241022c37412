//! The shared rate limit on a real Redis, with permits leased a few at a
//! time ([`wxpush_delivery::ratelimit`]): replicas well under the limit ask
//! Redis once per lease, not once per send; replicas sending steadily
//! slower than their leases hand the unspent permits back, so together
//! they get the whole rate; replicas over it stay within the rate over the
//! period plus one lease window, plus the burst.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use wxpush_delivery::config::RateLimitSettings;
use wxpush_delivery::ratelimit::{LEASE_WINDOW, RateLimiter, RedisRateLimiter};
use wxpush_redis::Timeouts;
use wxpush_testkit::RedisServer;

fn replicas(redis: &RedisServer, settings: &RateLimitSettings) -> [Arc<RedisRateLimiter>; 2] {
    [0, 1].map(|_| {
        let conn = wxpush_redis::connect(&redis.url(), Timeouts::Commands).unwrap();
        Arc::new(RedisRateLimiter::new(settings, conn, "t:"))
    })
}

/// Script calls Redis ran so far (`INFO commandstats`).
async fn script_calls(redis: &RedisServer) -> u64 {
    let conn = wxpush_redis::connect(&redis.url(), Timeouts::Commands).unwrap();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn.clone())
        .await
        .unwrap();
    info.lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_limit_replicas_ask_redis_once_per_lease() {
    let redis = RedisServer::start();
    let settings = RateLimitSettings {
        per_second: 100_000.0,
        burst: 50_000,
    };
    let limiters = replicas(&redis, &settings);
    let before = script_calls(&redis).await;
    let tasks = (0..8).map(|i| {
        let limiter = limiters[i % 2].clone();
        tokio::spawn(async move {
            let mut admitted = 0u64;
            for _ in 0..2_500 {
                if limiter.check("wx_app").await.unwrap().is_none() {
                    admitted += 1;
                }
            }
            admitted
        })
    });
    let admitted: u64 = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .sum();
    let calls = script_calls(&redis).await - before;
    assert_eq!(admitted, 20_000, "all within the burst");
    assert!(
        calls * 16 <= admitted,
        "{calls} Redis calls for {admitted} sends: leases of up to 64 were not used"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_limit_replicas_stay_within_the_rate_and_one_lease_window() {
    let redis = RedisServer::start();
    let settings = RateLimitSettings {
        per_second: 1_000.0,
        burst: 50,
    };
    let limiters = replicas(&redis, &settings);
    let admitted = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let run = Duration::from_secs(2);
    let tasks = (0..8).map(|i| {
        let (limiter, admitted) = (limiters[i % 2].clone(), admitted.clone());
        tokio::spawn(async move {
            while started.elapsed() < run {
                match limiter.check("wx_app").await.unwrap() {
                    None => {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(wait) => tokio::time::sleep(wait).await,
                }
            }
        })
    });
    for t in futures_util::future::join_all(tasks).await {
        t.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let admitted = admitted.load(Ordering::Relaxed) as f64;
    let most = 1_000.0 * (secs + LEASE_WINDOW.as_secs_f64()) + 50.0;
    assert!(
        admitted <= most,
        "{admitted} sends in {secs:.2} s: more than {most}"
    );
    // Liveness only (the test shares two cores): the limit is not a wall.
    assert!(admitted >= 500.0 * secs, "{admitted} sends in {secs:.2} s");
}

/// Eight replicas each sending 100/s against a shared 1 000/s with a
/// burst of 50: a lease is 12 permits, of which a replica spends 5 before
/// it ends. Kept, the unspent ones would use up 240/s per replica and sends
/// would be refused at 80 % of the limit (about 700 of 2 400 were);
/// handed back, none is but a few of the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sending_slower_than_their_leases_hand_back_what_they_did_not_spend() {
    let redis = RedisServer::start();
    let settings = RateLimitSettings {
        per_second: 1_000.0,
        burst: 50,
    };
    let limiters: Vec<_> = (0..4).flat_map(|_| replicas(&redis, &settings)).collect();
    let tasks = limiters.iter().map(|limiter| {
        let limiter = limiter.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let (mut sent, mut refused) = (0u32, 0u32);
            for _ in 0..300 {
                tick.tick().await;
                match limiter.check("wx_app").await.unwrap() {
                    None => sent += 1,
                    Some(_) => refused += 1,
                }
            }
            (sent, refused)
        })
    });
    let counts: Vec<(u32, u32)> = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let refused: u32 = counts.iter().map(|c| c.1).sum();
    println!("sent and refused per replica: {counts:?}");
    // The first leases of eight replicas starting at once exceed the burst.
    assert!(refused <= 40, "{counts:?}: refused at 80 % of the limit");
}
