//! wxpush keeps time as µs since the Unix epoch (the log's sort key and page
//! cursor); PostgreSQL's `timestamptz` is µs since 2000-01-01. [`Micros`]
//! converts between them exactly, and clamps what a request may carry
//! (a cursor of `i64::MAX`) to the range the server accepts, so a bound is
//! never an error.

use bytes::BytesMut;
use postgres_types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use std::error::Error;

/// µs from 1970-01-01 to 2000-01-01, PostgreSQL's epoch.
const PG_EPOCH_OFFSET: i64 = 946_684_800_000_000;
/// `timestamptz`'s range in PostgreSQL's µs: 4713 BC to 294276 AD.
const PG_MIN: i64 = -211_813_488_000_000_000;
const PG_MAX: i64 = 9_223_371_331_200_000_000;

/// µs since the Unix epoch, read and written as `timestamptz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Micros(pub i64);

impl ToSql for Micros {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        let pg = self
            .0
            .saturating_sub(PG_EPOCH_OFFSET)
            .clamp(PG_MIN, PG_MAX - 1);
        out.extend_from_slice(&pg.to_be_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMESTAMPTZ
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for Micros {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        let bytes: [u8; 8] = raw.try_into()?;
        Ok(Self(
            i64::from_be_bytes(bytes).saturating_add(PG_EPOCH_OFFSET),
        ))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMESTAMPTZ
    }
}
