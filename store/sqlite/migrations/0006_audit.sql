-- The audit log: append-only, newest by id.
CREATE TABLE audit (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        INTEGER NOT NULL, -- Unix nanoseconds
    tenant    TEXT    NOT NULL DEFAULT '',
    principal TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    target    TEXT    NOT NULL DEFAULT '',
    before    TEXT,             -- JSON or NULL
    after     TEXT              -- JSON or NULL
);
CREATE INDEX audit_tenant_id ON audit (tenant, id);
