package billing

// Pricing and invoices (Price and its models, Plan, Invoicer, GenerateInvoice, FinalizeInvoice and
// the HTML, CSV and PDF renderings) are not built yet: they are a later capability of this
// module. This file is where they will live; it holds no behaviour today. The usage they will be
// computed from is already exact: see Meter.Usage.
