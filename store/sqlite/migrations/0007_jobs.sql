-- Background jobs: one row per job name, the latest claimed run (see billing.JobStore).
CREATE TABLE jobs (
    name     TEXT    NOT NULL PRIMARY KEY,
    slot     INTEGER NOT NULL, -- Unix nanoseconds: the start of the interval the run is for
    owner    TEXT    NOT NULL, -- the claiming Meter's instance id
    until    INTEGER NOT NULL, -- Unix nanoseconds: the claim's expiry
    finished INTEGER NOT NULL DEFAULT 0 -- 1 once the owner finished the run for slot
);
