-- Alerts, once per id (tenant, resource, period, bucket, threshold), and their delivery outbox.
CREATE TABLE alerts (
    id     TEXT    NOT NULL PRIMARY KEY,
    tenant TEXT    NOT NULL,
    at     INTEGER NOT NULL, -- Unix nanoseconds
    body   TEXT    NOT NULL  -- billing.Alert as JSON
);
CREATE INDEX alerts_tenant_at ON alerts (tenant, at);
CREATE INDEX alerts_at ON alerts (at);

CREATE TABLE deliveries (
    alert_id     TEXT    NOT NULL PRIMARY KEY REFERENCES alerts (id),
    tenant       TEXT    NOT NULL,
    status       TEXT    NOT NULL, -- pending, delivered, dead
    attempts     INTEGER NOT NULL,
    next_attempt INTEGER NOT NULL, -- Unix nanoseconds
    last_error   TEXT    NOT NULL DEFAULT '',
    updated      INTEGER NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt);
CREATE INDEX deliveries_updated ON deliveries (updated);
