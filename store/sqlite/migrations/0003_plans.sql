-- Plans and tenant records, kept as JSON documents (billing.Plan, billing.Tenant).
CREATE TABLE plans (
    id      TEXT    NOT NULL PRIMARY KEY,
    body    TEXT    NOT NULL,
    updated INTEGER NOT NULL -- Unix nanoseconds
);

CREATE TABLE tenants (
    id      TEXT    NOT NULL PRIMARY KEY,
    plan_id TEXT    NOT NULL DEFAULT '',
    body    TEXT    NOT NULL,
    updated INTEGER NOT NULL
);
