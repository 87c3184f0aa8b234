-- Alerts, once per id (tenant, resource, period, bucket, threshold), and their delivery outbox.
CREATE TABLE alerts (
    id     text        PRIMARY KEY,
    tenant text        NOT NULL,
    at     timestamptz NOT NULL,
    body   jsonb       NOT NULL -- billing.Alert
);
CREATE INDEX alerts_tenant_at ON alerts (tenant, at DESC);
CREATE INDEX alerts_at ON alerts (at DESC);

CREATE TABLE deliveries (
    alert_id     text        PRIMARY KEY REFERENCES alerts (id),
    tenant       text        NOT NULL,
    status       text        NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts     integer     NOT NULL,
    next_attempt timestamptz NOT NULL,
    last_error   text        NOT NULL DEFAULT '',
    updated      timestamptz NOT NULL
);
-- Claimers scan the pending deliveries that are due, oldest first.
CREATE INDEX deliveries_due ON deliveries (next_attempt) WHERE status = 'pending';
CREATE INDEX deliveries_updated ON deliveries (updated DESC);
CREATE INDEX deliveries_tenant_updated ON deliveries (tenant, updated DESC);
