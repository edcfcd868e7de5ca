package handlers_test

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lexigram/events/handlers"
	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/projections"
)

type tallyBumped struct{ N int }

// tallyQuery asks for the tally as of a command's position.
type tallyQuery struct{ After uint64 }

func (q tallyQuery) ReadAfter() (string, uint64) { return "tally", q.After }

// TestReadYourWrites: the projection is held back, so a query that did
// not wait would see 0; with the middleware it sees the command's event.
func TestReadYourWrites(t *testing.T) {
	ctx := t.Context()
	reg := platform.NewRegistry()
	platform.MustRegister[tallyBumped](reg, "tally.bumped", 1)
	platform.MustRegister[tallyQuery](reg, "tally.get", 1)
	store := platform.NewMemoryEventStore(platform.MemoryOptions{Registry: reg})

	var tally atomic.Int64
	release := make(chan struct{})
	m, err := projections.New(store, projections.Options{Checkpoints: platform.NewMemoryCheckpointStore(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Register(projections.Projection{Name: "tally", Handler: projections.HandlerFunc(
		func(ctx context.Context, _ projections.Generation, e platform.Envelope) error {
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
			tally.Add(int64(e.Event.(tallyBumped).N))
			return nil
		})}); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(release); _ = m.Stop(context.Background()) })

	bus := handlers.NewQueryBus(handlers.Options{Registry: reg, Middleware: []handlers.Middleware{handlers.ReadYourWrites(m)}})
	if err := handlers.HandleQuery(bus, func(ctx context.Context, q tallyQuery) (int64, error) { return tally.Load(), nil }); err != nil {
		t.Fatal(err)
	}
	res, err := store.Append(ctx, platform.StreamID{Type: "tally", ID: "t"}, platform.NoStream(), []platform.Envelope{{Event: tallyBumped{N: 5}}})
	if err != nil {
		t.Fatal(err)
	}

	// While the projection is held back, a query that must see the append
	// waits, up to its deadline.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := handlers.Ask[int64](short, bus, tallyQuery{After: res.LastPosition}); !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, platform.ErrQueryExecution) {
		t.Fatalf("query while the projection is behind: %v, want a query error wrapping the deadline", err)
	}
	// A query that asks for no position does not wait.
	if got, err := handlers.Ask[int64](ctx, bus, tallyQuery{}); err != nil || got != 0 {
		t.Fatalf("query without a position = %d, %v; want 0 at once", got, err)
	}

	done := make(chan error, 1)
	var got int64
	go func() {
		var err error
		got, err = handlers.Ask[int64](ctx, bus, tallyQuery{After: res.LastPosition})
		done <- err
	}()
	release <- struct{}{}
	select {
	case err := <-done:
		if err != nil || got != 5 {
			t.Fatalf("query after the command = %d, %v; want 5", got, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the query did not return after the projection caught up")
	}
}
