-- Dead letters: messages that ran out of attempts (or were reported
-- uncertain), kept for an operator to read and replay. Bounded by the
-- service (queue.dead_letter_retention_secs, queue.max_dead_letters).
-- record is the whole message as the service replays it (JSON, readable
-- in SQL: record->'message'->>'openid').

CREATE TABLE dead_letters (
    message_id   text COLLATE "C" PRIMARY KEY,
    dead_at      timestamptz NOT NULL,
    app_id       text        NOT NULL,
    template_key text        NOT NULL,
    errcode      bigint      NOT NULL,
    record       jsonb       NOT NULL
);
-- The listing order (newest first) and its filters.
CREATE INDEX dead_letters_by_time     ON dead_letters (dead_at DESC, message_id DESC);
CREATE INDEX dead_letters_by_app      ON dead_letters (app_id, dead_at DESC, message_id DESC);
CREATE INDEX dead_letters_by_template ON dead_letters (template_key, dead_at DESC, message_id DESC);
