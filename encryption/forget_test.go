package encryption_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/lexigram/events/encryption"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// customer is an aggregate built from customerRegistered events.
type customer struct {
	platform.AggregateRoot
	State struct {
		Name, Email, Plan string
	}
}

func (c *customer) AggregateType() string { return "customer" }

func (c *customer) Apply(event any) {
	if e, ok := event.(customerRegistered); ok {
		c.State.Name, c.State.Email, c.State.Plan = e.Name, e.Email, e.Plan
	}
}

func (c *customer) SnapshotState() any         { return &c.State }
func (c *customer) SnapshotSchemaVersion() int { return 1 }

// shredded is what the stored events read as once ada is forgotten: her
// customer aggregate's key, her subject key ("ada", the order's) and her
// notes' aggregate key.
var shredded = map[platform.StreamID]any{
	ada:      customerRegistered{Name: encryption.Placeholder, Email: encryption.Placeholder, Age: 0, Plan: "gold-plan"},
	adaOrder: orderPlaced{Customer: "ada", Address: encryption.Placeholder, Total: 4200},
	adaNotes: noteAdded{},
}

func forgetAda(t *testing.T, ring *encryption.Keyring) {
	t.Helper()
	for _, f := range []func() error{
		func() error { return ring.ForgetAggregate(t.Context(), ada) },
		func() error { return ring.Forget(t.Context(), "ada") },
		func() error { return ring.ForgetAggregate(t.Context(), adaNotes) },
	} {
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}
}

// checkShredded checks events read after forgetAda: ada's with
// placeholders and the flag, bob's intact.
func checkShredded(t *testing.T, how string, got []platform.Envelope) {
	t.Helper()
	n := 0
	for _, e := range got {
		if e.Stream.Type == encryption.ForgottenAggregateType {
			continue
		}
		n++
		want, isAda := shredded[e.Stream]
		if !isAda {
			want = stored[3].event
		}
		if !reflect.DeepEqual(e.Event, want) || e.Shredded != isAda {
			t.Errorf("%s: %v reads as %#v shredded %v, want %#v shredded %v", how, e.Stream, e.Event, e.Shredded, want, isAda)
		}
	}
	if n != len(stored) {
		t.Errorf("%s: %d events, want %d", how, n, len(stored))
	}
}

func TestForget(t *testing.T) {
	e := newEnv(t)
	for _, s := range stored {
		appendOne(t, e.store, s.stream, s.event)
	}
	// Another process has ada's key cached before she is forgotten.
	otherReg := newRegistry(t)
	e.open(t, otherReg, nil)
	other, err := lxjs.New(t.Context(), e.js, lxjs.Options{Registry: otherReg})
	if err != nil {
		t.Fatal(err)
	}
	readStream(t, other, ada)

	forgetAda(t, e.ring)
	forgetAda(t, e.ring) // again: nothing more happens

	var each []platform.Envelope
	for _, s := range stored {
		each = append(each, readStream(t, e.store, s.stream)...)
	}
	checkShredded(t, "Read", each)
	all := readAll(t, e.store)
	checkShredded(t, "ReadAll", all)
	checkShredded(t, "Subscribe", subscribed(t, e.store, len(all)))

	var announced []string
	for _, ev := range all {
		if f, ok := ev.Event.(encryption.SubjectForgotten); ok {
			announced = append(announced, f.Subject)
			if f.KeyID != encryption.KeyID(f.Subject) || ev.KeyID != "" {
				t.Errorf("%+v (key %q): want its subject's key ID, stored unsealed", f, ev.KeyID)
			}
		}
	}
	want := []string{encryption.AggregateSubject(ada), "ada", encryption.AggregateSubject(adaNotes)}
	if !reflect.DeepEqual(announced, want) {
		t.Errorf("announced %v, want %v once each", announced, want)
	}

	// Nothing of ada is sealed again.
	_, err = e.store.Append(t.Context(), ada, platform.Any(), []platform.Envelope{{Event: stored[0].event}})
	if !errors.Is(err, platform.ErrInvalidArgument) {
		t.Errorf("append to a forgotten aggregate: %v, want LXE-001", err)
	}
	// bob's aggregate still takes events.
	appendOne(t, e.store, bob, customerRegistered{Name: "Bob", Plan: "gold-plan"})

	// The other process learns of it from the bucket's watch.
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := readStream(t, other, ada)
		if len(got) == 1 && got[0].Shredded {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("another process still reads %+v 30 s after Forget", got)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// A repository load replays the shredded events.
	repo := platform.NewRepository(e.store, func() *customer { return &customer{} }, platform.RepositoryOptions{})
	c, err := repo.Load(t.Context(), "ada")
	if err != nil {
		t.Fatal(err)
	}
	if c.State.Name != encryption.Placeholder || c.State.Email != encryption.Placeholder || c.State.Plan != "gold-plan" {
		t.Errorf("loaded ada as %+v", c.State)
	}
}

// TestForgetMemory: the memory store reads shredded events the same way.
func TestForgetMemory(t *testing.T) {
	e := newEnv(t)
	mem := platform.NewMemoryEventStore(platform.MemoryOptions{Registry: e.reg})
	for _, s := range stored {
		appendOne(t, mem, s.stream, s.event)
	}
	forgetAda(t, e.ring)
	checkShredded(t, "ReadAll", readAll(t, mem))
}
