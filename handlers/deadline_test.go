package handlers

import (
	"context"
	"errors"
	"testing"
	"time"
)

type lazyKey struct{}

// TestLazyDeadlineActsAsWithDeadline: whether or not anything waited on
// it, the context reports its deadline, ends at it with DeadlineExceeded
// (as Err, Done and context.Cause say), ends with its parent, keeps the
// parent's values, and is Canceled once stopped.
func TestLazyDeadlineActsAsWithDeadline(t *testing.T) {
	parent := context.WithValue(context.Background(), lazyKey{}, "v")

	t.Run("waited on", func(t *testing.T) {
		ctx := withLazyDeadline(parent, time.Now().Add(30*time.Millisecond))
		stop := ctx.stop
		defer stop()
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > 30*time.Millisecond {
			t.Fatalf("deadline %v, %v", dl, ok)
		}
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("Done did not close at the deadline")
		}
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) || !errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
			t.Fatalf("Err %v, Cause %v; want DeadlineExceeded", ctx.Err(), context.Cause(ctx))
		}
	})

	t.Run("never waited on", func(t *testing.T) {
		ctx := withLazyDeadline(parent, time.Now().Add(20*time.Millisecond))
		stop := ctx.stop
		defer stop()
		if ctx.Err() != nil || context.Cause(ctx) != nil || ctx.Value(lazyKey{}) != "v" {
			t.Fatalf("before the deadline: Err %v, Cause %v, value %v", ctx.Err(), context.Cause(ctx), ctx.Value(lazyKey{}))
		}
		deadline := time.Now().Add(5 * time.Second)
		for ctx.Err() == nil {
			if time.Now().After(deadline) {
				t.Fatal("Err stayed nil past the deadline")
			}
			time.Sleep(time.Millisecond)
		}
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) || !errors.Is(context.Cause(ctx), context.DeadlineExceeded) || ctx.Value(lazyKey{}) != "v" {
			t.Fatalf("after the deadline: Err %v, Cause %v, value %v", ctx.Err(), context.Cause(ctx), ctx.Value(lazyKey{}))
		}
		select {
		case <-ctx.Done():
		default:
			t.Fatal("Done is open past the deadline")
		}
	})

	t.Run("parent cancelled", func(t *testing.T) {
		p, cancel := context.WithCancel(parent)
		ctx := withLazyDeadline(p, time.Now().Add(time.Hour))
		stop := ctx.stop
		defer stop()
		done := ctx.Done()
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Done did not close with the parent")
		}
		if !errors.Is(ctx.Err(), context.Canceled) {
			t.Fatalf("Err %v, want Canceled", ctx.Err())
		}
		// A child made before anything waited also ends with the parent.
		p2, cancel2 := context.WithCancel(parent)
		ctx2 := withLazyDeadline(p2, time.Now().Add(time.Hour))
		stop2 := ctx2.stop
		defer stop2()
		child, cancelChild := context.WithCancel(ctx2)
		defer cancelChild()
		cancel2()
		select {
		case <-child.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("a child did not end with the parent")
		}
	})

	t.Run("stopped", func(t *testing.T) {
		for _, waited := range []bool{false, true} {
			ctx := withLazyDeadline(parent, time.Now().Add(time.Hour))
			stop := ctx.stop
			if waited {
				_ = ctx.Done()
			}
			stop()
			select {
			case <-ctx.Done():
			default:
				t.Fatalf("waited %v: Done open after stop", waited)
			}
			if !errors.Is(ctx.Err(), context.Canceled) || ctx.Value(lazyKey{}) != "v" {
				t.Fatalf("waited %v: after stop Err %v, value %v", waited, ctx.Err(), ctx.Value(lazyKey{}))
			}
		}
	})
}
