-- Background jobs: one row per job name, the latest claimed run (see billing.JobStore).
CREATE TABLE jobs (
    name     text        NOT NULL PRIMARY KEY,
    slot     timestamptz NOT NULL, -- the start of the interval the run is for
    owner    text        NOT NULL, -- the claiming Meter's instance id
    until    timestamptz NOT NULL, -- the claim's expiry
    finished boolean     NOT NULL DEFAULT false -- true once the owner finished the run for slot
);
