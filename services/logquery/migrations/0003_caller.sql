-- Who sent each message (issue 17): the configured caller's name, filterable
-- like every other field, with an index ending in the page order.
ALTER TABLE log_records ADD COLUMN caller text NOT NULL DEFAULT '';
CREATE INDEX log_records_by_caller ON log_records (caller, accepted_at DESC, message_id DESC);
