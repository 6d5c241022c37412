-- The template registry: the current version of each business template,
-- every version it ever had (template_versions, written by a trigger, so a
-- change made with psql is kept too), each app's synced WeChat templates,
-- and the registry's epoch (see the service's recovery).
--
-- Every change is announced on the channel wxpush_templates (payload: the
-- key) when its transaction commits; delivery services listen and drop
-- their copy of that template's render plan at once.

CREATE TABLE templates (
    key        text COLLATE "C" PRIMARY KEY,
    app_id     text        NOT NULL,
    version    bigint      NOT NULL,
    -- The wxpush.v1.Template protobuf (forward compatible: fields are only added).
    body       bytea       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX templates_by_app ON templates (app_id, key);

CREATE TABLE template_versions (
    id         bigserial   PRIMARY KEY,
    key        text COLLATE "C" NOT NULL,
    version    bigint      NOT NULL,
    change     text        NOT NULL CHECK (change IN ('put', 'delete')),
    app_id     text        NOT NULL,
    -- The template as written; on a delete, as it was before.
    body       bytea       NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX template_versions_by_key ON template_versions (key, id DESC);

CREATE FUNCTION templates_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO template_versions (key, version, change, app_id, body)
        VALUES (OLD.key, OLD.version, 'delete', OLD.app_id, OLD.body);
        PERFORM pg_notify('wxpush_templates', OLD.key);
        RETURN OLD;
    END IF;
    INSERT INTO template_versions (key, version, change, app_id, body)
    VALUES (NEW.key, NEW.version, 'put', NEW.app_id, NEW.body);
    PERFORM pg_notify('wxpush_templates', NEW.key);
    RETURN NEW;
END
$$;

CREATE TRIGGER templates_changed AFTER INSERT OR UPDATE OR DELETE ON templates
    FOR EACH ROW EXECUTE FUNCTION templates_changed();

CREATE TABLE wechat_templates (
    app_id    text        PRIMARY KEY,
    -- The app's synced WeChat templates (protobuf, as the Redis backend keeps them).
    body      bytea       NOT NULL,
    synced_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE template_registry (
    name  text PRIMARY KEY,
    value text NOT NULL
);
