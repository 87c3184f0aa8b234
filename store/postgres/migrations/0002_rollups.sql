-- Usage buckets per tenant, resource, period, bucket start and attribute group, kept in the same
-- transaction as the events they summarise. period is hour, day or month; the total of a tenant,
-- resource and group is its month buckets added up when read. A bucket may be kept in several rows
-- (shard 0 to 15), which readers add up: concurrent appends write different shards, so that
-- they never wait for each other's commit on the hot buckets of the current hour, day and month.
CREATE TABLE rollups (
    tenant       text        NOT NULL,
    resource     text        NOT NULL,
    period       text        NOT NULL,
    bucket_start timestamptz NOT NULL,
    grp          text        NOT NULL, -- canonical JSON of the dimension attributes
    sum          bigint      NOT NULL,
    count        bigint      NOT NULL,
    max          bigint      NOT NULL,
    shard        smallint    NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, resource, period, bucket_start, grp, shard)
) WITH (fillfactor = 70); -- room for HOT updates: every append updates the current buckets
-- Queries of every tenant (QueryRollups without a tenant, rebuilds) by period and start.
CREATE INDEX rollups_period_start ON rollups (period, bucket_start);
