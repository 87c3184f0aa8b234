package middleware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meterplane/billing"
)

// DefaultMaxPending is the default of Options.MaxPending and ChatOptions.MaxPending.
const DefaultMaxPending = 4096

// commitRetries are the waits between attempts of a commit that failed for a reason that may pass
// (a full queue, a store error); a reservation that is still open can be committed again.
var commitRetries = []time.Duration{10 * time.Millisecond, 100 * time.Millisecond, time.Second}

// committer runs the commits of finished requests: behind the response in a goroutine (the
// default), or in line when the caller asked to wait for durability or too many are in flight.
type committer struct {
	wait     bool
	pending  *sync.WaitGroup
	max      int64
	inflight atomic.Int64
	onError  func(error)
}

func newCommitter(wait bool, pending *sync.WaitGroup, maxPending int, onError func(error)) *committer {
	if maxPending <= 0 {
		maxPending = DefaultMaxPending
	}
	if onError == nil {
		onError = func(err error) { slog.Default().Error("billing middleware", "err", err) }
	}
	return &committer{wait: wait, pending: pending, max: int64(maxPending), onError: onError}
}

// run runs commit: in line when c.wait is set or MaxPending commits are already in flight (which
// slows requests down to the speed of the writer instead of piling up goroutines), otherwise in a
// new goroutine after which the response completes at once. ctx's values are kept but not its
// cancellation: a commit must happen even when the client has gone.
func (c *committer) run(ctx context.Context, commit func(context.Context) error) {
	ctx = context.WithoutCancel(ctx)
	if c.wait || c.inflight.Add(1) > c.max {
		if !c.wait {
			c.inflight.Add(-1)
		}
		c.do(ctx, commit)
		return
	}
	if c.pending != nil {
		c.pending.Add(1)
	}
	go func() {
		defer func() {
			c.inflight.Add(-1)
			if c.pending != nil {
				c.pending.Done()
			}
		}()
		c.do(ctx, commit)
	}()
}

// do calls commit, retrying failures that may pass, and reports a final failure to onError.
func (c *committer) do(ctx context.Context, commit func(context.Context) error) {
	err := commit(ctx)
	for _, wait := range commitRetries {
		if err == nil || !retryable(err) {
			break
		}
		time.Sleep(wait)
		err = commit(ctx)
	}
	if err != nil {
		c.onError(fmt.Errorf("billing middleware: usage not recorded: %w", err))
	}
}

// retryable reports whether a failed commit may succeed if tried again.
func retryable(err error) bool {
	for _, final := range []error{billing.ErrClosed, billing.ErrInvalidEvent, billing.ErrEventConflict,
		billing.ErrPeriodClosed} {
		if errors.Is(err, final) {
			return false
		}
	}
	return true
}
