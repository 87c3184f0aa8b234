-- Usage buckets per tenant, period, bucket start, resource and attribute group, kept in the same
-- transaction as the events they summarise.
CREATE TABLE rollups (
    tenant    TEXT    NOT NULL,
    period    TEXT    NOT NULL, -- hour, day, month, total
    start     INTEGER NOT NULL, -- Unix seconds of the bucket start; 0 for total
    resource  TEXT    NOT NULL,
    grp       TEXT    NOT NULL, -- canonical JSON of the dimension attributes
    qty_sum   INTEGER NOT NULL,
    qty_count INTEGER NOT NULL,
    qty_max   INTEGER NOT NULL,
    PRIMARY KEY (tenant, period, start, resource, grp)
) WITHOUT ROWID;
