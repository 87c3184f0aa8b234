// Package billing meters what each tenant of a service uses, and (in later releases of this
// module) holds tenants to quotas and rate limits and turns usage into invoices. It is a library:
// a service imports it, opens a Store, and calls Meter.Track from its own code. It needs no
// server: the default store is an embedded SQLite file (store/sqlite).
//
// # Tracking usage
//
// An Event says that a tenant used some quantity of a resource at a time, with attributes such
// as the model:
//
//	st, err := sqlite.Open("billing.db")
//	m, err := billing.New(billing.Config{Store: st})
//	defer m.Close()
//	err = m.Track(ctx, billing.Event{Tenant: "acme", Resource: "tokens.output", Quantity: 812,
//		Attrs: map[string]string{"model": "gpt-4o"}})
//
// Track validates every event (errors match ErrInvalidEvent and name the field), then hands the
// events to the Meter's single writer, which commits them in batches. By default Track returns
// once its events are durable; Config.Async makes it return once they are queued.
//
// # Exactly once
//
// An event's ID is its idempotency key, unique per tenant. Tracking the same (Tenant, ID) again,
// in the same batch, another batch or after a restart, changes nothing; a different event under a
// recorded ID is refused with ErrEventConflict. Give events IDs (NewEventID) when you may retry.
//
// # Usage
//
// Each event is added, in the same transaction that stores it, to its hour, day, month and total
// buckets (rollups) per tenant, resource and attribute group. Meter.Usage answers from those
// buckets, so a month's usage costs the same after a thousand events or a hundred million.
// Meter.RebuildRollups recomputes buckets from the events; it changes nothing unless the buckets
// were damaged or the Config's Location or Dimensions changed.
package billing
