//! The Redis key layout (all under the configured prefix, `wxpush:`):
//!
//! | key | type | holds |
//! |-----|------|-------|
//! | `log:r:{message_id}` | string, `PXAT` accepted_at + retention | the record (protobuf) and the ids of the events folded in |
//! | `log:c:{status}\|{errcode}\|{app}\|{template_key}\|{template_id}[\|{caller}]` | zset | the messages with exactly these values ("combo") |
//! | `log:combos` | set | the names of the combo zsets |
//! | `log:o:{openid}` | zset, `PXAT` newest + retention | one user's messages |
//! | `log:tb:{day}:{bucket}` | hash, `PXAT` end of day + retention | the first message of each trace of that day ([`super::trace`]) |
//! | `log:t:{trace_id}` | zset, `PXAT` newest + retention | a trace's later messages |
//!
//! The low-cardinality fields (the caller too: configured names) share one combo index instead of a zset
//! each: a record costs one large-zset entry for them instead of five
//! (~130 bytes each), a filter on any of them is the union of the matching
//! combos (exact, no record to check), and `GetStats` counts combos with
//! `ZCOUNT` without reading records. Every record is in exactly one combo,
//! so the union of all combos is the "every record" index too (a separate
//! one would cost another ~145 bytes per record). Equal scores order by
//! message id in Redis as in the cursor, so paging is the same as in memory.

use wxpush_proto::v1::{LogFilter, LogRecord};

/// Builds key names under one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: format!("{prefix}log:"),
        }
    }
    pub fn record(&self, message_id: &str) -> String {
        format!("{}r:{message_id}", self.prefix)
    }
    pub fn combos(&self) -> String {
        format!("{}combos", self.prefix)
    }
    pub fn combo(&self, name: &str) -> String {
        format!("{}c:{name}", self.prefix)
    }
    pub fn openid(&self, openid: &str) -> String {
        format!("{}o:{openid}", self.prefix)
    }
    /// A trace's messages after its first (the first: [`Self::trace_bucket`]).
    pub fn trace_set(&self, trace_id: &str) -> String {
        format!("{}t:{}", self.prefix, trace_id.to_ascii_lowercase())
    }
    pub fn trace_bucket(&self, day: i64, bucket: u8) -> String {
        format!("{}tb:{day}:{bucket:02x}", self.prefix)
    }
}

/// The values one combo zset stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Combo {
    pub status: i32,
    pub errcode: i64,
    pub app_id: String,
    pub template_key: String,
    pub template_id: String,
    /// The sender (a sixth part of the name, left out when empty: combos
    /// from before callers were recorded keep their names).
    pub caller: String,
}

fn escape(s: &str) -> String {
    s.replace('%', "%25").replace('|', "%7C")
}

fn unescape(s: &str) -> String {
    s.replace("%7C", "|").replace("%25", "%")
}

impl Combo {
    pub fn of(r: &LogRecord) -> Self {
        Self {
            status: r.status,
            errcode: r.errcode,
            app_id: r.app_id.clone(),
            template_key: r.template_key.clone(),
            template_id: r.template_id.clone(),
            caller: r.caller.clone(),
        }
    }

    /// The name in `log:combos` and in the key.
    pub fn name(&self) -> String {
        let mut name = format!(
            "{}|{}|{}|{}|{}",
            self.status,
            self.errcode,
            escape(&self.app_id),
            escape(&self.template_key),
            escape(&self.template_id)
        );
        if !self.caller.is_empty() {
            name += &format!("|{}", escape(&self.caller));
        }
        name
    }

    pub fn parse(name: &str) -> Option<Self> {
        let parts: Vec<&str> = name.split('|').collect();
        let (status, errcode, app, key, id, caller) = match parts.as_slice() {
            [status, errcode, app, key, id] => (status, errcode, app, key, id, ""),
            [status, errcode, app, key, id, caller] => (status, errcode, app, key, id, *caller),
            _ => return None,
        };
        Some(Self {
            status: status.parse().ok()?,
            errcode: errcode.parse().ok()?,
            app_id: unescape(app),
            template_key: unescape(key),
            template_id: unescape(id),
            caller: unescape(caller),
        })
    }

    /// Whether every record of this combo matches the filter's combo fields.
    pub fn matches(&self, f: &LogFilter) -> bool {
        let eq = |want: &str, have: &str| want.is_empty() || want == have;
        eq(&f.app_id, &self.app_id)
            && eq(&f.template_key, &self.template_key)
            && eq(&f.template_id, &self.template_id)
            && eq(&f.caller, &self.caller)
            && (f.status == 0 || f.status == self.status)
            && f.errcode.is_none_or(|e| e == self.errcode)
    }
}

/// Whether the filter sets any of the combo fields.
pub fn has_combo_fields(f: &LogFilter) -> bool {
    !f.app_id.is_empty()
        || !f.template_key.is_empty()
        || !f.template_id.is_empty()
        || !f.caller.is_empty()
        || f.status != 0
        || f.errcode.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combo_names_round_trip_with_separators_in_values() {
        let c = Combo {
            status: 7,
            errcode: -1,
            app_id: "wx|a%7C".into(),
            template_key: "k".into(),
            template_id: String::new(),
            caller: String::new(),
        };
        assert_eq!(c.name(), "7|-1|wx%7Ca%257C|k|", "as before callers");
        assert_eq!(Combo::parse(&c.name()), Some(c.clone()));
        let sent_by = Combo {
            caller: "ord|ers".into(),
            ..c
        };
        assert_eq!(Combo::parse(&sent_by.name()), Some(sent_by));
        assert_eq!(Combo::parse("1|2|3"), None);
    }
}
