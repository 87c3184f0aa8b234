-- Invoices (billing.Invoice as JSON; its amounts are decimal strings, kept exactly), at most one
-- live (not void) invoice per tenant and span.
CREATE TABLE invoices (
    id         text        PRIMARY KEY,
    tenant     text        NOT NULL,
    span_start timestamptz NOT NULL,
    span_end   timestamptz NOT NULL,
    status     text        NOT NULL CHECK (status IN ('draft', 'finalized', 'paid', 'void')),
    number     text,       -- set at finalization
    body       jsonb       NOT NULL,
    updated    timestamptz NOT NULL
);
CREATE UNIQUE INDEX invoices_live ON invoices (tenant, span_start, span_end) WHERE status <> 'void';
CREATE UNIQUE INDEX invoices_number ON invoices (number) WHERE number IS NOT NULL;
CREATE INDEX invoices_start ON invoices (span_start DESC);

-- Gap-free invoice number sequences: last is the last number given. FinalizeInvoice advances a
-- sequence in the transaction that stores the numbered invoice, holding the row's lock.
CREATE TABLE invoice_sequences (
    name text   PRIMARY KEY,
    last bigint NOT NULL
);

-- Spans closed to late events by finalized invoices (AppendEvents refuses events in them).
CREATE TABLE closed_spans (
    tenant     text        NOT NULL,
    span_start timestamptz NOT NULL,
    span_end   timestamptz NOT NULL,
    PRIMARY KEY (tenant, span_start, span_end)
);
