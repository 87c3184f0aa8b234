-- The audit log: append-only, newest by id. before and after keep the JSON exactly as given
-- (text, not jsonb, which would reformat it).
CREATE TABLE audit (
    id        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        timestamptz NOT NULL,
    tenant    text        NOT NULL DEFAULT '',
    principal text        NOT NULL,
    action    text        NOT NULL,
    target    text        NOT NULL DEFAULT '',
    before    text,       -- JSON or NULL
    after     text        -- JSON or NULL
);
CREATE INDEX audit_tenant_id ON audit (tenant, id);
