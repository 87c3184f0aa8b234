package billing

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"
)

// Alert says that a tenant's usage crossed a notification threshold of a quota rule in one period
// bucket. Each (tenant, resource, period, bucket, threshold) is alerted at most once, whatever the
// number of writers, processes or restarts: the Store keeps the record.
type Alert struct {
	// ID identifies the alert; it is derived from what the alert is about, so every process
	// computes the same one, and it is the webhook-id of every delivery attempt.
	ID       string `json:"id"`
	Tenant   string `json:"tenant"`
	Resource string `json:"resource"`
	Period   Period `json:"period"`
	// Bucket is the period bucket (for example the month) whose usage crossed the threshold.
	Bucket Span `json:"bucket"`
	// Threshold is the percentage of Limit that was reached, such as 80 or 100.
	Threshold int `json:"threshold"`
	// Used is the usage when the crossing was seen; Limit is the rule's limit.
	Used  int64 `json:"used"`
	Limit int64 `json:"limit"`
	// Hard says whether the rule refuses usage beyond Limit.
	Hard bool `json:"hard"`
	// At is when the crossing was seen.
	At time.Time `json:"at"`
}

// AlertID returns the deterministic ID of the alert for these coordinates.
func AlertID(tenant, resource string, period Period, bucketStart time.Time, threshold int) string {
	h := sha256.New()
	for _, s := range []string{tenant, resource, string(period), strconv.FormatInt(bucketStart.Unix(), 10), strconv.Itoa(threshold)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return "alert_" + hex.EncodeToString(h.Sum(nil)[:16])
}

// Notifier delivers alerts: to a webhook, by mail, to a log. Notify must be safe for concurrent
// use. A non-nil error makes the outbox retry later with the same Alert (same ID), so receivers
// can drop duplicates by ID.
type Notifier interface {
	Notify(ctx context.Context, a Alert) error
}

// NotifierFunc adapts a function to the Notifier interface.
type NotifierFunc func(ctx context.Context, a Alert) error

// Notify calls f.
func (f NotifierFunc) Notify(ctx context.Context, a Alert) error { return f(ctx, a) }
