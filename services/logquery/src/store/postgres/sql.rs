//! A `LogFilter` as a SQL condition with its parameters: every set field
//! ANDed, the time bounds and page cursor as one row comparison on the page
//! order, so each filter walks its index range newest first.

use crate::filter::Cursor;
use postgres_types::ToSql;
use wxpush_postgres::Micros;
use wxpush_proto::v1::LogFilter;

/// A `WHERE` clause over `r` and its parameters.
#[derive(Default)]
pub struct Condition {
    sql: String,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Condition {
    fn push(&mut self, column_and_op: &str, value: Box<dyn ToSql + Sync + Send>) {
        self.params.push(value);
        self.sql.push_str(if self.sql.is_empty() {
            " WHERE "
        } else {
            " AND "
        });
        self.sql
            .push_str(&format!("{column_and_op} ${}", self.params.len()));
    }

    /// The filter's fields, `accepted_at >= lower` and, with an `upper`
    /// cursor, `(accepted_at, message_id) < upper`.
    pub fn new(f: &LogFilter, lower: i64, upper: Option<&Cursor>) -> Self {
        let mut c = Self::default();
        for (column, value) in [
            ("r.message_id =", &f.message_id),
            ("r.trace_id =", &f.trace_id.to_ascii_lowercase()),
            ("r.openid =", &f.openid),
            ("r.app_id =", &f.app_id),
            ("r.template_key =", &f.template_key),
            ("r.template_id =", &f.template_id),
            ("r.caller =", &f.caller),
        ] {
            if !value.is_empty() {
                c.push(column, Box::new(value.clone()));
            }
        }
        if f.status != 0 {
            c.push("r.status =", Box::new(f.status));
        }
        if let Some(errcode) = f.errcode {
            c.push("r.errcode =", Box::new(errcode));
        }
        c.push("r.accepted_at >=", Box::new(Micros(lower)));
        if let Some((at, id)) = upper {
            c.params.push(Box::new(Micros(*at)));
            c.params.push(Box::new(id.clone()));
            let n = c.params.len();
            c.sql.push_str(&format!(
                " AND (r.accepted_at, r.message_id) < (${}, ${n})",
                n - 1
            ));
        }
        c
    }

    /// The filter's own time range, for a filter that has one.
    pub fn from_filter(f: &LogFilter, floor: i64, after: Option<&Cursor>) -> Self {
        let (lower, upper) = crate::filter::bounds(f, after);
        Self::new(f, lower.max(floor), upper.as_ref())
    }

    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The parameters, numbered from `$1`; `extra` follow them.
    pub fn params<'a>(&'a self, extra: &[&'a (dyn ToSql + Sync)]) -> Vec<&'a (dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .chain(extra.iter().copied())
            .collect()
    }

    /// The number the next parameter gets.
    pub fn next_param(&self) -> usize {
        self.params.len() + 1
    }
}

/// µs of a record's accepted_at in SQL (exact: `extract` gives numeric).
pub const ACCEPTED_MICROS: &str = "(extract(epoch FROM r.accepted_at) * 1000000)::bigint";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_set_field_is_a_numbered_condition() {
        let f = LogFilter {
            app_id: "wx1".into(),
            status: 4,
            errcode: Some(0),
            ..Default::default()
        };
        let c = Condition::new(&f, 10, Some(&(20, "m".into())));
        assert_eq!(
            c.sql(),
            " WHERE r.app_id = $1 AND r.status = $2 AND r.errcode = $3 AND r.accepted_at >= $4 \
             AND (r.accepted_at, r.message_id) < ($5, $6)"
        );
        assert_eq!(c.next_param(), 7);
    }
}
