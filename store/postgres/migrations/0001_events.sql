-- Every event id ever stored, once per tenant: the idempotency key. Not partitioned, because the
-- primary key of a partitioned table must contain its partition key, and a retried event may carry
-- another time. ts is the time of the stored event, so that its row in events is found by
-- partition.
CREATE TABLE event_ids (
    tenant text        NOT NULL,
    id     text        NOT NULL,
    ts     timestamptz NOT NULL,
    PRIMARY KEY (tenant, id)
);
-- Every usage event, once (event_ids enforces it), in monthly partitions events_YYYYMM of UTC
-- months, created by the store ahead of time and on demand.
CREATE TABLE events (
    tenant   text        NOT NULL,
    id       text        NOT NULL,
    resource text        NOT NULL,
    quantity bigint      NOT NULL CHECK (quantity > 0),
    ts       timestamptz NOT NULL,
    attrs    text        NOT NULL -- canonical JSON object, see billing.EncodeAttrs
) PARTITION BY RANGE (ts);

-- Reads by time (rebuilds of every tenant, which cover whole months) are served by partition
-- pruning alone; reads of one tenant by time (rebuilds, invoices) and of stored duplicates (by
-- tenant and the ts recorded in event_ids) by this index. Every index slows every append.
CREATE INDEX events_tenant_ts ON events (tenant, ts);
