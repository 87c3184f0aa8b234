-- Plans and tenant records, kept as JSON documents (billing.Plan, billing.Tenant). Lists sort IDs
-- byte-wise (COLLATE "C"), like Go strings, whatever the database's collation; the columns keep
-- the default collation so that they compare with the tenant columns of other tables.
CREATE TABLE plans (
    id      text        PRIMARY KEY,
    body    jsonb       NOT NULL,
    updated timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tenants (
    id      text        PRIMARY KEY,
    plan_id text        NOT NULL DEFAULT '',
    body    jsonb       NOT NULL,
    updated timestamptz NOT NULL
);
-- ListTenants pages by id in byte order.
CREATE INDEX tenants_id_c ON tenants ((id COLLATE "C"));
