package sagas_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/sagas"
)

// An operator retries a compensation that failed once its cause is
// fixed; retrying an instance that does not wait for an operator is
// refused with the reason.
func TestOperatorRetriesACompensation(t *testing.T) {
	e := newEnv(t, sagas.Options{Retry: sagas.Retry{Attempts: 2, Initial: 10 * time.Millisecond}})
	e.l.mu.Lock()
	e.l.fail["ship"] = -1
	e.l.fail["release"] = -1
	e.l.mu.Unlock()
	ctx := context.Background()
	in, err := e.m.Start(ctx, "fulfillment", "op-1", order{Order: "op-1"})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, e.m, in.ID, sagas.CompensationFailed)
	op := e.m.Operator()
	e.l.mu.Lock()
	delete(e.l.fail, "release")
	e.l.mu.Unlock()
	if _, err := op.Retry(ctx, in.ID); err != nil {
		t.Fatal(err)
	}
	waitState(t, e.m, in.ID, sagas.Compensated)
	if got := strings.Join(e.l.entries("op-1"), ","); got != "reserve,charge,refund,release" {
		t.Errorf("commands %s, want the release once, after the retry", got)
	}
	_, err = op.Retry(ctx, in.ID)
	if !errors.Is(err, platform.ErrInvalidArgument) || !strings.Contains(err.Error(), "only PARKED and COMPENSATION_FAILED") {
		t.Errorf("retry a compensated instance: %v, want the refusal saying which states are retried", err)
	}
	if _, err := op.Retry(ctx, "no-such-instance"); !errors.Is(err, platform.ErrSagaNotFound) {
		t.Errorf("retry an unknown ID: %v, want ErrSagaNotFound", err)
	}
}

// An operator aborts an instance resting at a wait (it compensates),
// shows one with its pending timer, and fires a timer now.
func TestOperatorAbortShowAndFire(t *testing.T) {
	e := newEventEnv(t)
	m, _ := e.manager(t, sagas.Options{}, checkout("ops", time.Hour, nil))
	ctx := context.Background()
	op := m.Operator()

	e.raise(t, "order", "a-1", OrderPlaced{Order: "a-1"})
	e.raise(t, "order", "a-2", OrderPlaced{Order: "a-2"})
	first := waitFor(t, m, "ops", "a-1", "at the wait", resting(1))
	second := waitFor(t, m, "ops", "a-2", "at the wait", resting(1))

	d := waitTimer(t, op, second.ID)
	if want := second.Due.Truncate(time.Millisecond).Add(time.Millisecond); !d.Timer.At.Equal(want) || d.Timer.Stale {
		t.Errorf("timer %+v, want at %v (the due time rounded up to a millisecond), not stale", d.Timer, want)
	}

	if _, err := op.Abort(ctx, first.ID, "customer cancelled"); err != nil {
		t.Fatal(err)
	}
	done := waitFor(t, m, "ops", "a-1", "compensated", inState(sagas.Compensated))
	if !strings.Contains(done.Error, "aborted by an operator: customer cancelled") {
		t.Errorf("error %q, want the abort's reason", done.Error)
	}
	if got := strings.Join(e.l.entries("a-1"), ","); got != "reserve,release" {
		t.Errorf("commands %s, want reserve,release", got)
	}
	if _, err := op.Abort(ctx, first.ID, ""); !errors.Is(err, platform.ErrInvalidArgument) || !strings.Contains(err.Error(), "finished") {
		t.Errorf("abort a finished instance: %v, want a refusal saying it has finished", err)
	}

	if _, err := op.FireTimer(ctx, second.ID); err != nil {
		t.Fatal(err)
	}
	timedOut := waitFor(t, m, "ops", "a-2", "compensated", inState(sagas.Compensated))
	if !strings.Contains(timedOut.Error, "timed out") {
		t.Errorf("error %q, want the timeout", timedOut.Error)
	}

	page, err := op.List(ctx, sagas.Query{Type: "ops", States: []sagas.State{sagas.Compensated}, Limit: 1})
	if err != nil || len(page) != 1 {
		t.Fatalf("list one compensated: %v, %v", page, err)
	}
	rest, err := op.List(ctx, sagas.Query{Type: "ops", States: []sagas.State{sagas.Compensated}, After: page[0].ID, Limit: 10})
	if err != nil || len(rest) != 1 || rest[0].ID == page[0].ID {
		t.Errorf("the next page: %v, %v; want the other instance", rest, err)
	}
}

// waitTimer waits for the instance's timer to be set.
func waitTimer(t *testing.T, op *sagas.Operator, id string) sagas.Details {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, err := op.Show(context.Background(), id)
		if err == nil && d.Timer != nil {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance %s has no pending timer: %+v, %v", id, d, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
