package encryption_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/lexigram/events/encryption"
	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/projections"
)

// customerNames is a read model of customers' names that drops a
// customer when SubjectForgotten says so.
type customerNames struct {
	mu       sync.Mutex
	names    map[string]string
	shredded int
}

func (c *customerNames) handle(_ context.Context, _ projections.Generation, e platform.Envelope) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch ev := e.Event.(type) {
	case customerRegistered:
		c.names[e.Stream.ID] = ev.Name
		if e.Shredded {
			c.shredded++
		}
	case encryption.SubjectForgotten:
		for id := range c.names {
			if ev.Subject == encryption.AggregateSubject(platform.StreamID{Type: "customer", ID: id}) {
				delete(c.names, id)
			}
		}
	}
	return nil
}

func (c *customerNames) get() (map[string]string, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]string{}
	for k, v := range c.names {
		out[k] = v
	}
	return out, c.shredded
}

// project runs the read model over the store until it has applied
// position.
func project(t *testing.T, st projections.EventSource, position uint64) (*customerNames, func(position uint64)) {
	t.Helper()
	model := &customerNames{names: map[string]string{}}
	m, err := projections.New(st, projections.Options{Checkpoints: platform.NewMemoryCheckpointStore(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Register(projections.Projection{Name: "customer_names", EventTypes: []string{"customer.registered", encryption.ForgottenEventType},
		Handler: projections.HandlerFunc(model.handle)}); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Stop(context.Background()) })
	wait := func(position uint64) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		if err := m.WaitFor(ctx, "customer_names", position); err != nil {
			t.Fatal(err)
		}
	}
	wait(position)
	return model, wait
}

// TestProjection: a live projection reacts to SubjectForgotten by
// dropping the customer; a rebuild afterwards receives the shredded
// events, flagged.
func TestProjection(t *testing.T) {
	e := newEnv(t)
	appendOne(t, e.store, ada, stored[0].event)
	res := appendOne(t, e.store, bob, stored[3].event)
	live, waitLive := project(t, e.store, res.LastPosition)
	if names, _ := live.get(); names["ada"] != "Ada Lovelace" || names["bob"] != "Bob" {
		t.Fatalf("live read model %v", names)
	}

	if err := e.ring.ForgetAggregate(t.Context(), ada); err != nil {
		t.Fatal(err)
	}
	all := readAll(t, e.store)
	head := all[len(all)-1].Position // SubjectForgotten
	waitLive(head)
	if names, _ := live.get(); len(names) != 1 || names["bob"] != "Bob" {
		t.Fatalf("live read model after Forget: %v, want bob only", names)
	}

	rebuilt, _ := project(t, e.store, head)
	names, n := rebuilt.get()
	if _, has := names["ada"]; has || names["bob"] != "Bob" || n != 1 {
		t.Fatalf("rebuilt read model %v with %d shredded events: want bob only, one shredded event seen", names, n)
	}
}
