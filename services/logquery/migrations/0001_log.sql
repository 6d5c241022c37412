-- The delivery log: one row per message in log_records, its attempts kept
-- with it (history, a JSON array), partitioned by UTC day of accepted_at.
-- Partitions are made ahead by the service (log_records_pYYYYMMDD) and
-- dropped whole by retention. Attempts live in the row, not in a table of
-- their own: a page of records is then one index range with no join (a
-- lateral join over a second partitioned table cost 2 ms of planning and
-- execution per page, BENCHMARKS.md), and an attempt is added by the same
-- write that changes its record's status.
--
-- message_id sorts bytewise (COLLATE "C") whatever the database's locale:
-- it is the tie-breaker of the page order (accepted_at DESC, message_id DESC).

CREATE TABLE log_records (
    accepted_at  timestamptz NOT NULL,
    message_id   text COLLATE "C" NOT NULL,
    trace_id     text        NOT NULL,
    app_id       text        NOT NULL,
    openid       text        NOT NULL,
    template_key text        NOT NULL,
    template_id  text        NOT NULL,
    kind         integer     NOT NULL,
    status       integer     NOT NULL,
    errcode      bigint      NOT NULL,
    errmsg       text        NOT NULL,
    wechat_msgid text        NOT NULL,
    attempts     integer     NOT NULL,
    latency_ms   integer     NOT NULL,
    sent_at      timestamptz,
    updated_at   timestamptz,
    data_json    text        NOT NULL,
    -- The delivery events folded in, so a replayed one changes nothing.
    event_ids    text[]      NOT NULL,
    -- Every attempt, in attempt order: [{"attempt": 1, "status": 4,
    -- "errcode": 0, "errmsg": "ok", "wechat_msgid": "...", "latency_ms": 21,
    -- "occurred_us": 1764510000123456}, ...] (occurred_us: µs since 1970).
    history      jsonb       NOT NULL,
    PRIMARY KEY (accepted_at, message_id)
) PARTITION BY RANGE (accepted_at);

-- One index per QueryLogs filter, each ending in the page order, so a
-- filtered page is one index range walked newest first.
CREATE INDEX log_records_by_message  ON log_records (message_id);
CREATE INDEX log_records_by_trace    ON log_records (trace_id, accepted_at DESC, message_id DESC);
CREATE INDEX log_records_by_openid   ON log_records (openid, accepted_at DESC, message_id DESC);
CREATE INDEX log_records_by_app      ON log_records (app_id, accepted_at DESC, message_id DESC);
CREATE INDEX log_records_by_template ON log_records (template_key, accepted_at DESC, message_id DESC);
CREATE INDEX log_records_by_tid      ON log_records (template_id, accepted_at DESC, message_id DESC);
CREATE INDEX log_records_by_status   ON log_records (status, accepted_at DESC, message_id DESC);
CREATE INDEX log_records_by_errcode  ON log_records (errcode, accepted_at DESC, message_id DESC);

-- The names of wxpush.v1.DeliveryStatus, for people reading the log in SQL
-- (the Grafana dashboard joins it). A test checks it against the enum.
CREATE TABLE delivery_statuses (
    status integer PRIMARY KEY,
    name   text    NOT NULL
);
INSERT INTO delivery_statuses VALUES
    (0, 'UNSPECIFIED'), (1, 'ACCEPTED'), (2, 'QUEUED'), (3, 'SENDING'),
    (4, 'SENT'), (5, 'RETRYING'), (6, 'DEFERRED'), (7, 'FAILED'), (8, 'DEAD');
