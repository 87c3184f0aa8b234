package billing_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/meterplane/billing"
)

func TestMultiNotifier(t *testing.T) {
	var calls []string
	ok := func(name string) billing.Notifier {
		return billing.NotifierFunc(func(_ context.Context, a billing.Alert) error {
			calls = append(calls, name+":"+a.Tenant)
			return nil
		})
	}
	errDown := errors.New("receiver down")
	failing := billing.NotifierFunc(func(context.Context, billing.Alert) error {
		calls = append(calls, "failing")
		return errDown
	})

	m := billing.MultiNotifier{ok("a"), nil, failing, ok("b")}
	err := m.Notify(context.Background(), notifyAlert())
	if !errors.Is(err, errDown) || !strings.Contains(err.Error(), "notifier 2") {
		t.Errorf("Notify = %v, want errDown from notifier 2", err)
	}
	if diff := cmp.Diff([]string{"a:acme", "failing", "b:acme"}, calls); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}

	calls = nil
	if err := (billing.MultiNotifier{ok("a"), ok("b")}).Notify(context.Background(), notifyAlert()); err != nil {
		t.Errorf("all succeed: Notify = %v", err)
	}
	var zero billing.MultiNotifier
	if err := zero.Notify(context.Background(), notifyAlert()); err != nil {
		t.Errorf("zero value: Notify = %v", err)
	}
}
