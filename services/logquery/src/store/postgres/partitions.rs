//! The log's daily partitions: `log_records_pYYYYMMDD` holds the records
//! accepted on that UTC day.
//! They are made ahead (yesterday to two days on) at start and at every
//! retention sweep, and on demand for a batch that needs another day;
//! retention drops a day once all of it is past the cutoff, which is
//! instant whatever the day holds (no `DELETE`, no vacuum debt).

use crate::error::StoreError;
use std::collections::BTreeSet;
use std::sync::Mutex;
use wxpush_postgres::{Micros, Pool};

const DAY: i64 = 86_400_000_000;
/// Held while partitions are made or dropped, so replicas never race on
/// the catalog ("wxpush.log" in ASCII).
const LOCK_KEY: i64 = 0x0077_7870_7573_686c;

/// The UTC day (days since the epoch) holding `micros`.
pub fn day_of(micros: i64) -> i64 {
    micros.div_euclid(DAY)
}

/// `YYYYMMDD` of a day.
fn suffix(day: i64) -> String {
    chrono::DateTime::from_timestamp(day * 86_400, 0)
        .map_or_else(|| format!("x{day}"), |d| d.format("%Y%m%d").to_string())
}

/// A time as an ISO 8601 literal for DDL.
fn iso(m: Micros) -> String {
    chrono::DateTime::from_timestamp_micros(m.0)
        .map_or_else(|| "infinity".into(), |d| d.to_rfc3339())
}

/// The day a partition's name stands for.
fn day_of_name(name: &str) -> Option<i64> {
    let digits = name.strip_prefix("log_records_p")?;
    let date = chrono::NaiveDate::parse_from_str(digits, "%Y%m%d").ok()?;
    let midnight = date.and_hms_opt(0, 0, 0)?.and_utc();
    Some(day_of(midnight.timestamp_micros()))
}

/// The days known to have partitions, so a batch asks the catalog only for
/// a day it has not seen.
#[derive(Default)]
pub struct Partitions {
    known: Mutex<BTreeSet<i64>>,
}

impl Partitions {
    fn is_known(&self, day: i64) -> bool {
        self.known.lock().map(|k| k.contains(&day)).unwrap_or(false)
    }

    /// Forgets what it knew (after an insert found a partition missing).
    pub fn forget(&self) {
        if let Ok(mut k) = self.known.lock() {
            k.clear();
        }
    }

    /// Makes sure every day in `days` has its partitions.
    pub async fn ensure(
        &self,
        pool: &Pool,
        days: impl IntoIterator<Item = i64>,
    ) -> Result<(), StoreError> {
        let missing: BTreeSet<i64> = days.into_iter().filter(|d| !self.is_known(*d)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
            .await?;
        for &day in &missing {
            let (from, to) = (Micros(day * DAY), Micros((day + 1) * DAY));
            let sfx = suffix(day);
            // Bounds as literals: DDL takes no parameters.
            tx.batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS log_records_p{sfx} PARTITION OF log_records \
                 FOR VALUES FROM ('{}') TO ('{}')",
                iso(from),
                iso(to)
            ))
            .await?;
        }
        tx.commit().await?;
        if let Ok(mut k) = self.known.lock() {
            k.extend(missing);
        }
        Ok(())
    }

    /// Drops every day entirely before `cutoff`; returns the number of
    /// records they held (PostgreSQL's estimate: counting would read them).
    pub async fn drop_before(&self, pool: &Pool, cutoff: i64) -> Result<u64, StoreError> {
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
            .await?;
        let rows = tx
            .query(
                "SELECT c.relname::text, greatest(c.reltuples, 0)::bigint FROM pg_inherits i \
                 JOIN pg_class c ON c.oid = i.inhrelid \
                 WHERE i.inhparent = 'log_records'::regclass",
                &[],
            )
            .await?;
        let mut removed = 0u64;
        let mut dropped = Vec::new();
        for row in rows {
            let name: String = row.get(0);
            let Some(day) = day_of_name(&name) else {
                continue;
            };
            if (day + 1) * DAY > cutoff {
                continue;
            }
            let estimate: i64 = row.get(1);
            let sfx = suffix(day);
            tx.batch_execute(&format!("DROP TABLE IF EXISTS log_records_p{sfx}"))
                .await?;
            removed += estimate.max(0) as u64;
            dropped.push(day);
        }
        tx.commit().await?;
        if let Ok(mut k) = self.known.lock() {
            for day in &dropped {
                k.remove(day);
            }
        }
        if !dropped.is_empty() {
            tracing::info!(
                days = dropped.len(),
                records = removed,
                "log partitions past retention dropped"
            );
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_days_round_trip() {
        let day = day_of(1_764_510_000_000_000);
        assert_eq!(suffix(day), "20251130");
        assert_eq!(day_of_name("log_records_p20251130"), Some(day));
        assert_eq!(day_of_name("log_records_default"), None);
        assert_eq!(day_of(-1), -1);
    }
}
