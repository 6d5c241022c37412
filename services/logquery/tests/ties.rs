//! A SendBatch accepted in one millisecond: 1 500 records with one
//! accepted_at, in one combo and for one user. Paging through them (no
//! filter, by openid, by app) returns each once, in message id order, on
//! both stores; on Redis more ties than one fetch holds must not stall the
//! walk.

#[macro_use]
mod common;

use common::{Backend, Kind, brute_force, fold, generate, page_all, ts};
use std::time::Duration;
use wxpush_proto::v1::LogFilter;

async fn a_big_tie_pages_through_once(kind: Kind) {
    let backend = Backend::start(kind).await;
    let at = wxpush_logquery::store::now_micros() - 60_000_000;
    let mut events = generate(1_500, 31);
    for e in &mut events {
        e.accepted_at = ts(at);
        e.app_id = "wx_batch".into();
        e.template_key = "tpl_batch".into();
        e.template_id = "tid_batch".into();
        e.openid = "o_batch".into();
        e.status = 1;
        e.errcode = 0;
    }
    for chunk in events.chunks(500) {
        backend.store.apply(chunk).await.expect("apply");
    }
    let all = fold(&events);
    for f in [
        LogFilter::default(),
        LogFilter {
            openid: "o_batch".into(),
            ..Default::default()
        },
        LogFilter {
            app_id: "wx_batch".into(),
            ..Default::default()
        },
    ] {
        for size in [50, 500] {
            let paged = tokio::time::timeout(
                Duration::from_secs(60),
                page_all(backend.store.as_ref(), &f, size, 1_000),
            )
            .await
            .unwrap_or_else(|_| panic!("{}: paging {f:?} stalled", backend.name));
            let (got, complete) = paged;
            assert!(complete);
            let want = brute_force(&all, &f);
            assert_eq!(got.len(), 1_500, "{}: {f:?} page size {size}", backend.name);
            assert!(
                got.iter()
                    .zip(&want)
                    .all(|(g, w)| g.message_id == w.message_id),
                "{}: {f:?} page size {size}: the brute-force order",
                backend.name
            );
        }
    }
}

on_both_backends!(a_big_tie_pages_through_once => memory_a_big_tie_pages_through_once, redis_a_big_tie_pages_through_once);
