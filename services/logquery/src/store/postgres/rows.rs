//! Records to rows and back. A record is one `log_records` row plus its
//! `log_attempts` rows, read together with one lateral join (the attempts
//! as parallel arrays, in attempt order) and written as column arrays
//! (`unnest`), so a whole batch is one statement per table.

use crate::filter::micros;
use crate::record::StoredRecord;
use tokio_postgres::Row;
use wxpush_postgres::Micros;
use wxpush_proto::Timestamp;
use wxpush_proto::v1::{Attempt, DeliveryEvent, LogRecord};

/// The select list and joins that read whole records as `r`.
pub const SELECT_RECORDS: &str = "SELECT r.accepted_at, r.message_id, r.trace_id, r.app_id, r.openid, \
    r.template_key, r.template_id, r.kind, r.status, r.errcode, r.errmsg, r.wechat_msgid, \
    r.attempts, r.latency_ms, r.sent_at, r.updated_at, r.data_json, r.event_ids, \
    h.attempt, h.status, h.errcode, h.errmsg, h.wechat_msgid, h.latency_ms, h.occurred_at \
    FROM log_records r LEFT JOIN LATERAL (SELECT \
    array_agg(a.attempt ORDER BY a.attempt) AS attempt, array_agg(a.status ORDER BY a.attempt) AS status, \
    array_agg(a.errcode ORDER BY a.attempt) AS errcode, array_agg(a.errmsg ORDER BY a.attempt) AS errmsg, \
    array_agg(a.wechat_msgid ORDER BY a.attempt) AS wechat_msgid, \
    array_agg(a.latency_ms ORDER BY a.attempt) AS latency_ms, \
    array_agg(a.occurred_at ORDER BY a.attempt) AS occurred_at \
    FROM log_attempts a WHERE a.accepted_at = r.accepted_at AND a.message_id = r.message_id) h ON true";

fn timestamp(m: Micros) -> Timestamp {
    wxpush_proto::timestamp_from_micros(m.0)
}

fn at(t: Option<&Timestamp>) -> Option<Micros> {
    t.map(|t| Micros(micros(Some(t))))
}

/// A record read with [`SELECT_RECORDS`].
pub fn stored_record(row: &Row) -> Result<StoredRecord, tokio_postgres::Error> {
    let attempts: Option<Vec<i32>> = row.try_get(18)?;
    let mut history = Vec::new();
    if let Some(attempts) = attempts {
        let status: Vec<i32> = row.try_get(19)?;
        let errcode: Vec<i64> = row.try_get(20)?;
        let errmsg: Vec<String> = row.try_get(21)?;
        let wechat_msgid: Vec<String> = row.try_get(22)?;
        let latency_ms: Vec<i32> = row.try_get(23)?;
        let occurred_at: Vec<Option<Micros>> = row.try_get(24)?;
        for i in 0..attempts.len() {
            history.push(Attempt {
                attempt: attempts[i] as u32,
                status: status[i],
                errcode: errcode[i],
                errmsg: errmsg[i].clone(),
                wechat_msgid: wechat_msgid[i].clone(),
                latency_ms: latency_ms[i] as u32,
                occurred_at: occurred_at[i].map(timestamp),
            });
        }
    }
    let record = LogRecord {
        accepted_at: Some(timestamp(row.try_get(0)?)),
        message_id: row.try_get(1)?,
        trace_id: row.try_get(2)?,
        app_id: row.try_get(3)?,
        openid: row.try_get(4)?,
        template_key: row.try_get(5)?,
        template_id: row.try_get(6)?,
        kind: row.try_get(7)?,
        status: row.try_get(8)?,
        errcode: row.try_get(9)?,
        errmsg: row.try_get(10)?,
        wechat_msgid: row.try_get(11)?,
        attempts: row.try_get::<_, i32>(12)? as u32,
        latency_ms: row.try_get::<_, i32>(13)? as u32,
        sent_at: row.try_get::<_, Option<Micros>>(14)?.map(timestamp),
        updated_at: row.try_get::<_, Option<Micros>>(15)?.map(timestamp),
        data_json: row.try_get(16)?,
        history,
    };
    Ok(StoredRecord {
        record,
        event_ids: row.try_get(17)?,
    })
}

/// Upserts records given as column arrays.
pub const UPSERT_RECORDS: &str = "INSERT INTO log_records (accepted_at, message_id, trace_id, app_id, \
    openid, template_key, template_id, kind, status, errcode, errmsg, wechat_msgid, attempts, \
    latency_ms, sent_at, updated_at, data_json, event_ids) \
    SELECT a, m, tr, ap, o, tk, ti, k, s, e, em, w, n, l, sa, ua, d, ARRAY(SELECT jsonb_array_elements_text(ev::jsonb)) FROM unnest(\
    $1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
    $8::int[], $9::int[], $10::bigint[], $11::text[], $12::text[], $13::int[], $14::int[], \
    $15::timestamptz[], $16::timestamptz[], $17::text[], $18::text[]) \
    AS t(a, m, tr, ap, o, tk, ti, k, s, e, em, w, n, l, sa, ua, d, ev) \
    ON CONFLICT (accepted_at, message_id) DO UPDATE SET \
    status = EXCLUDED.status, errcode = EXCLUDED.errcode, errmsg = EXCLUDED.errmsg, \
    wechat_msgid = EXCLUDED.wechat_msgid, attempts = EXCLUDED.attempts, \
    latency_ms = EXCLUDED.latency_ms, sent_at = EXCLUDED.sent_at, updated_at = EXCLUDED.updated_at, \
    data_json = EXCLUDED.data_json, event_ids = EXCLUDED.event_ids";

/// Inserts attempts given as column arrays; one already there stays.
pub const INSERT_ATTEMPTS: &str = "INSERT INTO log_attempts (accepted_at, message_id, attempt, status, \
    errcode, errmsg, wechat_msgid, latency_ms, occurred_at) \
    SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::int[], $4::int[], $5::bigint[], \
    $6::text[], $7::text[], $8::int[], $9::timestamptz[]) ON CONFLICT DO NOTHING";

/// Records as the column arrays of [`UPSERT_RECORDS`].
#[derive(Default)]
pub struct RecordColumns {
    accepted_at: Vec<Micros>,
    message_id: Vec<String>,
    trace_id: Vec<String>,
    app_id: Vec<String>,
    openid: Vec<String>,
    template_key: Vec<String>,
    template_id: Vec<String>,
    kind: Vec<i32>,
    status: Vec<i32>,
    errcode: Vec<i64>,
    errmsg: Vec<String>,
    wechat_msgid: Vec<String>,
    attempts: Vec<i32>,
    latency_ms: Vec<i32>,
    sent_at: Vec<Option<Micros>>,
    updated_at: Vec<Option<Micros>>,
    data_json: Vec<String>,
    /// Each record's ids as a JSON array: an array of arrays of different
    /// lengths is not a PostgreSQL type, so they travel as text.
    event_ids: Vec<String>,
}

impl RecordColumns {
    pub fn push(&mut self, s: &StoredRecord) {
        let r = &s.record;
        self.accepted_at
            .push(Micros(micros(r.accepted_at.as_ref())));
        self.message_id.push(r.message_id.clone());
        self.trace_id.push(r.trace_id.clone());
        self.app_id.push(r.app_id.clone());
        self.openid.push(r.openid.clone());
        self.template_key.push(r.template_key.clone());
        self.template_id.push(r.template_id.clone());
        self.kind.push(r.kind);
        self.status.push(r.status);
        self.errcode.push(r.errcode);
        self.errmsg.push(r.errmsg.clone());
        self.wechat_msgid.push(r.wechat_msgid.clone());
        self.attempts.push(r.attempts as i32);
        self.latency_ms.push(r.latency_ms as i32);
        self.sent_at.push(at(r.sent_at.as_ref()));
        self.updated_at.push(at(r.updated_at.as_ref()));
        self.data_json.push(r.data_json.clone());
        self.event_ids
            .push(serde_json::to_string(&s.event_ids).unwrap_or_else(|_| "[]".into()));
    }

    pub fn is_empty(&self) -> bool {
        self.message_id.is_empty()
    }

    pub fn params(&self) -> [&(dyn postgres_types::ToSql + Sync); 18] {
        [
            &self.accepted_at,
            &self.message_id,
            &self.trace_id,
            &self.app_id,
            &self.openid,
            &self.template_key,
            &self.template_id,
            &self.kind,
            &self.status,
            &self.errcode,
            &self.errmsg,
            &self.wechat_msgid,
            &self.attempts,
            &self.latency_ms,
            &self.sent_at,
            &self.updated_at,
            &self.data_json,
            &self.event_ids,
        ]
    }
}

/// Attempts as the column arrays of [`INSERT_ATTEMPTS`].
#[derive(Default)]
pub struct AttemptColumns {
    accepted_at: Vec<Micros>,
    message_id: Vec<String>,
    attempt: Vec<i32>,
    status: Vec<i32>,
    errcode: Vec<i64>,
    errmsg: Vec<String>,
    wechat_msgid: Vec<String>,
    latency_ms: Vec<i32>,
    occurred_at: Vec<Option<Micros>>,
}

impl AttemptColumns {
    /// The attempt an event (with `attempt > 0`) reports.
    pub fn push(&mut self, e: &DeliveryEvent) {
        self.accepted_at
            .push(Micros(micros(e.accepted_at.as_ref())));
        self.message_id.push(e.message_id.clone());
        self.attempt.push(e.attempt as i32);
        self.status.push(e.status);
        self.errcode.push(e.errcode);
        self.errmsg.push(e.errmsg.clone());
        self.wechat_msgid.push(e.wechat_msgid.clone());
        self.latency_ms.push(e.latency_ms as i32);
        self.occurred_at.push(at(e.occurred_at.as_ref()));
    }

    pub fn is_empty(&self) -> bool {
        self.message_id.is_empty()
    }

    pub fn params(&self) -> [&(dyn postgres_types::ToSql + Sync); 9] {
        [
            &self.accepted_at,
            &self.message_id,
            &self.attempt,
            &self.status,
            &self.errcode,
            &self.errmsg,
            &self.wechat_msgid,
            &self.latency_ms,
            &self.occurred_at,
        ]
    }
}
