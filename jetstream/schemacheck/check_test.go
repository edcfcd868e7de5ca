package schemacheck_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"

	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/jetstream/schemacheck"
	"github.com/lexigram/events/platform"
)

// fillChain stores v1, v2 and v3 events of order.placed (msgpack), a v1
// one in JSON and a notes event.
func fillChain(e *env) {
	e.add(e.stores[0], placedV1{Customer: "ada", Amount: 1}, placedV1{Customer: "bob", Amount: 2})
	e.add(e.stores[1], placedV2{Customer: "cy", Total: 3})
	e.add(e.stores[2], placedV3{Customer: "di", Total: 4, Currency: "USD"}, noted{Text: "hi"})
	jsonV1 := e.store(func(o *lxjs.Options) { o.Registry, o.Codec = writers()[0], platform.JSON })
	e.add(jsonV1, placedV1{Customer: "eve", Amount: 5})
}

// TestChainPasses: v1, v2 and v3 events of a type with a v1 → v2 → v3
// chain all read, each (type, version, codec) listed with its count;
// progress ends with Done. On the embedded server (2.15).
func TestChainPasses(t *testing.T) {
	e := newEnv(t)
	fillChain(e)
	var mu sync.Mutex
	var last schemacheck.Progress
	rep := e.check(reader(), schemacheck.Options{Progress: func(p schemacheck.Progress) { mu.Lock(); last = p; mu.Unlock() }})
	assertChainClean(t, rep)
	if !last.Done || last.Read != 6 || last.Total != 6 || last.Checked != 6 {
		t.Fatalf("last progress %+v, want done with 6 of 6", last)
	}
}

// TestOldServer: the same on the Debian nats-server 2.9.10, on a stream
// of its own, with a failure found there too.
func TestOldServer(t *testing.T) {
	e := oldServer(t)
	fillChain(e)
	rep := e.check(reader(), schemacheck.Options{})
	assertChainClean(t, rep)
	pos := e.republish(1, func(h nats.Header, _ []byte) []byte { return []byte{0xc1} })
	rep = e.check(reader(), schemacheck.Options{})
	if f := failureAt(t, rep, pos); f.Kind != schemacheck.KindUndecodable || rep.FailureCount != 1 {
		t.Fatalf("after a broken body: %+v", rep)
	}
}

func assertChainClean(t *testing.T, rep schemacheck.Report) {
	t.Helper()
	if !rep.Clean() || rep.Events != 6 || rep.Checked != 6 || len(rep.Types) != 5 || len(rep.Failures) != 0 {
		t.Fatalf("a readable stream: %+v", rep)
	}
	for _, c := range []struct {
		version int
		codec   string
		count   uint64
	}{{1, "msgpack", 2}, {2, "msgpack", 1}, {3, "msgpack", 1}, {1, "json", 1}} {
		tr := typeOf(t, rep, placed, c.version, c.codec)
		if tr.Count != c.count || tr.Checked != c.count || tr.Failures != 0 || tr.ReadsAs != "order.placed v3" {
			t.Errorf("%s v%d %s: %+v", placed, c.version, c.codec, tr)
		}
	}
}

// TestFailuresNamed: an event of an unregistered type, one of an
// unregistered version, a body that does not decode, a missing header
// and an upcaster that panics each fail with their type, version,
// position, aggregate and cause; the rest of the stream still reads.
func TestFailuresNamed(t *testing.T) {
	e := newEnv(t)
	ok := e.add(e.stores[0], placedV1{Customer: "ada", Amount: 1}, placedV1{Customer: "bob", Amount: 2})
	unknownType := e.republish(ok[0], func(h nats.Header, b []byte) []byte { h.Set(lxjs.TypeHeader, "order.vanished"); return b })
	unknownVersion := e.republish(ok[0], func(h nats.Header, b []byte) []byte { h.Set(lxjs.SchemaHeader, "7"); return b })
	badBody := e.republish(ok[1], func(h nats.Header, _ []byte) []byte { return []byte{0x92, 0xa3, 'a'} })
	noSchema := e.republish(ok[1], func(h nats.Header, b []byte) []byte { h.Del(lxjs.SchemaHeader); return b })
	panicky := e.add(e.stores[1], placedV2{Customer: "crash", Total: 1})[0]

	reg := platform.NewRegistry()
	platform.MustRegister[placedV1](reg, placed, 1)
	platform.MustRegister[placedV2](reg, placed, 2)
	platform.MustRegister[placedV3](reg, placed, 3)
	platform.MustUpcast(reg, func(e placedV1) placedV2 { return placedV2{Customer: e.Customer, Total: e.Amount} })
	platform.MustUpcast(reg, func(e placedV2) placedV3 {
		if e.Customer == "crash" {
			panic("no customer crash")
		}
		return placedV3{Customer: e.Customer, Total: e.Total, Currency: "EUR"}
	})
	rep := e.check(reg, schemacheck.Options{})
	if rep.Events != 7 || rep.FailureCount != 5 || len(rep.Failures) != 5 {
		t.Fatalf("report: %+v", rep)
	}
	for _, c := range []struct {
		pos     uint64
		kind    schemacheck.Kind
		typ     string
		version int
		cause   string
	}{
		{unknownType, schemacheck.KindUnknownType, "order.vanished", 1, `event type "order.vanished" version 1 is not registered`},
		{unknownVersion, schemacheck.KindUnknownVersion, placed, 7, `"order.placed" version 7 is not registered in this process (versions 1, 2, 3 are)`},
		{badBody, schemacheck.KindUndecodable, placed, 1, `decode "order.placed" version 1 with msgpack`},
		{noSchema, schemacheck.KindMalformed, placed, 0, `bad Lx-Schema header ""`},
		{panicky, schemacheck.KindUpcastFailed, placed, 2, "an upcaster panicked: no customer crash"},
	} {
		f := failureAt(t, rep, c.pos)
		if f.Kind != c.kind || f.Type != c.typ || f.SchemaVersion != c.version || !strings.Contains(f.Cause, c.cause) ||
			!strings.HasPrefix(f.Aggregate, "order/o-") || f.Version != 1 || !strings.Contains(f.String(), c.typ) {
			t.Errorf("failure at %d: %+v\nwant %s %s v%d with %q", c.pos, f, c.kind, c.typ, c.version, c.cause)
		}
	}
	if tr := typeOf(t, rep, placed, 1, "msgpack"); tr.Count != 3 || tr.Failures != 1 || tr.ReadsAs != "order.placed v3" {
		t.Errorf("order.placed v1: %+v", tr)
	}
	if tr := typeOf(t, rep, "order.vanished", 1, "msgpack"); tr.Count != 1 || tr.Failures != 1 || tr.ReadsAs != "unreadable" {
		t.Errorf("order.vanished: %+v", tr)
	}
}

// TestNoPath: a registered old version without an upcaster fails as
// no-path, naming the fix.
func TestNoPath(t *testing.T) {
	e := newEnv(t)
	pos := e.add(e.stores[0], placedV1{Customer: "ada"})[0]
	reg := platform.NewRegistry()
	platform.MustRegister[placedV1](reg, placed, 1)
	platform.MustRegister[placedV2](reg, placed, 2)
	rep := e.check(reg, schemacheck.Options{})
	if f := failureAt(t, rep, pos); f.Kind != schemacheck.KindNoPath || !strings.Contains(f.Cause, "has no upcaster to version 2") {
		t.Fatalf("no path: %+v", f)
	}
}

// TestSampling: with a sample, fewer events than all are decoded, but
// every (type, version, codec) is, at least min(sample, count) times;
// the same seed picks the same events, and a failure outside the first
// ones is found by a full check.
func TestSampling(t *testing.T) {
	e := newEnv(t)
	many := make([]any, 300)
	for i := range many {
		many[i] = placedV1{Customer: "c", Amount: i}
	}
	e.add(e.stores[0], many...)
	e.add(e.stores[1], placedV2{Customer: "x"}, placedV2{Customer: "y"})
	e.add(e.stores[2], noted{Text: "once"})
	rep := e.check(reader(), schemacheck.Options{Sample: 5, Seed: 42})
	v1 := typeOf(t, rep, placed, 1, "msgpack")
	if !rep.Clean() || rep.Events != 303 || v1.Count != 300 || v1.Checked < 5 || v1.Checked >= 100 || rep.Checked != v1.Checked+3 || rep.Seed != 42 {
		t.Fatalf("sample 5: checked %d of %d (v1 %+v)", rep.Checked, rep.Events, v1)
	}
	if tr := typeOf(t, rep, placed, 2, "msgpack"); tr.Checked != 2 {
		t.Fatalf("v2: %+v", tr)
	}
	if tr := typeOf(t, rep, "order.noted", 1, "msgpack"); tr.Checked != 1 {
		t.Fatalf("noted: %+v", tr)
	}
	again := e.check(reader(), schemacheck.Options{Sample: 5, Seed: 42})
	if again.Checked != rep.Checked {
		t.Fatalf("the same seed checked %d, then %d", rep.Checked, again.Checked)
	}
	if full := e.check(reader(), schemacheck.Options{}); full.Checked != 303 || full.Sample != 0 {
		t.Fatalf("a full check: %+v", full)
	}
}

// TestCompatBackward: a current version 2 with no version 1 to upcast
// from fails, an upcaster that fills a field the codec does not keep
// fails the round trip (named by field), and a good chain passes; none
// of them fail a check without the compat mode.
func TestCompatBackward(t *testing.T) {
	e := newEnv(t)
	e.add(e.stores[0], placedV1{Customer: "ada", Amount: 1}, placedV1{Customer: "bob", Amount: 2})
	e.add(e.stores[1], placedV2{Customer: "cy", Total: 3})
	e.add(e.stores[2], placedV3{Customer: "di", Total: 4})
	compat := schemacheck.Options{Compat: schemacheck.CompatBackward}

	if rep := e.check(reader(), compat); !rep.Clean() || rep.Compat != schemacheck.CompatBackward {
		t.Fatalf("a good chain: %+v", rep)
	}

	// order.noted is stored at version 2 only, and version 1 is not registered.
	noV1 := platform.NewRegistry()
	platform.MustRegister[noted](noV1, "order.noted", 2)
	e.add(e.store(func(o *lxjs.Options) { o.Registry = noV1 }), noted{Text: "v2 only"})
	rep := e.check(withNotedV2(), compat)
	if rep.FailureCount != 1 || rep.Failures[0].Kind != schemacheck.KindCompatNoUpcaster || rep.Failures[0].Type != "order.noted" ||
		!strings.Contains(rep.Failures[0].Cause, "no version 1 is registered that upcasts to it") {
		t.Fatalf("a missing upcaster: %+v", rep)
	}
	if rep := e.check(withNotedV2(), schemacheck.Options{}); !rep.Clean() {
		t.Fatalf("a missing upcaster without compat: %+v", rep)
	}

	lossy := platform.NewRegistry()
	platform.MustRegister[placedV1](lossy, placed, 1)
	platform.MustRegister[lossyV2](lossy, placed, 2)
	platform.MustUpcast(lossy, func(e placedV1) lossyV2 { return lossyV2{Customer: e.Customer, total: e.Amount} })
	e2 := newEnv(t)
	e2.add(e2.stores[0], placedV1{Customer: "ada", Amount: 1})
	rep = e2.check(lossy, compat)
	if f := failureAt(t, rep, 1); f.Kind != schemacheck.KindCompatRoundTrip || !strings.Contains(f.Cause, "field total: 1 is read back as 0") {
		t.Fatalf("a lossy upcaster: %+v", rep)
	}
	if rep := e2.check(lossy, schemacheck.Options{}); !rep.Clean() {
		t.Fatalf("a lossy upcaster without compat: %+v", rep)
	}
}

// lossyV2 keeps the total where no codec stores it.
type lossyV2 struct {
	Customer string
	total    int
}

// withNotedV2 is reader with order.noted at version 2 only.
func withNotedV2() *platform.Registry {
	r := platform.NewRegistry()
	platform.MustRegister[placedV1](r, placed, 1)
	platform.MustRegister[placedV2](r, placed, 2)
	platform.MustRegister[placedV3](r, placed, 3)
	platform.MustRegister[notedV2](r, "order.noted", 2)
	platform.MustUpcast(r, func(e placedV1) placedV2 { return placedV2{Customer: e.Customer, Total: e.Amount} })
	platform.MustUpcast(r, func(e placedV2) placedV3 { return placedV3{Customer: e.Customer, Total: e.Total} })
	return r
}

type notedV2 struct{ Text string }

// TestCodecHeader: the header the check reads the codec from is the one
// the store writes.
func TestCodecHeader(t *testing.T) {
	e := newEnv(t)
	st := e.store(func(o *lxjs.Options) { o.Registry, o.Codec = writers()[0], platform.JSON })
	pos := e.add(st, placedV1{Customer: "ada"})[0]
	m, err := e.stream.GetMsg(t.Context(), pos)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Header.Get("Lx-Codec"); got != "json" {
		t.Fatalf("the store writes the codec as %q in Lx-Codec: %v", got, m.Header)
	}
}

// TestErrors: what keeps the check from running is an error naming the
// cause and the fix.
func TestErrors(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, c := range []struct {
		reg  *platform.Registry
		opts schemacheck.Options
		want string
	}{
		{reader(), schemacheck.Options{Stream: "NOPE"}, `stream "NOPE" does not exist on this server`},
		{nil, schemacheck.Options{Stream: e.name}, "the registry is nil"},
		{reader(), schemacheck.Options{Stream: e.name, Sample: -1}, "sample -1: use 0 for every event"},
		{reader(), schemacheck.Options{Stream: e.name, Compat: "forward"}, `compat "forward": use "backward"`},
	} {
		_, err := schemacheck.Check(ctx, e.js, c.reg, c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, platform.ErrInvalidArgument) {
			t.Errorf("%+v: %v, want %q", c.opts, err, c.want)
		}
	}
	if rep := e.check(reader(), schemacheck.Options{}); !rep.Clean() || rep.Events != 0 || len(rep.Types) != 0 {
		t.Fatalf("an empty stream: %+v", rep)
	}
}

type priced struct{ Total int }

// TestCompatSplit: a previous version split in two by UpcastMany (as in
// docs/schema.md) has its upcaster, and its parts round-trip: clean.
func TestCompatSplit(t *testing.T) {
	e := newEnv(t)
	e.add(e.stores[1], placedV2{Customer: "ada", Total: 7})
	reg := platform.NewRegistry()
	platform.MustRegister[placedV2](reg, placed, 2)
	platform.MustRegister[placedV3](reg, placed, 3)
	platform.MustRegister[priced](reg, "order.priced", 1)
	platform.MustUpcastMany(reg, func(e placedV2) []any { return []any{placedV3{Customer: e.Customer}, priced{Total: e.Total}} })
	rep := e.check(reg, schemacheck.Options{Compat: schemacheck.CompatBackward})
	if tr := typeOf(t, rep, placed, 2, "msgpack"); !rep.Clean() || tr.ReadsAs != "split by order.placed v2" || tr.Checked != 1 {
		t.Fatalf("a split: %+v", rep)
	}
}
