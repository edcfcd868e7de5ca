package platform_test

import (
	"errors"
	"reflect"
	"sync"
	"testing"

	"github.com/lexigram/events/platform"
)

// The versions of an order event the tests evolve: v1 → v2 renames
// Amount to Cents, v2 → v3 adds Currency with a default.
type (
	placedV1 struct {
		Order  string
		Amount int
	}
	placedV2 struct {
		Order string
		Cents int
	}
	placedV3 struct {
		Order    string
		Cents    int
		Currency string
	}
	shippedV1 struct{ Order string }
	noteV1    struct{ Text string }
)

func v1ToV2(e placedV1) placedV2 { return placedV2{Order: e.Order, Cents: e.Amount} }
func v2ToV3(e placedV2) placedV3 { return placedV3{Order: e.Order, Cents: e.Cents, Currency: "EUR"} }

// chainRegistry registers placed v1, v2, v3 and the upcasters between them.
func chainRegistry(t *testing.T) *platform.Registry {
	t.Helper()
	reg := platform.NewRegistry()
	for _, err := range []error{
		platform.Register[placedV1](reg, "order.placed", 1),
		platform.Register[placedV2](reg, "order.placed", 2),
		platform.Register[placedV3](reg, "order.placed", 3),
		platform.Upcast(reg, v1ToV2),
		platform.Upcast(reg, v2ToV3),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := reg.Check(); err != nil {
		t.Fatalf("Check of a complete chain: %v", err)
	}
	return reg
}

// stored returns the envelope and body of an event as a store holds them.
func stored(t *testing.T, name string, version int, event any) (*platform.Envelope, []byte) {
	t.Helper()
	data, err := platform.Msgpack.Marshal(event)
	if err != nil {
		t.Fatal(err)
	}
	return &platform.Envelope{ID: "01ID", Type: name, SchemaVersion: version, Stream: platform.StreamID{Type: "order", ID: "o-1"},
		Version: 7, Position: 42, Metadata: map[string]string{"k": "v"}}, data
}

func decodeEnv(t *testing.T, reg *platform.Registry, name string, version int, event any) ([]platform.Envelope, error) {
	t.Helper()
	e, data := stored(t, name, version, event)
	return reg.DecodeEnvelope(platform.Msgpack, e, data, nil)
}

func TestRegisterVersions(t *testing.T) {
	reg := chainRegistry(t)
	if et, ok := reg.Lookup("order.placed"); !ok || et.SchemaVersion != 3 || et.GoType() != reflect.TypeFor[placedV3]() {
		t.Fatalf("Lookup(order.placed) = %v, %v; want version 3", et, ok)
	}
	for v, want := range map[int]reflect.Type{1: reflect.TypeFor[placedV1](), 2: reflect.TypeFor[placedV2](), 3: reflect.TypeFor[placedV3]()} {
		if et, ok := reg.LookupVersion("order.placed", v); !ok || et.GoType() != want {
			t.Fatalf("LookupVersion(order.placed, %d) = %v, %v; want %v", v, et, ok, want)
		}
	}
	if _, ok := reg.LookupVersion("order.placed", 4); ok {
		t.Fatal("LookupVersion of an unregistered version succeeded")
	}
	// TypeOf gives every Go type its own version, current or not.
	if et, err := reg.TypeOf(placedV1{}); err != nil || et.SchemaVersion != 1 {
		t.Fatalf("TypeOf(placedV1{}) = %v, %v", et, err)
	}
	err := platform.Register[shippedV1](reg, "order.placed", 2)
	mustFail(t, "Register of a taken (name, version)", err, platform.ErrInvalidArgument, "order.placed", "version 2", "placedV2", "shippedV1")
}

func TestUpcastRegistrationRules(t *testing.T) {
	base := func(t *testing.T) *platform.Registry {
		reg := platform.NewRegistry()
		platform.MustRegister[placedV1](reg, "order.placed", 1)
		platform.MustRegister[placedV2](reg, "order.placed", 2)
		platform.MustRegister[placedV3](reg, "order.placed", 3)
		platform.MustRegister[shippedV1](reg, "order.shipped", 1)
		return reg
	}
	t.Run("gap", func(t *testing.T) {
		err := platform.Upcast(base(t), func(e placedV1) placedV3 { return placedV3{} })
		mustFail(t, "Upcast from 1 to 3", err, platform.ErrInvalidArgument, "order.placed", "next version, 2", "not 3")
	})
	t.Run("backwards", func(t *testing.T) {
		err := platform.Upcast(base(t), func(e placedV2) placedV1 { return placedV1{} })
		mustFail(t, "Upcast from 2 to 1", err, platform.ErrInvalidArgument, "next version, 3", "not 1")
	})
	t.Run("to itself", func(t *testing.T) {
		err := platform.Upcast(base(t), func(e placedV2) placedV2 { return e })
		mustFail(t, "Upcast from 2 to 2", err, platform.ErrInvalidArgument, "next version, 3")
	})
	t.Run("two from one version", func(t *testing.T) {
		reg := base(t)
		if err := platform.Upcast(reg, v1ToV2); err != nil {
			t.Fatal(err)
		}
		for what, err := range map[string]error{
			"Upcast":     platform.Upcast(reg, v1ToV2),
			"UpcastMany": platform.UpcastMany(reg, func(placedV1) []any { return nil }),
			"Retire":     platform.Retire[placedV1](reg),
		} {
			mustFail(t, what+" from a version with an upcaster", err, platform.ErrInvalidArgument, "order.placed", "version 1", "one upcaster per version")
		}
	})
	t.Run("unregistered", func(t *testing.T) {
		reg := base(t)
		err := platform.Upcast(reg, func(e noteV1) placedV1 { return placedV1{} })
		mustFail(t, "Upcast from an unregistered type", err, platform.ErrInvalidArgument, "noteV1", "not registered", "platform.Register")
		err = platform.Retire[noteV1](reg)
		mustFail(t, "Retire of an unregistered type", err, platform.ErrInvalidArgument, "noteV1", "not registered")
	})
	t.Run("nil func", func(t *testing.T) {
		mustFail(t, "Upcast(nil)", platform.Upcast[placedV1, placedV2](base(t), nil), platform.ErrInvalidArgument, "nil")
		mustFail(t, "UpcastMany(nil)", platform.UpcastMany[placedV1](base(t), nil), platform.ErrInvalidArgument, "nil")
	})
	t.Run("rename beside the next version", func(t *testing.T) {
		reg := platform.NewRegistry()
		platform.MustRegister[placedV1](reg, "order.placed", 1)
		platform.MustRegister[placedV2](reg, "order.placed", 2)
		platform.MustRegister[shippedV1](reg, "order.other", 2)
		err := platform.Upcast(reg, func(e placedV1) shippedV1 { return shippedV1{} })
		mustFail(t, "Upcast to another name while the name has the next version", err, platform.ErrInvalidArgument, "order.placed", "version 2")
	})
	t.Run("a failed registration changes nothing", func(t *testing.T) {
		reg := base(t)
		_ = platform.Upcast(reg, func(e placedV1) placedV3 { return placedV3{} })
		if _, err := reg.Resolve("order.placed", 1); err == nil {
			t.Fatal("a refused upcaster was registered")
		}
	})
	t.Run("must variants panic", func(t *testing.T) {
		reg := base(t)
		if p := catch(func() { platform.MustUpcast(reg, func(e placedV1) placedV3 { return placedV3{} }) }); p == nil {
			t.Fatal("MustUpcast of a gap did not panic")
		}
		platform.MustRetire[shippedV1](reg)
		if p := catch(func() { platform.MustRetire[shippedV1](reg) }); p == nil {
			t.Fatal("MustRetire twice did not panic")
		}
		if p := catch(func() { platform.MustUpcastMany(reg, func(shippedV1) []any { return nil }) }); p == nil {
			t.Fatal("MustUpcastMany of a retired version did not panic")
		}
	})
}

func TestResolveAndCheck(t *testing.T) {
	reg := chainRegistry(t)
	res, err := reg.Resolve("order.placed", 1)
	if err != nil || res.End != platform.EndCurrent || len(res.Path) != 3 || res.Last().SchemaVersion != 3 {
		t.Fatalf("Resolve(order.placed, 1) = %+v, %v; want a path through versions 1, 2, 3", res, err)
	}
	for i, et := range res.Path {
		if et.SchemaVersion != i+1 {
			t.Fatalf("Resolve(order.placed, 1): step %d is version %d", i, et.SchemaVersion)
		}
	}
	if res, err := reg.Resolve("order.placed", 3); err != nil || len(res.Path) != 1 || res.End != platform.EndCurrent {
		t.Fatalf("Resolve(order.placed, 3) = %+v, %v; want itself, current", res, err)
	}
	_, err = reg.Resolve("order.placed", 9)
	mustFail(t, "Resolve of an unregistered version", err, platform.ErrUnknownEventType, "order.placed", "version 9", "versions 1, 2, 3")
	_, err = reg.Resolve("order.nothing", 1)
	mustFail(t, "Resolve of an unregistered name", err, platform.ErrUnknownEventType, "order.nothing", "register")

	// A version without a way to the current one: found by Check at start
	// and by Resolve and decoding, which name it and the fix.
	broken := platform.NewRegistry()
	platform.MustRegister[placedV1](broken, "order.placed", 1)
	platform.MustRegister[placedV2](broken, "order.placed", 2)
	platform.MustRegister[placedV3](broken, "order.placed", 3)
	platform.MustUpcast(broken, v1ToV2)
	err = broken.Check()
	mustFail(t, "Check with version 2 lacking an upcaster", err, platform.ErrUnknownEventType, `"order.placed" version 2`, "no upcaster to version 3", "platform.Upcast", "platform.Retire")
	_, err = broken.Resolve("order.placed", 1)
	mustFail(t, "Resolve of version 1 through the gap", err, platform.ErrUnknownEventType, "version 1", "upcasts to", "version 2")
	_, err = decodeEnv(t, broken, "order.placed", 1, placedV1{Order: "o"})
	mustFail(t, "decoding version 1 through the gap", err, platform.ErrUnknownEventType, "version 2", "position 42")

	// A rename to a name with nothing registered.
	renamed := platform.NewRegistry()
	if err := renamed.Rename("order.old", "order.new"); err != nil {
		t.Fatal(err)
	}
	mustFail(t, "Check with a rename to nothing", renamed.Check(), platform.ErrUnknownEventType, "order.old", "order.new")
}

func TestDecodeUpcastChain(t *testing.T) {
	reg := chainRegistry(t)
	for v, ev := range map[int]any{1: placedV1{Order: "o", Amount: 250}, 2: placedV2{Order: "o", Cents: 250}} {
		got, err := decodeEnv(t, reg, "order.placed", v, ev)
		if err != nil {
			t.Fatalf("decode version %d: %v", v, err)
		}
		if len(got) != 1 {
			t.Fatalf("decode version %d: %d envelopes, want 1", v, len(got))
		}
		e := got[0]
		want := platform.Origin{Type: "order.placed", SchemaVersion: v, Part: 1, Parts: 1}
		if e.Event != (placedV3{Order: "o", Cents: 250, Currency: "EUR"}) || e.Type != "order.placed" || e.SchemaVersion != 3 ||
			e.Origin != want || e.Version != 7 || e.Position != 42 || e.ID != "01ID" || e.Metadata["k"] != "v" || e.Retired() || !e.EndsStored() {
			t.Fatalf("decode version %d = %+v; want v3 with origin %+v, version 7 at 42", v, e, want)
		}
	}
	// The current version reads as stored: no origin.
	got, err := decodeEnv(t, reg, "order.placed", 3, placedV3{Order: "o", Cents: 1, Currency: "USD"})
	if err != nil || len(got) != 1 || got[0].Origin != (platform.Origin{}) || got[0].Event != (placedV3{Order: "o", Cents: 1, Currency: "USD"}) {
		t.Fatalf("decode version 3 = %+v, %v", got, err)
	}
	// Decode knows no stored version: it reads the current one.
	data, _ := platform.Msgpack.Marshal(placedV3{Order: "x"})
	if v, err := reg.Decode(platform.Msgpack, "order.placed", data); err != nil || v != (placedV3{Order: "x"}) {
		t.Fatalf("Decode(order.placed) = %v, %v", v, err)
	}
}

func TestDecodeSplitRetireRename(t *testing.T) {
	reg := chainRegistry(t)
	platform.MustRegister[shippedV1](reg, "order.shipped", 1)
	platform.MustRegister[noteV1](reg, "order.note", 1)
	type emptyV1 struct{}
	platform.MustRegister[bundleV1](reg, "order.bundle", 1)
	platform.MustRegister[emptyV1](reg, "order.empty", 1)
	// The split yields an old version (placed v1) that goes on to v3.
	platform.MustUpcastMany(reg, func(b bundleV1) []any {
		return []any{placedV1{Order: b.Order, Amount: b.Cents}, shippedV1{Order: b.Order}, noteV1{Text: "dropped"}}
	})
	platform.MustUpcastMany(reg, func(emptyV1) []any { return nil })
	platform.MustRetire[noteV1](reg)

	got, err := decodeEnv(t, reg, "order.bundle", 1, bundleV1{Order: "o", Cents: 9})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("split into %d envelopes, want 2 (the retired note dropped): %+v", len(got), got)
	}
	for i, want := range []struct {
		event any
		typ   string
		id    string
	}{{placedV3{Order: "o", Cents: 9, Currency: "EUR"}, "order.placed", "01ID"}, {shippedV1{Order: "o"}, "order.shipped", "01ID.2"}} {
		e := got[i]
		if e.Event != want.event || e.Type != want.typ || e.ID != want.id || e.Version != 7 || e.Position != 42 ||
			e.Origin != (platform.Origin{Type: "order.bundle", SchemaVersion: 1, Part: i + 1, Parts: 2}) || e.EndsStored() != (i == 1) {
			t.Fatalf("part %d = %+v, want %v as %s, ID %s", i+1, e, want.event, want.typ, want.id)
		}
	}
	got[1].Metadata["k"] = "changed"
	if got[0].Metadata["k"] != "v" {
		t.Fatal("the parts of a split share their metadata map")
	}

	for name, ev := range map[string]any{"order.note": noteV1{Text: "x"}, "order.empty": emptyV1{}} {
		got, err := decodeEnv(t, reg, name, 1, ev)
		if err != nil || len(got) != 1 || !got[0].Retired() || got[0].Event != nil || got[0].Version != 7 || got[0].Position != 42 || !got[0].EndsStored() {
			t.Fatalf("decode of %s = %+v, %v; want the marker of a retired event at version 7, position 42", name, got, err)
		}
	}

	// A rename: events stored under the old name read as the new one's
	// versions, upcast as those are.
	if err := reg.Rename("order.created", "order.placed"); err != nil {
		t.Fatal(err)
	}
	got, err = decodeEnv(t, reg, "order.created", 1, placedV1{Order: "r", Amount: 1})
	if err != nil || len(got) != 1 || got[0].Event != (placedV3{Order: "r", Cents: 1, Currency: "EUR"}) || got[0].Origin.Type != "order.created" {
		t.Fatalf("decode of a renamed type = %+v, %v", got, err)
	}
	if err := reg.Check(); err != nil {
		t.Fatal(err)
	}
	err = platform.Register[struct{ Z int }](reg, "order.created", 2)
	mustFail(t, "Register under a renamed name", err, platform.ErrInvalidArgument, "order.created", "renamed to", "order.placed")
	mustFail(t, "Rename twice", reg.Rename("order.created", "order.shipped"), platform.ErrInvalidArgument, "already renamed")
	mustFail(t, "Rename of a registered name", reg.Rename("order.note", "order.placed"), platform.ErrInvalidArgument, "order.note", "is registered")
	if err := reg.Rename("x.a", "x.b"); err != nil {
		t.Fatal(err)
	}
	mustFail(t, "Rename into a cycle", reg.Rename("x.b", "x.a"), platform.ErrInvalidArgument, "cycle")
}

func TestRenameByUpcast(t *testing.T) {
	// v2 of order.placed upcasts to v3 registered under a new name.
	type submittedV3 struct {
		Order string
		Cents int
	}
	reg := platform.NewRegistry()
	platform.MustRegister[placedV1](reg, "order.placed", 1)
	platform.MustRegister[placedV2](reg, "order.placed", 2)
	platform.MustRegister[submittedV3](reg, "order.submitted", 3)
	platform.MustUpcast(reg, v1ToV2)
	platform.MustUpcast(reg, func(e placedV2) submittedV3 { return submittedV3(e) })
	if err := reg.Check(); err != nil {
		t.Fatal(err)
	}
	got, err := decodeEnv(t, reg, "order.placed", 1, placedV1{Order: "o", Amount: 3})
	if err != nil || len(got) != 1 || got[0].Event != (submittedV3{Order: "o", Cents: 3}) || got[0].Type != "order.submitted" || got[0].SchemaVersion != 3 {
		t.Fatalf("decode of order.placed v1 = %+v, %v; want order.submitted v3", got, err)
	}
	err = platform.Register[placedV3](reg, "order.placed", 3)
	mustFail(t, "Register of the old name's next version after a rename", err, platform.ErrInvalidArgument, "version 2 upcasts to", "order.submitted")
	// Appends write the current type only.
	store := platform.NewMemoryEventStore(platform.MemoryOptions{Registry: reg})
	_, err = store.Append(t.Context(), platform.StreamID{Type: "order", ID: "1"}, platform.Any(), []platform.Envelope{{Event: placedV2{}}})
	mustFail(t, "Append of a renamed version", err, platform.ErrInvalidArgument, `"order.placed" version 2`, "order.submitted", "submittedV3")
}

func TestDecodeErrors(t *testing.T) {
	reg := chainRegistry(t)
	_, err := decodeEnv(t, reg, "order.placed", 4, placedV3{})
	mustFail(t, "decode of an unregistered version", err, platform.ErrUnknownEventType, "order.placed", "version 4", "position 42", "order/", "register")
	var de *platform.DecodeError
	if !errors.As(err, &de) || de.Position != 42 || de.Version != 7 || de.Type != "order.placed" || de.SchemaVersion != 4 || !platform.IsDecodeError(err) {
		t.Fatalf("decode error %#v does not carry the stored event's place", err)
	}
	if platform.CodeOf(err) != platform.CodeUnknownEventType {
		t.Fatalf("CodeOf(%v) = %q", err, platform.CodeOf(err))
	}
	e, _ := stored(t, "order.placed", 1, nil)
	_, err = reg.DecodeEnvelope(platform.Msgpack, e, []byte{0xc1}, nil)
	mustFail(t, "decode of a corrupt body", err, platform.ErrCorruptEvent, "order.placed", "version 1", "msgpack", "position 42")

	// Upcasters that misbehave are errors of the event, never a panic.
	bad := platform.NewRegistry()
	type boomV1 struct{ X int }
	type boomV2 struct{ X int }
	type loopV1 struct{ X int }
	type strayV1 struct{ X int }
	type stray struct{ X int }
	platform.MustRegister[boomV1](bad, "t.boom", 1)
	platform.MustRegister[boomV2](bad, "t.boom", 2)
	platform.MustRegister[loopV1](bad, "t.loop", 1)
	platform.MustRegister[strayV1](bad, "t.stray", 1)
	platform.MustUpcast(bad, func(e boomV1) boomV2 { panic("boom") })
	platform.MustUpcastMany(bad, func(e loopV1) []any { return []any{e} })
	platform.MustUpcastMany(bad, func(e strayV1) []any { return []any{stray(e)} })
	for _, c := range []struct {
		name  string
		ev    any
		code  error
		parts []string
	}{
		{"t.boom", boomV1{}, platform.ErrCorruptEvent, []string{"panicked", "boom", "t.boom"}},
		{"t.loop", loopV1{}, platform.ErrCorruptEvent, []string{"cycle", "t.loop"}},
		{"t.stray", strayV1{}, platform.ErrUnknownEventType, []string{"stray", "not registered", "platform.Register"}},
	} {
		var got []platform.Envelope
		if p := catch(func() { got, err = decodeEnv(t, bad, c.name, 1, c.ev) }); p != nil {
			t.Fatalf("decode of %s panicked: %v", c.name, p)
		}
		mustFail(t, "decode of "+c.name, err, c.code, c.parts...)
		if len(got) != 0 {
			t.Fatalf("decode of %s appended %d envelopes with its error", c.name, len(got))
		}
	}
}

// Registering a new version after events were decoded takes effect: the
// resolved chains are per generation of the registry.
func TestUpcastAfterFirstDecode(t *testing.T) {
	reg := platform.NewRegistry()
	platform.MustRegister[placedV1](reg, "order.placed", 1)
	got, err := decodeEnv(t, reg, "order.placed", 1, placedV1{Order: "o", Amount: 5})
	if err != nil || got[0].Event != (placedV1{Order: "o", Amount: 5}) {
		t.Fatalf("decode of the current v1 = %+v, %v", got, err)
	}
	platform.MustRegister[placedV2](reg, "order.placed", 2)
	if _, err := decodeEnv(t, reg, "order.placed", 1, placedV1{}); !errors.Is(err, platform.ErrUnknownEventType) {
		t.Fatalf("decode of v1 with v2 registered and no upcaster: %v, want ErrUnknownEventType", err)
	}
	platform.MustUpcast(reg, v1ToV2)
	got, err = decodeEnv(t, reg, "order.placed", 1, placedV1{Order: "o", Amount: 5})
	if err != nil || got[0].Event != (placedV2{Order: "o", Cents: 5}) {
		t.Fatalf("decode of v1 after the upcaster = %+v, %v", got, err)
	}
}

// Decoding an old version costs about what decoding the current one does:
// the chain is resolved once, and each step is one call (and the boxing
// of its result).
func TestUpcastAllocations(t *testing.T) {
	reg := chainRegistry(t)
	e1, d1 := stored(t, "order.placed", 1, placedV1{Order: "o", Amount: 5})
	e3, d3 := stored(t, "order.placed", 3, placedV3{Order: "o", Cents: 5, Currency: "EUR"})
	buf := make([]platform.Envelope, 0, 1)
	allocs := func(e *platform.Envelope, data []byte) float64 {
		return testing.AllocsPerRun(200, func() {
			var err error
			if buf, err = reg.DecodeEnvelope(platform.Msgpack, e, data, buf[:0]); err != nil || len(buf) != 1 {
				t.Fatal(err)
			}
		})
	}
	old, current := allocs(e1, d1), allocs(e3, d3)
	t.Logf("allocations per decode: v1 upcast to v3 %.0f, v3 %.0f", old, current)
	if old > current+2 {
		t.Fatalf("decoding v1 through two upcasters allocates %.0f times, the current version %.0f: want at most 2 more (one per step)", old, current)
	}
}

// Registrations while other goroutines decode: the race detector checks
// the lock-free reads and the chain cache.
func TestUpcastConcurrentUse(t *testing.T) {
	reg := chainRegistry(t)
	e, data := stored(t, "order.placed", 1, placedV1{Order: "o", Amount: 5})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	wg.Go(func() {
		type otherV1 struct{ A int }
		type otherV2 struct{ A int }
		platform.MustRegister[otherV1](reg, "other", 1)
		platform.MustRegister[otherV2](reg, "other", 2)
		platform.MustUpcast(reg, func(e otherV1) otherV2 { return otherV2(e) })
	})
	for range 4 {
		wg.Go(func() {
			for range 500 {
				got, err := reg.DecodeEnvelope(platform.Msgpack, e, data, nil)
				if err == nil && (len(got) != 1 || got[0].Event != (placedV3{Order: "o", Cents: 5, Currency: "EUR"})) {
					err = errors.New("wrong upcast result")
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestAppendOldVersionRefused(t *testing.T) {
	reg := chainRegistry(t)
	platform.MustRegister[noteV1](reg, "order.note", 1)
	platform.MustRetire[noteV1](reg)
	store := platform.NewMemoryEventStore(platform.MemoryOptions{Registry: reg})
	s := platform.StreamID{Type: "order", ID: "1"}
	for _, c := range []struct {
		ev    any
		parts []string
	}{
		{placedV1{}, []string{`"order.placed" version 1`, `version 3`, "placedV3"}},
		{placedV2{}, []string{"version 2", "version 3"}},
		{noteV1{}, []string{"order.note", "retired"}},
	} {
		_, err := store.Append(t.Context(), s, platform.Any(), []platform.Envelope{{Event: c.ev}})
		mustFail(t, "Append of "+reflect.TypeOf(c.ev).Name(), err, platform.ErrInvalidArgument, c.parts...)
	}
	if _, err := store.Append(t.Context(), s, platform.NoStream(), []platform.Envelope{{Event: placedV3{}}}); err != nil {
		t.Fatalf("Append of the current version: %v", err)
	}
}
