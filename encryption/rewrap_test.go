package encryption_test

import (
	"crypto/rand"
	"reflect"
	"testing"

	"github.com/lexigram/events/encryption"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// TestRewrap rotates the master key: new data keys wrap under the new
// key, Rewrap moves the old ones, and afterwards a provider with only the
// new key opens the bucket and reads every event.
func TestRewrap(t *testing.T) {
	e := newEnv(t)
	old := make([]byte, 32)
	rand.Read(old)
	m1, err := encryption.NewStaticKeys("m1", map[string][]byte{"m1": old})
	if err != nil {
		t.Fatal(err)
	}
	e.keys = m1
	// A fresh bucket for this test, opened with m1.
	_ = e.ring.Close()
	if err := e.js.DeleteKeyValue(t.Context(), encryption.DefaultBucket); err != nil {
		t.Fatal(err)
	}
	e.ring = e.open(t, e.reg, e.store)
	for _, s := range stored {
		appendOne(t, e.store, s.stream, s.event)
	}
	if err := e.ring.ForgetAggregate(t.Context(), bob); err != nil {
		t.Fatal(err)
	}

	fresh := make([]byte, 32)
	rand.Read(fresh)
	rotated, err := encryption.NewStaticKeys("m2", map[string][]byte{"m1": old, "m2": fresh})
	if err != nil {
		t.Fatal(err)
	}
	e.keys = rotated
	reg := newRegistry(t)
	ring := e.open(t, reg, nil)
	st, err := lxjs.New(t.Context(), e.js, lxjs.Options{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	carol := platform.StreamID{Type: "customer", ID: "carol"}
	appendOne(t, st, carol, customerRegistered{Name: "Carol", Plan: "gold-plan"}) // a new key, under m2

	var reports []encryption.RewrapProgress
	got, err := ring.Rewrap(t.Context(), func(p encryption.RewrapProgress) { reports = append(reports, p) })
	if err != nil {
		t.Fatal(err)
	}
	// Keys: ada's aggregate, subject "ada", ada's notes (m1), bob's (a
	// tombstone), carol's (m2).
	want := encryption.RewrapProgress{Total: 5, Done: 5, Rewrapped: 3, Forgotten: 1, Retired: []string{"m1"}}
	if !reflect.DeepEqual(got, want) || len(reports) == 0 || !reflect.DeepEqual(reports[len(reports)-1], want) {
		t.Fatalf("Rewrap: %+v, reports %+v; want %+v", got, reports, want)
	}
	again, err := ring.Rewrap(t.Context(), nil)
	if err != nil || again.Rewrapped != 0 {
		t.Fatalf("a second Rewrap: %+v, %v: want nothing rewrapped", again, err)
	}

	// m1 can go now.
	only, err := encryption.NewStaticKeys("m2", map[string][]byte{"m2": fresh})
	if err != nil {
		t.Fatal(err)
	}
	e.keys = only
	reg = newRegistry(t)
	e.open(t, reg, nil)
	st, err = lxjs.New(t.Context(), e.js, lxjs.Options{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stored {
		evs := readStream(t, st, s.stream)
		if len(evs) != 1 {
			t.Fatalf("%v: %d events", s.stream, len(evs))
		}
		if s.stream == bob {
			if !evs[0].Shredded {
				t.Errorf("bob reads %+v after the rotation, want shredded", evs[0])
			}
			continue
		}
		if !reflect.DeepEqual(evs[0].Event, s.event) || evs[0].Shredded {
			t.Errorf("%v reads %+v after the rotation, want %+v", s.stream, evs[0], s.event)
		}
	}
	if evs := readStream(t, st, carol); len(evs) != 1 || evs[0].Event.(customerRegistered).Name != "Carol" {
		t.Errorf("carol reads %+v", evs)
	}
}
