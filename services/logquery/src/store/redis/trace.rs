//! The trace index, shaped for memory. Nearly every trace holds one
//! message, so a sorted set per trace (a key, an expiry and a listpack:
//! ~220 bytes) would be mostly overhead. Instead a trace's first message is
//! one field of a hash shared by the traces of one UTC day and one of 256
//! buckets (`log:tb:{day}:{bucket}`), which expires with its day:
//!
//! - field: 8 bytes of the trace id (of a hash of it if it is not hex);
//!   two traces may share one, which costs a record read, never a wrong
//!   answer: every candidate is checked against the filter, and a trace
//!   whose field is taken indexes its messages in its own sorted set;
//! - value: accepted_at in µs (8 bytes, big-endian), then the message id.
//!
//! Later messages of the same trace (a `SendBatch`, a caller's loop) go to
//! the trace's own sorted set `log:t:{trace_id}`, whose key cost they share.
//! A value is one entry, so small hashes stay in Redis's compact listpack
//! encoding (≤ 128 fields of ≤ 64 bytes by default). A lookup reads one
//! field per day of retention and the trace's sorted set.

use super::RedisLogStore;
use crate::error::StoreError;
use crate::filter::Cursor;

/// One UTC day in µs.
const DAY_MICROS: i64 = 86_400_000_000;

/// The UTC day (days since the epoch) of a time in µs.
pub fn day(micros: i64) -> i64 {
    micros.div_euclid(DAY_MICROS)
}

/// Where a trace's first message goes: which of the day's 256 hashes
/// (W3C trace ids are random, so their first byte spreads them) and the
/// field in it.
pub fn slot(trace_id: &str) -> (u8, [u8; 8]) {
    let lower = trace_id.to_ascii_lowercase();
    match w3c_bytes(&lower) {
        Some(b) => (b[0], b[1..9].try_into().expect("8 bytes")),
        None => {
            let h = lower.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
            ((h >> 56) as u8, h.to_be_bytes())
        }
    }
}

/// The 16 bytes of a W3C trace id (32 hex digits).
fn w3c_bytes(hex: &str) -> Option<[u8; 16]> {
    let mut out = [0u8; 16];
    if hex.len() != 32 {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The value of a trace's first message.
pub fn entry(accepted_at: i64, message_id: &str) -> Vec<u8> {
    let mut v = accepted_at.to_be_bytes().to_vec();
    v.extend_from_slice(message_id.as_bytes());
    v
}

/// Reads a value back; `None` if it is not one.
pub fn parse_entry(bytes: &[u8]) -> Option<Cursor> {
    let (score, id) = bytes.split_first_chunk::<8>()?;
    let id = std::str::from_utf8(id).ok()?;
    (!id.is_empty()).then(|| (i64::from_be_bytes(*score), id.to_string()))
}

/// When a day's hashes expire (ms since the epoch): once the day's last
/// record is past retention.
pub fn expire_at_ms(day: i64, retention_micros: i64) -> i64 {
    ((day + 1) * DAY_MICROS + retention_micros) / 1_000
}

/// The first messages of `trace_id` accepted in `[lower, upper)`, newest
/// first (the trace's sorted set holds the rest).
pub async fn first_messages(
    store: &RedisLogStore,
    trace_id: &str,
    lower: i64,
    upper: Option<&Cursor>,
) -> Result<Vec<Cursor>, StoreError> {
    let now = super::now_micros();
    // Only days that can hold a record: within retention, not past
    // tomorrow (a far-future bound or page token must not become millions
    // of lookups).
    let from = day(lower.max(store.retention.cutoff(now)));
    let to = day(upper.map_or(i64::MAX, |u| u.0).min(now + DAY_MICROS));
    if from > to {
        return Ok(Vec::new());
    }
    let (b, field) = slot(trace_id);
    let mut pipe = redis::pipe();
    for d in from..=to {
        pipe.cmd("HGET")
            .arg(store.keys.trace_bucket(d, b))
            .arg(&field);
    }
    let mut conn = store.conn.clone();
    let values: Vec<Option<Vec<u8>>> = pipe.query_async(&mut conn).await?;
    let mut found: Vec<Cursor> = values
        .iter()
        .flatten()
        .filter_map(|v| parse_entry(v))
        .filter(|c| c.0 >= lower && upper.is_none_or(|u| c < u))
        .collect();
    found.sort_by(|a, b| b.cmp(a));
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_trace_ids_give_their_own_bytes_and_others_a_hash() {
        let (b, f) = slot("4BF92F3577B34DA6A3CE929D0E0E4736");
        assert_eq!((b, f), slot("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_eq!(b, 0x4b);
        assert_eq!(f, [0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3]);
        assert_eq!(slot("not-hex"), slot("NOT-HEX"));
        assert_ne!(slot("not-hex"), slot("not-hey"));
    }

    #[test]
    fn entries_round_trip() {
        let e = entry(1_763_900_000_123_456, "0196a0b1c2d3");
        assert_eq!(
            parse_entry(&e),
            Some((1_763_900_000_123_456, "0196a0b1c2d3".to_string()))
        );
        assert_eq!(parse_entry(&e[..8]), None);
        assert_eq!(parse_entry(b"short"), None);
    }

    #[test]
    fn a_day_expires_once_its_last_record_is_past_retention() {
        let retention = 7 * DAY_MICROS;
        let d = day(3 * DAY_MICROS + 5);
        assert_eq!(d, 3);
        assert_eq!(expire_at_ms(d, retention), 11 * DAY_MICROS / 1_000);
        assert_eq!(day(-1), -1);
    }
}
