-- Quota leases: units of a tenant's hard quota headroom granted to one replica (owner), which
-- admits reservations from them in memory. An append that commits a reservation lowers its
-- owner's lease by the units held, in the same transaction that counts the event. A lease whose
-- owner stops renewing it expires, and its units return.
CREATE TABLE quota_leases (
    tenant   text        NOT NULL,
    resource text        NOT NULL,
    owner    text        NOT NULL,
    units    bigint      NOT NULL,
    held     bigint      NOT NULL DEFAULT 0, -- units in open reservations at the last renewal
    expires  timestamptz NOT NULL,
    PRIMARY KEY (tenant, resource, owner)
);

CREATE INDEX quota_leases_owner ON quota_leases (owner);

-- quota_used returns the usage of each listed bucket: the rollup rows of period p_periods[i]
-- starting in [p_starts[i], p_ends[i]), added up. STABLE: it reads with its caller's snapshot.
CREATE FUNCTION quota_used(p_tenant text, p_resource text,
    p_periods text[], p_starts timestamptz[], p_ends timestamptz[]) RETURNS bigint[]
LANGUAGE sql STABLE AS $$
    SELECT ARRAY(
        SELECT COALESCE((SELECT sum(ro.sum) FROM rollups ro
            WHERE ro.tenant = p_tenant AND ro.resource = p_resource AND ro.period = b.p
              AND ro.bucket_start >= b.s AND ro.bucket_start < b.e), 0)::bigint
        FROM unnest(p_periods, p_starts, p_ends) WITH ORDINALITY AS b(p, s, e, i)
        ORDER BY b.i)
$$;

-- quota_lease grows owner's lease of (tenant, resource) so that a reservation of n units fits,
-- or refuses it, in one round trip. The hard rules' buckets are given as rollup periods and
-- bucket-start ranges with their limits. spare is the part of the owner's lease that the caller
-- took out of use (it is reused or returned), held the units of the owner's open reservations.
-- It returns the units granted (0: refused; spare was returned), each bucket's usage, the index
-- (from 1) of the tightest rule, and on refusal the units leased by every owner.
CREATE FUNCTION quota_lease(p_lock bigint, p_tenant text, p_resource text, p_owner text,
    p_periods text[], p_starts timestamptz[], p_ends timestamptz[], p_limits bigint[],
    p_n bigint, p_extra bigint, p_spare bigint, p_held bigint, p_ttl interval,
    OUT granted bigint, OUT used bigint[], OUT bind integer, OUT leased bigint)
LANGUAGE plpgsql AS $$
DECLARE
    others bigint;
    mine   bigint;
    head   bigint := 9223372036854775807;
    free   bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(p_lock);
    -- One statement, so usage and leases are read from one snapshot: an append that counts an
    -- event and lowers its lease is seen whole or not at all.
    SELECT quota_used(p_tenant, p_resource, p_periods, p_starts, p_ends),
      (SELECT COALESCE(sum(units), 0)::bigint FROM quota_leases
        WHERE tenant = p_tenant AND resource = p_resource AND owner <> p_owner AND expires > now()),
      (SELECT units FROM quota_leases
        WHERE tenant = p_tenant AND resource = p_resource AND owner = p_owner AND expires > now())
    INTO used, others, mine;
    bind := 1;
    FOR i IN 1 .. coalesce(array_length(p_limits, 1), 0) LOOP
        IF p_limits[i] - used[i] < head THEN
            head := p_limits[i] - used[i];
            bind := i;
        END IF;
    END LOOP;
    IF mine IS NULL THEN
        free := head - others - p_held; -- the lease is gone or dead: it is rewritten
    ELSE
        free := head - others - mine + p_spare;
    END IF;
    IF free < p_n THEN
        granted := 0;
        IF mine IS NULL THEN
            leased := others + p_held;
        ELSE
            leased := others + mine - p_spare;
            IF p_spare > 0 THEN
                UPDATE quota_leases SET units = units - p_spare
                WHERE tenant = p_tenant AND resource = p_resource AND owner = p_owner;
            END IF;
        END IF;
        RETURN;
    END IF;
    granted := p_n + GREATEST(LEAST(p_extra, (free - p_n) / 4), 0);
    leased := 0;
    IF mine IS NULL THEN
        INSERT INTO quota_leases (tenant, resource, owner, units, held, expires)
        VALUES (p_tenant, p_resource, p_owner, p_held + granted, p_held + p_n, now() + p_ttl)
        ON CONFLICT (tenant, resource, owner) DO UPDATE
        SET units = EXCLUDED.units, held = EXCLUDED.held, expires = EXCLUDED.expires;
    ELSE
        UPDATE quota_leases SET units = units + granted - p_spare, held = held + p_n, expires = now() + p_ttl
        WHERE tenant = p_tenant AND resource = p_resource AND owner = p_owner;
    END IF;
END
$$;
