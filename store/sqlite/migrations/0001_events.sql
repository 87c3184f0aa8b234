-- Every usage event, once: the primary key is the idempotency key.
CREATE TABLE events (
    tenant   TEXT    NOT NULL,
    id       TEXT    NOT NULL,
    resource TEXT    NOT NULL,
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    ts       INTEGER NOT NULL, -- Unix nanoseconds
    attrs    TEXT    NOT NULL, -- canonical JSON object, see billing.EncodeAttrs
    PRIMARY KEY (tenant, id)
) WITHOUT ROWID;

-- Rebuilds and invoices read events by time.
CREATE INDEX events_ts ON events (ts);
