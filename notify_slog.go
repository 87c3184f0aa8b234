package billing

import (
	"context"
	"log/slog"
)

// SlogNotifier delivers alerts to a structured log: one record at warn level per alert, with the
// alert's fields as attributes (alert_id, tenant, resource, period, bucket_start, bucket_end,
// threshold, used, limit, hard, at). It never fails, so the outbox never retries it.
//
// The zero value logs to slog.Default(). It is safe for concurrent use (as *slog.Logger is).
type SlogNotifier struct {
	// Logger receives the records. Nil means slog.Default(), looked up at each Notify.
	Logger *slog.Logger
}

// Notify logs a at warn level and returns nil.
func (n SlogNotifier) Notify(ctx context.Context, a Alert) error {
	l := n.Logger
	if l == nil {
		l = slog.Default()
	}
	l.LogAttrs(ctx, slog.LevelWarn, "billing: quota threshold reached",
		slog.String("alert_id", a.ID),
		slog.String("tenant", a.Tenant),
		slog.String("resource", a.Resource),
		slog.String("period", string(a.Period)),
		slog.Time("bucket_start", a.Bucket.Start),
		slog.Time("bucket_end", a.Bucket.End),
		slog.Int("threshold", a.Threshold),
		slog.Int64("used", a.Used),
		slog.Int64("limit", a.Limit),
		slog.Bool("hard", a.Hard),
		slog.Time("at", a.At),
	)
	return nil
}
