package encryption_test

import (
	"bytes"
	"errors"
	"maps"
	"reflect"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/lexigram/events/encryption"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

var (
	ada      = platform.StreamID{Type: "customer", ID: "ada"}
	adaOrder = platform.StreamID{Type: "order", ID: "o-1"}
	adaNotes = platform.StreamID{Type: "note", ID: "n-1"}
	bob      = platform.StreamID{Type: "customer", ID: "bob"}
)

// stored is what roundTrip appends, stream by stream.
var stored = []struct {
	stream platform.StreamID
	event  any
}{
	{ada, customerRegistered{Name: "Ada Lovelace", Email: "ada@example.com", Age: 36, Plan: "gold-plan"}},
	{adaOrder, orderPlaced{Customer: "ada", Address: "12 St James's Square", Total: 4200}},
	{adaNotes, noteAdded{Text: "prefers the analytical engine", Tags: []string{"vip"}}},
	{bob, customerRegistered{Name: "Bob", Email: "bob@example.com", Age: 41, Plan: "free-plan"}},
}

// roundTrip appends every stored event, then checks that Read, ReadAll
// and Subscribe give each back as it was, sealed under the right key.
func roundTrip(t *testing.T, st platform.EventStore) {
	t.Helper()
	for _, s := range stored {
		appendOne(t, st, s.stream, s.event)
	}
	wantKey := map[platform.StreamID]string{
		ada:      encryption.KeyID(encryption.AggregateSubject(ada)),
		adaOrder: encryption.KeyID("ada"), // the subject field's
		adaNotes: encryption.KeyID(encryption.AggregateSubject(adaNotes)),
		bob:      encryption.KeyID(encryption.AggregateSubject(bob)),
	}
	check := func(how string, got []platform.Envelope) {
		t.Helper()
		if len(got) != len(stored) {
			t.Fatalf("%s: %d events, want %d", how, len(got), len(stored))
		}
		for i, e := range got {
			if !reflect.DeepEqual(e.Event, stored[i].event) {
				t.Errorf("%s: event %d is %#v, want %#v", how, i, e.Event, stored[i].event)
			}
			if e.KeyID != wantKey[e.Stream] || e.Shredded {
				t.Errorf("%s: event %d on %v: key %q shredded %v, want key %q not shredded", how, i, e.Stream, e.KeyID, e.Shredded, wantKey[e.Stream])
			}
		}
	}
	var each []platform.Envelope
	for _, s := range stored {
		each = append(each, readStream(t, st, s.stream)...)
	}
	check("Read", each)
	check("ReadAll", readAll(t, st))
	check("Subscribe", subscribed(t, st.(subscriber), len(stored)))
}

func TestRoundTripJetStream(t *testing.T) {
	e := newEnv(t)
	roundTrip(t, e.store)
}

func TestRoundTripMemory(t *testing.T) {
	e := newEnv(t) // for the key bucket
	roundTrip(t, platform.NewMemoryEventStore(platform.MemoryOptions{Registry: e.reg}))
}

// TestStoredBodies reads the raw messages: a field left readable is there
// in plain text, personal fields and whole-sealed events are not, and the
// key header names the key.
func TestStoredBodies(t *testing.T) {
	e := newEnv(t)
	for _, s := range stored[:3] {
		appendOne(t, e.store, s.stream, s.event)
	}
	raw, err := e.js.Stream(t.Context(), e.store.StreamName())
	if err != nil {
		t.Fatal(err)
	}
	for seq, c := range []struct{ readable, hidden []string }{
		{[]string{"gold-plan"}, []string{"Ada Lovelace", "ada@example.com"}},
		{nil, []string{"St James"}},
		{nil, []string{"analytical", "vip"}},
	} {
		m, err := raw.GetMsg(t.Context(), uint64(seq+1))
		if err != nil {
			t.Fatal(err)
		}
		if m.Header.Get(lxjs.KeyHeader) == "" {
			t.Errorf("message %d has no %s header: %v", seq+1, lxjs.KeyHeader, m.Header)
		}
		for _, s := range c.readable {
			if !bytes.Contains(m.Data, []byte(s)) {
				t.Errorf("message %d: %q is not readable in the stored body %q", seq+1, s, m.Data)
			}
		}
		for _, s := range c.hidden {
			if bytes.Contains(m.Data, []byte(s)) {
				t.Errorf("message %d: %q is readable in the stored body %q", seq+1, s, m.Data)
			}
		}
	}
}

// TestNoSealer reads sealed events in a process without the key ring: a
// clear error naming the key, not garbage and not a skippable decode
// error.
func TestNoSealer(t *testing.T) {
	e := newEnv(t)
	appendOne(t, e.store, ada, stored[0].event)
	plain, err := lxjs.New(t.Context(), e.js, lxjs.Options{Registry: newRegistry(t)})
	if err != nil {
		t.Fatal(err)
	}
	failed := false
	for _, err := range plain.Read(t.Context(), ada, platform.Revision{}) {
		failed = true
		switch {
		case err == nil:
			t.Fatal("a sealed event read without the key ring")
		case !errors.Is(err, platform.ErrConfigConflict) || platform.IsDecodeError(err):
			t.Fatalf("error %v: want LXE-011, not a decode error", err)
		case !bytes.Contains([]byte(err.Error()), []byte(encryption.KeyID(encryption.AggregateSubject(ada)))):
			t.Fatalf("error %v does not name the data key", err)
		}
		break
	}
	if !failed {
		t.Fatal("the read yielded nothing")
	}
}

type customerV1 struct {
	FullName string `lexigram:"personal"`
}

type customerV2 struct {
	First, Last string `lexigram:"personal"`
}

// TestUpcastersSeePlaintext: an event sealed as v1 is opened before the
// v1 → v2 upcaster runs.
func TestUpcastersSeePlaintext(t *testing.T) {
	e := newEnv(t)
	v1 := platform.NewRegistry()
	platform.MustRegister[customerV1](v1, "customer.named", 1)
	e.open(t, v1, nil)
	opts := lxjs.Options{Stream: "UPCAST", SubjectPrefix: "upcast", Registry: v1}
	old, err := lxjs.New(t.Context(), e.js, opts)
	if err != nil {
		t.Fatal(err)
	}
	appendOne(t, old, ada, customerV1{FullName: "Ada Lovelace"})

	var seen string
	v2 := platform.NewRegistry()
	platform.MustRegister[customerV1](v2, "customer.named", 1)
	platform.MustRegister[customerV2](v2, "customer.named", 2)
	platform.MustUpcast(v2, func(c customerV1) customerV2 {
		seen = c.FullName
		first, last, _ := bytes.Cut([]byte(c.FullName), []byte(" "))
		return customerV2{First: string(first), Last: string(last)}
	})
	e.open(t, v2, nil)
	opts.Registry = v2
	current, err := lxjs.New(t.Context(), e.js, opts)
	if err != nil {
		t.Fatal(err)
	}
	got := readStream(t, current, ada)
	if seen != "Ada Lovelace" || len(got) != 1 || got[0].Event != (customerV2{First: "Ada", Last: "Lovelace"}) {
		t.Fatalf("the upcaster saw %q and the read gave %+v", seen, got)
	}
}

// TestRoundTripJSON: the JSON codec seals and opens the same (the
// personal fields decode onto the readable part by name), and shreds.
func TestRoundTripJSON(t *testing.T) {
	e := newEnv(t)
	mem := platform.NewMemoryEventStore(platform.MemoryOptions{Registry: e.reg, Codec: platform.JSON})
	roundTrip(t, mem)
	forgetAda(t, e.ring)
	checkShredded(t, "ReadAll", readAll(t, mem))
}

// TestTampered: a sealed body altered in the stream, or moved under
// another key's header, is a decode error naming the cause, not garbage
// and not a crash.
func TestTampered(t *testing.T) {
	e := newEnv(t)
	appendOne(t, e.store, ada, stored[0].event)
	appendOne(t, e.store, bob, stored[3].event)
	raw, err := e.js.Stream(t.Context(), e.store.StreamName())
	if err != nil {
		t.Fatal(err)
	}
	m, err := raw.GetMsg(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Decode(m.Subject, m.Sequence, m.Time, m.Header, m.Data); err != nil {
		t.Fatalf("the untouched message: %v", err)
	}
	flipped := bytes.Clone(m.Data)
	flipped[len(flipped)-1] ^= 1
	otherKey := nats.Header(maps.Clone(m.Header))
	otherKey.Set(lxjs.KeyHeader, encryption.KeyID(encryption.AggregateSubject(bob)))
	readable := bytes.Clone(m.Data)
	readable[bytes.Index(readable, []byte("gold-plan"))] = 'G' // the readable part is authenticated too
	for name, c := range map[string]struct {
		h    nats.Header
		data []byte
	}{"flipped": {m.Header, flipped}, "other key": {otherKey, m.Data}, "readable part": {m.Header, readable}, "truncated": {m.Header, m.Data[:2]}} {
		_, err := e.store.Decode(m.Subject, m.Sequence, m.Time, c.h, c.data)
		if !platform.IsDecodeError(err) || !errors.Is(err, platform.ErrCorruptEvent) {
			t.Errorf("%s: %v, want an LXE-003 decode error", name, err)
		}
	}
}
