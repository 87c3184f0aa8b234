-- Invoices (billing.Invoice as JSON), one live (not void) invoice per tenant and span.
CREATE TABLE invoices (
    id         TEXT    NOT NULL PRIMARY KEY,
    tenant     TEXT    NOT NULL,
    span_start INTEGER NOT NULL, -- Unix nanoseconds
    span_end   INTEGER NOT NULL,
    status     TEXT    NOT NULL, -- draft, finalized, paid, void
    number     TEXT,             -- set at finalization
    body       TEXT    NOT NULL,
    updated    INTEGER NOT NULL
);
CREATE UNIQUE INDEX invoices_live ON invoices (tenant, span_start, span_end) WHERE status <> 'void';
CREATE UNIQUE INDEX invoices_number ON invoices (number) WHERE number IS NOT NULL;
CREATE INDEX invoices_start ON invoices (span_start);

-- Gap-free invoice number sequences: last is the last number given.
CREATE TABLE invoice_sequences (
    name TEXT    NOT NULL PRIMARY KEY,
    last INTEGER NOT NULL
);

-- Spans closed to late events by finalized invoices.
CREATE TABLE closed_spans (
    tenant     TEXT    NOT NULL,
    span_start INTEGER NOT NULL,
    span_end   INTEGER NOT NULL,
    PRIMARY KEY (tenant, span_start, span_end)
) WITHOUT ROWID;
