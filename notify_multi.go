package billing

import (
	"context"
	"errors"
	"fmt"
)

// MultiNotifier delivers each alert to several notifiers, in order, such as a webhook and a log.
// Every notifier is tried whatever the others return; the errors are joined (errors.Join), each
// prefixed with its index, and nil entries are skipped. Because the outbox retries a failed alert
// as a whole, notifiers that succeeded see it again: they receive the same Alert.ID, by which
// receivers deduplicate.
//
// The zero value (nil) delivers nowhere and returns nil. A MultiNotifier is safe for concurrent
// use when its notifiers are and the slice is not modified while in use.
type MultiNotifier []Notifier

// Notify calls Notify of every notifier with ctx and a, and returns their joined errors.
func (m MultiNotifier) Notify(ctx context.Context, a Alert) error {
	var errs []error
	for i, n := range m {
		if n == nil {
			continue
		}
		if err := n.Notify(ctx, a); err != nil {
			errs = append(errs, fmt.Errorf("notifier %d (%T): %w", i, n, err))
		}
	}
	return errors.Join(errs...)
}
