//! Reading the Redis indexes: a query picks the cheapest candidate source
//! (a trace's first messages and zset, a user's zset, or the union of the
//! matching combos, all combos when nothing else is set; by `ZCOUNT` in the
//! time range), merges it newest first from the cursor, and checks each
//! candidate record against the whole filter. Only candidates are read,
//! never every record.

use super::keys::{Combo, has_combo_fields};
use super::{RedisLogStore, trace};
use crate::error::StoreError;
use crate::filter::{Cursor, Query, bounds, matches, micros};
use crate::stats::{StatsCounter, StatsQuery, align, status_name};
use std::collections::VecDeque;
use wxpush_proto::v1::{LogFilter, LogRecord, StatsGroupBy, StatsSeries};

/// One zset walked newest first below an exclusive position.
struct Walker {
    key: String,
    buf: VecDeque<Cursor>,
    pos: Option<Cursor>,
    done: bool,
    /// Entries its next fetch asks for (0: not fetched yet); doubles on
    /// each fetch, so a walker the merge keeps drawing from reads in bulk.
    batch: usize,
}

/// Where a query's candidates come from: zsets, and entries already read
/// (a trace's first messages); `exact` when every candidate matches.
struct Source {
    keys: Vec<String>,
    read: Vec<Cursor>,
    exact: bool,
}

impl Source {
    fn zsets(keys: Vec<String>, exact: bool) -> Self {
        Self {
            keys,
            read: Vec::new(),
            exact,
        }
    }
}

/// The walkers of one source, merged newest first.
struct Merge {
    /// The last id handed out, so a record met twice is handed out once.
    last: Option<Cursor>,
    walkers: Vec<Walker>,
    lower: i64,
}

/// The most entries one fetch of a zset asks for.
const MAX_BATCH: usize = 1000;

fn score_arg(v: i64) -> String {
    v.to_string()
}

impl Merge {
    /// Walks `source` in `[lower, upper)`; its entries already read are in
    /// that range and newest first.
    fn new(source: Source, lower: i64, upper: Option<Cursor>) -> Self {
        let mut walkers: Vec<Walker> = source
            .keys
            .into_iter()
            .map(|key| Walker {
                key,
                buf: VecDeque::new(),
                pos: upper.clone(),
                done: false,
                batch: 0,
            })
            .collect();
        walkers.push(Walker {
            key: String::new(),
            buf: source.read.into(),
            pos: None,
            done: true,
            batch: 0,
        });
        Self {
            last: None,
            walkers,
            lower,
        }
    }

    /// Refills the walkers `todo` (one pipeline): a walker's first fetch
    /// asks for `first` entries, each later one for twice its last. Entries
    /// with the position's score but not below its member are skipped; a
    /// walker left empty by such ties is fetched again, with a larger batch.
    async fn refill(
        &mut self,
        store: &RedisLogStore,
        todo: &[usize],
        first: usize,
    ) -> Result<(), StoreError> {
        let min = if self.lower == i64::MIN {
            "-inf".to_string()
        } else {
            score_arg(self.lower)
        };
        let mut pipe = redis::pipe();
        for &i in todo {
            let w = &mut self.walkers[i];
            if w.batch == 0 {
                w.batch = first;
            }
            let max = w
                .pos
                .as_ref()
                .map_or("+inf".to_string(), |p| score_arg(p.0));
            pipe.cmd("ZRANGE")
                .arg(&w.key)
                .arg(max)
                .arg(&min)
                .arg("BYSCORE")
                .arg("REV")
                .arg("LIMIT")
                .arg(0)
                .arg(w.batch)
                .arg("WITHSCORES");
        }
        let mut conn = store.conn.clone();
        let replies: Vec<Vec<(String, f64)>> = pipe.query_async(&mut conn).await?;
        for (&i, entries) in todo.iter().zip(replies) {
            let w = &mut self.walkers[i];
            let full = entries.len() == w.batch;
            for (member, score) in entries {
                let c = (score as i64, member);
                if w.pos.as_ref().is_none_or(|p| &c < p) {
                    w.buf.push_back(c);
                }
            }
            if let Some(last) = w.buf.back() {
                w.pos = Some(last.clone());
            }
            if !full {
                w.done = true;
            }
            // A full batch of nothing but ties already passed (a SendBatch
            // accepted in one millisecond) grows past the cap, or it would
            // be fetched again forever.
            let only_ties = full && w.buf.is_empty();
            w.batch = if only_ties {
                w.batch.saturating_mul(2)
            } else {
                w.batch.saturating_mul(2).min(MAX_BATCH)
            };
        }
        Ok(())
    }

    /// Up to `n` next message ids, newest first. An empty walker is fetched
    /// only while it could hold the next id: when everything it has left
    /// (below its position) is below another walker's head, it waits. So a
    /// merge of many zsets (every combo) reads a few entries of each, not a
    /// page of each.
    async fn next(&mut self, store: &RedisLogStore, n: usize) -> Result<Vec<Cursor>, StoreError> {
        // One zset: the page. Several: twice their share of it, enough
        // that evenly spread ids need no second fetch.
        let first = match self.walkers.len() {
            0 | 1 => n,
            k => (2 * n).div_ceil(k),
        }
        .clamp(2, MAX_BATCH);
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let best = self
                .walkers
                .iter()
                .enumerate()
                .filter_map(|(i, w)| w.buf.front().map(|c| (c, i)))
                .max();
            let todo: Vec<usize> = (0..self.walkers.len())
                .filter(|&i| {
                    let w = &self.walkers[i];
                    w.buf.is_empty()
                        && !w.done
                        && match (&best, &w.pos) {
                            (Some((head, _)), Some(pos)) => pos > *head,
                            _ => true,
                        }
                })
                .collect();
            if !todo.is_empty() {
                self.refill(store, &todo, first).await?;
                continue;
            }
            let Some((_, i)) = best else { break };
            let Some(c) = self.walkers[i].buf.pop_front() else {
                continue;
            };
            // A record whose status changed mid-walk can be in two combos'
            // walkers at once; equal ids meet here, one after the other.
            if self.last.as_ref() != Some(&c) {
                self.last = Some(c.clone());
                out.push(c);
            }
        }
        Ok(out)
    }
}

/// The cheapest source of candidates for a filter.
async fn plan(
    store: &RedisLogStore,
    f: &LogFilter,
    lower: i64,
    upper: Option<&Cursor>,
) -> Result<Source, StoreError> {
    let has_trace = !f.trace_id.is_empty();
    let has_openid = !f.openid.is_empty();
    let has_combo = has_combo_fields(f);
    let mut options: Vec<Source> = Vec::new();
    if has_trace {
        options.push(Source {
            keys: vec![store.keys.trace_set(&f.trace_id)],
            read: trace::first_messages(store, &f.trace_id, lower, upper).await?,
            exact: !has_openid && !has_combo,
        });
    }
    if has_openid {
        let keys = vec![store.keys.openid(&f.openid)];
        options.push(Source::zsets(keys, !has_trace && !has_combo));
    }
    if has_combo || options.is_empty() {
        let keys = store
            .combos()
            .await?
            .into_iter()
            .filter(|(_, c)| c.matches(f))
            .map(|(n, _)| store.keys.combo(&n))
            .collect();
        options.push(Source::zsets(keys, !has_trace && !has_openid));
    }
    if options.len() == 1 {
        return Ok(options.pop().expect("one option"));
    }
    let min = if lower == i64::MIN {
        "-inf".into()
    } else {
        score_arg(lower)
    };
    let max = upper.map_or("+inf".to_string(), |u| score_arg(u.0));
    let mut pipe = redis::pipe();
    for s in &options {
        for k in &s.keys {
            pipe.cmd("ZCOUNT").arg(k).arg(&min).arg(&max);
        }
    }
    let mut conn = store.conn.clone();
    let counts: Vec<u64> = pipe.query_async(&mut conn).await?;
    let mut counts = counts.into_iter();
    let cost: Vec<u64> = options
        .iter()
        .map(|s| {
            let zsets: u64 = s.keys.iter().map(|_| counts.next().unwrap_or(0) + 20).sum();
            zsets + s.read.len() as u64
        })
        .collect();
    let best = (0..options.len()).min_by_key(|&i| cost[i]).unwrap_or(0);
    Ok(options.swap_remove(best))
}

/// Records matching `f` in `[lower, upper)`, newest first, at most `limit`.
async fn collect(
    store: &RedisLogStore,
    f: &LogFilter,
    lower: i64,
    upper: Option<Cursor>,
    limit: usize,
) -> Result<Vec<LogRecord>, StoreError> {
    if !f.message_id.is_empty() {
        let r = store.get_record(&f.message_id).await?;
        return Ok(r
            .filter(|r| {
                let c = (micros(r.accepted_at.as_ref()), r.message_id.clone());
                matches(f, r) && c.0 >= lower && upper.as_ref().is_none_or(|u| &c < u)
            })
            .into_iter()
            .collect());
    }
    let source = plan(store, f, lower, upper.as_ref()).await?;
    let exact = source.exact;
    let mut merge = Merge::new(source, lower, upper);
    let mut out = Vec::new();
    while out.len() < limit {
        let need = limit - out.len();
        let chunk = if exact {
            need.min(1000)
        } else {
            need.saturating_mul(2).clamp(64, 1000)
        };
        let ids: Vec<String> = merge
            .next(store, chunk)
            .await?
            .into_iter()
            .map(|c| c.1)
            .collect();
        if ids.is_empty() {
            break;
        }
        for r in store.records(&ids).await?.into_iter().flatten() {
            if out.len() < limit && matches(f, &r) {
                out.push(r);
            }
        }
    }
    Ok(out)
}

pub(super) async fn query(
    store: &RedisLogStore,
    q: &Query,
) -> Result<crate::store::Page, StoreError> {
    let (lower, upper) = bounds(&q.filter, q.after.as_ref());
    let mut records = collect(store, &q.filter, lower, upper, q.page_size + 1).await?;
    let more = records.len() > q.page_size;
    records.truncate(q.page_size);
    Ok(crate::store::Page::new(records, more))
}

fn combo_group(group_by: StatsGroupBy, c: &Combo) -> String {
    match group_by {
        StatsGroupBy::Errcode => c.errcode.to_string(),
        StatsGroupBy::Template => c.template_key.clone(),
        StatsGroupBy::Status | StatsGroupBy::Unspecified => status_name(c.status),
    }
}

pub(super) async fn stats(
    store: &RedisLogStore,
    q: &StatsQuery,
) -> Result<Vec<StatsSeries>, StoreError> {
    let f = &q.filter;
    let mut counter = StatsCounter::default();
    if !f.message_id.is_empty() || !f.trace_id.is_empty() || !f.openid.is_empty() {
        let upper = Some((q.end, String::new()));
        for r in collect(store, f, q.start, upper, usize::MAX).await? {
            counter.add_record(q, &r);
        }
        return Ok(counter.into_series());
    }
    // Combo fields only: count with ZCOUNT, no record read.
    let start = q.start.max(store.retention.cutoff(super::now_micros()));
    if start >= q.end {
        return Ok(Vec::new());
    }
    let combos: Vec<(String, Combo)> = store
        .combos()
        .await?
        .into_iter()
        .filter(|(_, c)| c.matches(f))
        .collect();
    let span = |lo: i64, hi: i64| (score_arg(lo), format!("({hi}"));
    let mut conn = store.conn.clone();
    let mut pipe = redis::pipe();
    let (lo, hi) = span(start, q.end);
    for (name, _) in &combos {
        pipe.cmd("ZCOUNT")
            .arg(store.keys.combo(name))
            .arg(&lo)
            .arg(&hi);
    }
    if combos.is_empty() {
        return Ok(Vec::new());
    }
    let totals: Vec<u64> = pipe.query_async(&mut conn).await?;
    // check_stats bounds the count; the cap keeps a walk bounded whatever
    // query reaches it.
    let buckets: Vec<i64> = (align(start, q.bucket)..q.end)
        .step_by(q.bucket.max(1) as usize)
        .take(crate::stats::MAX_BUCKETS as usize + 1)
        .collect();
    for ((name, combo), total) in combos.iter().zip(totals) {
        if total == 0 {
            continue;
        }
        let mut pipe = redis::pipe();
        for &b in &buckets {
            let (lo, hi) = span(b.max(start), (b + q.bucket).min(q.end));
            pipe.cmd("ZCOUNT")
                .arg(store.keys.combo(name))
                .arg(lo)
                .arg(hi);
        }
        let counts: Vec<u64> = pipe.query_async(&mut conn).await?;
        for (&b, n) in buckets.iter().zip(counts) {
            counter.add(combo_group(q.group_by, combo), b, n);
        }
    }
    Ok(counter.into_series())
}
