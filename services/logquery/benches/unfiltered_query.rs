//! How a query with no filter (only a page) costs as distinct combinations
//! of (status, errcode, app, template) grow: with Redis it merges every combo
//! zset, where a filtered query walks one index. Each run loads the same
//! 30 000 records into a private redis-server, spread over 10, 100 and
//! 1 000 combos, and times the first page and ten pages deep, unfiltered and
//! by openid (the baseline, one zset), as medians of 25 runs. Results are
//! ratios against that baseline in the same run; no target is asserted.
//!
//! `cargo bench -p wxpush-logquery --bench unfiltered_query`

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Backend, Kind, generate, query};
use std::time::{Duration, Instant};
use wxpush_logquery::LogStore;
use wxpush_proto::v1::LogFilter;

const RECORDS: usize = 30_000;
const RUNS: usize = 25;

/// Median time of `pages` pages of `f`, page size 50.
async fn median_pages(store: &dyn LogStore, f: &LogFilter, pages: usize) -> Duration {
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let started = Instant::now();
        let mut token = String::new();
        for _ in 0..pages {
            let page = store.query(&query(f, 50, token)).await.expect("query");
            token = page.next_page_token;
        }
        times.push(started.elapsed());
    }
    times.sort();
    times[RUNS / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!(
        "combos  unfiltered 1 page  by openid 1 page  ratio  unfiltered 10 pages  by openid 10 pages  ratio"
    );
    for combos in [10usize, 100, 1_000] {
        let backend = Backend::start(Kind::Redis).await;
        let mut events = generate(RECORDS, 17);
        let mut order = std::collections::HashMap::new();
        for e in &mut events {
            let n = order.len();
            let i = *order.entry(e.message_id.clone()).or_insert(n);
            // One app, one status: the template alone makes the combo.
            e.template_key = format!("tpl_{}", i % combos);
            e.template_id = e.template_key.clone();
            e.app_id = "wx_app".into();
            e.status = 1;
            e.errcode = 0;
        }
        for chunk in events.chunks(4000) {
            backend.store.apply(chunk).await.expect("apply");
        }
        let all = LogFilter::default();
        let user = LogFilter {
            openid: "o_user_7".into(),
            ..Default::default()
        };
        let store = backend.store.as_ref();
        let (u1, b1) = (
            median_pages(store, &all, 1).await,
            median_pages(store, &user, 1).await,
        );
        let (u10, b10) = (
            median_pages(store, &all, 10).await,
            median_pages(store, &user, 10).await,
        );
        let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
        let ratio = |a: Duration, b: Duration| format!("{:.1}x", a.as_secs_f64() / b.as_secs_f64());
        println!(
            "{combos:>6}  {:>17}  {:>16}  {:>5}  {:>19}  {:>18}  {:>5}",
            ms(u1),
            ms(b1),
            ratio(u1, b1),
            ms(u10),
            ms(b10),
            ratio(u10, b10)
        );
    }
}
