package billing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/meterplane/billing"
)

func TestSlogNotifierLogsWarn(t *testing.T) {
	var buf bytes.Buffer
	n := billing.SlogNotifier{Logger: slog.New(slog.NewJSONHandler(&buf, nil))}
	a := notifyAlert()
	if err := n.Notify(context.Background(), a); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("log record %q: %v", buf.String(), err)
	}
	delete(rec, "time")
	want := map[string]any{
		"level":        "WARN",
		"msg":          "billing: quota threshold reached",
		"alert_id":     a.ID,
		"tenant":       "acme",
		"resource":     "tokens.output",
		"period":       "month",
		"bucket_start": "2026-03-01T00:00:00Z",
		"bucket_end":   "2026-04-01T00:00:00Z",
		"threshold":    80.0,
		"used":         812000.0,
		"limit":        1000000.0,
		"hard":         true,
		"at":           "2026-03-15T12:00:00Z",
	}
	if diff := cmp.Diff(want, rec); diff != "" {
		t.Errorf("record (-want +got):\n%s", diff)
	}
}

// TestSlogNotifierZeroValue swaps the default logger, so it does not run in parallel.
func TestSlogNotifierZeroValue(t *testing.T) {
	var buf bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	t.Cleanup(func() { slog.SetDefault(old) })
	if err := (billing.SlogNotifier{}).Notify(context.Background(), notifyAlert()); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	if !bytes.Contains(buf.Bytes(), []byte("level=WARN")) || !bytes.Contains(buf.Bytes(), []byte("tenant=acme")) {
		t.Errorf("default logger got %q", buf.String())
	}
}
