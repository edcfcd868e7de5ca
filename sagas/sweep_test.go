package sagas_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/sagas"
)

// An instance whose process died between its Create and its start
// message reaching the server (here: created in the store, no message
// sent) is found by the start sweep of a manager that was already running,
// and runs to its end, once, on each kind of store: the KV store's
// windows of revisions and the List of the others.
func TestStartSweepMovesAStrandedInstanceOn(t *testing.T) {
	for _, name := range []string{"kv", "memory"} {
		t.Run(name, func(t *testing.T) {
			js, err := jetstream.New(embeddedtest.Conn(t, embeddedtest.Server(t)))
			if err != nil {
				t.Fatal(err)
			}
			var store sagas.Store = sagas.NewMemoryStore()
			if name == "kv" {
				if store, err = sagas.NewKVStore(t.Context(), js, sagas.KVOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			checkStrandedMovesOn(t, js, store, sagas.Options{})
		})
	}
}

// checkStrandedMovesOn runs a manager with a one-second AckWait, starts
// two instances as usual and strands a third beside them (the sweep reads
// past the others), and waits for the stranded one to complete.
func checkStrandedMovesOn(t *testing.T, js jetstream.JetStream, store sagas.Store, opts sagas.Options) {
	t.Helper()
	l := &ledger{fail: map[string]int{}}
	opts.AckWait, opts.Commands, opts.Logger = time.Second, bus(t, l), embeddedtest.Logger(t)
	m := runManager(t, js, store, opts, fulfillment())
	sagas.WaitResumed(t, m)
	for _, o := range []string{"o-1", "o-2"} {
		if _, err := m.Start(t.Context(), "fulfillment", o, order{Order: o}); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UTC()
	stranded := sagas.Instance{ID: sagas.InstanceID("fulfillment", "o-3"), Type: "fulfillment", Key: "o-3", State: sagas.Started, Attempt: 1,
		Data: []byte(`{"Order":"o-3"}`), CorrelationID: "c-3", Owner: sagas.StartLease, LeaseUntil: now.Add(time.Second), Created: now, Updated: now}
	if _, created, err := store.Create(t.Context(), stranded); err != nil || !created {
		t.Fatalf("create the stranded instance: created %v, %v", created, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for {
		in, err := m.Get(ctx, stranded.ID)
		if err == nil && in.State == sagas.Completed {
			break
		}
		if ctx.Err() != nil {
			in, err = m.Get(t.Context(), stranded.ID)
			t.Fatalf("the stranded instance was not moved on within 20s: %+v (%v)", in, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := strings.Join(l.entries("o-3"), ","); got != "reserve,charge,ship" {
		t.Fatalf("the stranded instance's commands: %s, want reserve,charge,ship once each", got)
	}
}
