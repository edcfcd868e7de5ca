package simulate_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/simulate"
)

// recorder is a testing.TB that keeps a failure instead of stopping.
type recorder struct {
	testing.TB
	failure string
}

func (r *recorder) Helper()                      {}
func (r *recorder) Logf(string, ...any)          {}
func (r *recorder) Fatalf(f string, args ...any) { r.failure = fmt.Sprintf(f, args...) }

type placed struct{ Customer string }

func orderEvents(orders, each int) []platform.Envelope {
	var evs []platform.Envelope
	pos := uint64(0)
	for v := 1; v <= each; v++ {
		for o := range orders {
			pos++
			evs = append(evs, platform.Envelope{Stream: platform.StreamID{Type: "order", ID: fmt.Sprint("o-", o)}, Version: uint64(v), Position: pos,
				Type: "order.placed", Event: placed{Customer: fmt.Sprint("c-", o%3)}})
		}
	}
	return evs
}

// TestCheckFindsANonIdempotentProjection: a count that adds on every
// delivery is wrong under duplicates and crashes, and Check says which
// seed and how to replay it; the same count keeping the version it
// applied per aggregate is right on every seed.
func TestCheckFindsANonIdempotentProjection(t *testing.T) {
	events := orderEvents(5, 4)
	var r recorder
	r.TB = t
	simulate.Check(&r, simulate.Options{Seed: 1, Runs: 50}, func(s *simulate.Sim) error {
		count := 0
		err := s.Deliver(t.Context(), events, func(_ context.Context, _ platform.Envelope) error { count++; return nil })
		if err == nil && count != len(events) {
			err = fmt.Errorf("counted %d events, want %d", count, len(events))
		}
		return err
	})
	if !strings.Contains(r.failure, "seed ") || !strings.Contains(r.failure, simulate.SeedEnv+"=") || !strings.Contains(r.failure, "counted") {
		t.Fatalf("Check of a non-idempotent count: %q, want a failing seed with its replay command", r.failure)
	}

	simulate.Check(t, simulate.Options{Seed: 1, Runs: 200}, func(s *simulate.Sim) error {
		applied := map[platform.StreamID]uint64{}
		count := 0
		err := s.Deliver(t.Context(), events, func(_ context.Context, e platform.Envelope) error {
			if e.Version <= applied[e.Stream] {
				return nil // seen: a duplicate or a redelivery
			}
			if e.Version != applied[e.Stream]+1 {
				return fmt.Errorf("%s version %d arrived after version %d: one aggregate's events out of order", e.Stream, e.Version, applied[e.Stream])
			}
			applied[e.Stream] = e.Version
			count++
			return nil
		})
		if err == nil && count != len(events) {
			err = fmt.Errorf("counted %d events, want %d", count, len(events))
		}
		return err
	})
}

// TestDeliverRetriesFailures: a handler that fails now and then gets
// each event until it succeeds; one that always fails is reported.
func TestDeliverRetriesFailures(t *testing.T) {
	events := orderEvents(3, 3)
	simulate.Check(t, simulate.Options{Seed: 7, Runs: 50}, func(s *simulate.Sim) error {
		calls := 0
		seen := map[platform.StreamID]uint64{}
		err := s.Deliver(t.Context(), events, func(_ context.Context, e platform.Envelope) error {
			if calls++; calls%3 == 0 {
				return errors.New("flaky")
			}
			seen[e.Stream] = max(seen[e.Stream], e.Version)
			return nil
		})
		for o := range 3 {
			if v := seen[platform.StreamID{Type: "order", ID: fmt.Sprint("o-", o)}]; err == nil && v != 3 {
				err = fmt.Errorf("order o-%d reached version %d, want 3", o, v)
			}
		}
		return err
	})
	s := simulateOne(t)
	err := s.Deliver(t.Context(), events, func(context.Context, platform.Envelope) error { return errors.New("broken") })
	if err == nil || !strings.Contains(err.Error(), "failed 20 times") {
		t.Fatalf("a handler that always fails: %v, want the event named as failing 20 times", err)
	}
}

// simulateOne returns one seed's Sim, through Check.
func simulateOne(t *testing.T) *simulate.Sim {
	var got *simulate.Sim
	simulate.Check(t, simulate.Options{Seed: 3, Runs: 1}, func(s *simulate.Sim) error { got = s; return nil })
	return got
}

// TestSameSeedSameFaults: a seed's faults are the same every run.
func TestSameSeedSameFaults(t *testing.T) {
	events := orderEvents(4, 3)
	var traces [][]string
	for range 2 {
		simulate.Check(t, simulate.Options{Seed: 42, Runs: 1}, func(s *simulate.Sim) error {
			err := s.Deliver(t.Context(), events, func(context.Context, platform.Envelope) error { return nil })
			traces = append(traces, slices.Clone(s.Trace()))
			return err
		})
	}
	if !slices.Equal(traces[0], traces[1]) || len(traces[0]) < len(events) {
		t.Fatalf("seed 42 gave two traces:\n%v\n%v", traces[0], traces[1])
	}
}

type Order struct {
	platform.AggregateRoot
	Placed bool
}

func (o *Order) AggregateType() string { return "order" }
func (o *Order) Apply(e any) {
	if _, ok := e.(placed); ok {
		o.Placed = true
	}
}

// TestStoreConflictsRerunDecisions: a command handler that sends mail
// inside its decision sends it again on a conflict, and Check catches
// it; one that sends after the save sends once.
func TestStoreConflictsRerunDecisions(t *testing.T) {
	reg := platform.NewRegistry()
	platform.MustRegister[placed](reg, "order.placed", 1)
	place := func(s *simulate.Sim, mailInside bool) error {
		store := s.Store(platform.NewMemoryEventStore(platform.MemoryOptions{Registry: reg}))
		orders := platform.NewRepository(store, func() *Order { return &Order{} }, platform.RepositoryOptions{})
		mails := 0
		for i := range 5 {
			_, _, err := orders.Update(t.Context(), fmt.Sprint("o-", i), func(o *Order) error {
				if o.Placed {
					return nil
				}
				platform.Raise(o, placed{Customer: "ada"})
				if mailInside {
					mails++
				}
				return nil
			})
			if err != nil {
				return err
			}
			if !mailInside {
				mails++
			}
		}
		if mails != 5 {
			return fmt.Errorf("sent %d mails for 5 orders", mails)
		}
		return nil
	}
	var r recorder
	r.TB = t
	simulate.Check(&r, simulate.Options{Seed: 1, Runs: 30}, func(s *simulate.Sim) error { return place(s, true) })
	if !strings.Contains(r.failure, "mails for 5 orders") || !strings.Contains(r.failure, "concurrency conflict") {
		t.Fatalf("a decision with a side effect: %q, want a failure with the conflict in its trace", r.failure)
	}
	simulate.Check(t, simulate.Options{Seed: 1, Runs: 30}, func(s *simulate.Sim) error { return place(s, false) })
}
