package projections_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/projections"
)

// TestTransientErrorsAreWaitedOut: a projection whose handler meets the
// server unavailable (its write times out) is not FAULTED: it shows the
// error while RUNNING, tries again from its checkpoint with a backoff,
// and once the server answers applies everything and goes LIVE with no
// error; an error of the projection's own stays FAULTED
// (TestHandlerErrorFaultsOnlyThatProjection).
func TestTransientErrorsAreWaitedOut(t *testing.T) {
	ctx := testContext(t)
	n := newNode(t, server(t), false)
	last := appendOrders(t, n.store, "a", 10, 0)
	m := n.manager(t, projections.Options{BatchSize: 3, CheckpointInterval: 4})
	r := newRecorder()
	var unavailable atomic.Bool
	var failures atomic.Int32
	unavailable.Store(true)
	r.setHook(func(ctx context.Context, e platform.Envelope) error {
		if unavailable.Load() && e.Position == 7 {
			failures.Add(1)
			return fmt.Errorf("write the read model's row: %w", nats.ErrTimeout)
		}
		return nil
	})
	if err := m.Register(projections.Projection{Name: "flaky", Handler: r}); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stopAll(t, m)
	eventually(t, 20*time.Second, "two attempts at position 7 failed", func() bool { return failures.Load() >= 2 })
	var seen projections.Status
	eventually(t, 20*time.Second, "the projection RUNNING with the transient error", func() bool {
		st, err := m.Status(ctx, "flaky")
		if err != nil {
			t.Fatal(err)
		}
		if st.State == projections.Faulted {
			t.Fatalf("the projection FAULTED on a transient error: %v", st.Err)
		}
		seen = st
		return st.State == projections.Running && st.Err != nil
	})
	if !errors.Is(seen.Err, nats.ErrTimeout) || !strings.Contains(seen.Err.Error(), "position 7") {
		t.Errorf("the status shows %v, want the timeout at position 7", seen.Err)
	}
	unavailable.Store(false)
	if err := m.WaitFor(ctx, "flaky", last); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, m, "flaky", projections.Live)
	if st.Err != nil {
		t.Errorf("live again, the status still shows %v", st.Err)
	}
}
