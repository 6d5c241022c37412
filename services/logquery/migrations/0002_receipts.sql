-- WeChat's receipts (the callback service) name a message by the app and the
-- msgid WeChat returned for it: one index to find the record, only over the
-- records that have one.
CREATE INDEX log_records_by_wechat_msgid ON log_records (app_id, wechat_msgid)
    WHERE wechat_msgid <> '';

-- The receipt statuses, for people reading the log in SQL.
INSERT INTO delivery_statuses VALUES
    (9, 'DELIVERED'), (10, 'BLOCKED'), (11, 'UNDELIVERED');
