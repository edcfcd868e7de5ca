package storetest

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lexigram/events/platform"
)

// The event types of the schema evolution subtest. They are registered
// in the harness's registry in two steps: first as a process that knows
// only their first versions, which appends them, then as the process of
// a later release, which reads them.
type (
	// upPlaced v1 → v2 (Amount renamed to Cents) → v3 (Currency added).
	upPlacedV1 struct {
		Order  string
		Amount int
	}
	upPlacedV2 struct {
		Order string
		Cents int
	}
	upPlacedV3 struct {
		Order    string
		Cents    int
		Currency string
	}
	// upNote v1 is retired in the later release.
	upNoteV1 struct{ Text string }
	// upBundle v1 is split into an upPlaced v2 (which goes on to v3) and
	// an upShipped v1.
	upBundleV1 struct {
		Order  string
		Amount int
		Via    string
	}
	upShippedV1 struct {
		Order string
		Via   string
	}
)

const (
	nameUpPlaced  = "storetest.up.placed"
	nameUpNote    = "storetest.up.note"
	nameUpBundle  = "storetest.up.bundle"
	nameUpShipped = "storetest.up.shipped"
)

func registerUpcastV1(t *testing.T, reg *platform.Registry) {
	t.Helper()
	for _, err := range []error{
		platform.Register[upPlacedV1](reg, nameUpPlaced, 1),
		platform.Register[upNoteV1](reg, nameUpNote, 1),
		platform.Register[upBundleV1](reg, nameUpBundle, 1),
	} {
		if err != nil {
			t.Fatalf("storetest: register the first versions: %v", err)
		}
	}
}

func registerUpcastLater(t *testing.T, reg *platform.Registry) {
	t.Helper()
	for _, err := range []error{
		platform.Register[upPlacedV2](reg, nameUpPlaced, 2),
		platform.Register[upPlacedV3](reg, nameUpPlaced, 3),
		platform.Register[upShippedV1](reg, nameUpShipped, 1),
		platform.Upcast(reg, func(e upPlacedV1) upPlacedV2 { return upPlacedV2{Order: e.Order, Cents: e.Amount} }),
		platform.Upcast(reg, func(e upPlacedV2) upPlacedV3 { return upPlacedV3{Order: e.Order, Cents: e.Cents, Currency: "EUR"} }),
		platform.Retire[upNoteV1](reg),
		platform.UpcastMany(reg, func(e upBundleV1) []any {
			return []any{upPlacedV2{Order: e.Order, Cents: e.Amount}, upShippedV1{Order: e.Order, Via: e.Via}}
		}),
	} {
		if err != nil {
			t.Fatalf("storetest: register the later versions: %v", err)
		}
	}
}

// upWant is one envelope a read of the upcast history must yield.
type upWant struct {
	stream  platform.StreamID
	version uint64
	event   any // nil: a retired event's marker
	part    int // of parts
	parts   int
	from    string // the stored type
}

func testUpcastOnRead(t *testing.T, h *harness) {
	registerUpcastV1(t, h.Registry)
	a, b := h.stream("upcast-a"), h.stream("upcast-b")
	stored := []platform.Envelope{
		{Event: upPlacedV1{Order: "o1", Amount: 100}},
		{Event: upNoteV1{Text: "gone"}},
		{Event: upBundleV1{Order: "o2", Amount: 250, Via: "post"}},
		{Event: upPlacedV1{Order: "o3", Amount: 7}, Metadata: map[string]string{"k": "v"}},
	}
	ids := withIDs(stored)
	resA := mustAppend(t, h.Store, a, platform.NoStream(), stored)
	storedB := []platform.Envelope{{Event: upNoteV1{Text: "only"}}}
	idB := withIDs(storedB)[0]
	resB := mustAppend(t, h.Store, b, platform.NoStream(), storedB)
	registerUpcastLater(t, h.Registry)
	if err := h.Registry.Check(); err != nil {
		t.Fatalf("Registry.Check() after registering the later versions: %v", err)
	}

	// Appending an old version is refused and names the current one.
	_, err := h.Store.Append(t.Context(), a, platform.Any(), []platform.Envelope{{Event: upPlacedV1{Order: "x"}}})
	checkErr(t, "Append of an old version", err, platform.ErrInvalidArgument)
	if !strings.Contains(err.Error(), "version 3") {
		t.Fatalf("Append of an old version: %q does not name the current version 3", err)
	}

	placed := func(order string, cents int) upPlacedV3 {
		return upPlacedV3{Order: order, Cents: cents, Currency: "EUR"}
	}
	wantA := []upWant{
		{a, 1, placed("o1", 100), 1, 1, nameUpPlaced},
		{a, 2, nil, 0, 0, nameUpNote},
		{a, 3, placed("o2", 250), 1, 2, nameUpBundle},
		{a, 3, upShippedV1{Order: "o2", Via: "post"}, 2, 2, nameUpBundle},
		{a, 4, placed("o3", 7), 1, 1, nameUpPlaced},
	}
	wantB := []upWant{{b, 1, nil, 0, 0, nameUpNote}}
	check := func(what string, got []platform.Envelope, want []upWant) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d envelopes, want %d: %v", what, len(got), len(want), describeUpcast(got))
		}
		for i, w := range want {
			g := got[i]
			first := resA.FirstPosition
			if w.stream == b {
				first = resB.FirstPosition
			}
			wantID := idB
			if w.stream == a {
				wantID = ids[w.version-1]
			}
			if w.part > 1 {
				wantID += "." + strconv.Itoa(w.part)
			}
			wantType, wantSchema := nameUpPlaced, 3
			switch w.event.(type) {
			case nil:
				wantType, wantSchema = nameUpNote, 1
			case upShippedV1:
				wantType, wantSchema = nameUpShipped, 1
			}
			switch {
			case g.Stream != w.stream || g.Version != w.version || g.Position != first+w.version-1:
				t.Fatalf("%s: envelope %d is %v version %d at %d, want %v version %d at %d", what, i, g.Stream, g.Version, g.Position, w.stream, w.version, first+w.version-1)
			case !reflect.DeepEqual(g.Event, w.event):
				t.Fatalf("%s: envelope %d (%v version %d) holds %#v, want %#v", what, i, g.Stream, g.Version, g.Event, w.event)
			case g.Retired() != (w.event == nil):
				t.Fatalf("%s: envelope %d (%v version %d): Retired() = %v, want %v", what, i, g.Stream, g.Version, g.Retired(), w.event == nil)
			case g.Type != wantType || g.SchemaVersion != wantSchema:
				t.Fatalf("%s: envelope %d (%v version %d) is %s version %d, want %s version %d", what, i, g.Stream, g.Version, g.Type, g.SchemaVersion, wantType, wantSchema)
			case g.Origin.Type != w.from || g.Origin.SchemaVersion != 1 || g.Origin.Part != w.part || g.Origin.Parts != w.parts:
				t.Fatalf("%s: envelope %d (%v version %d) has origin %+v, want %s version 1, part %d of %d", what, i, g.Stream, g.Version, g.Origin, w.from, w.part, w.parts)
			case g.ID == "" || g.ID != wantID:
				t.Fatalf("%s: envelope %d (%v version %d) has ID %q, want %q", what, i, g.Stream, g.Version, g.ID, wantID)
			case g.EndsStored() != (w.part == w.parts):
				t.Fatalf("%s: envelope %d: EndsStored() = %v", what, i, g.EndsStored())
			}
		}
		if got[len(want)-1].Stream == a && got[len(want)-1].Metadata["k"] != "v" {
			t.Fatalf("%s: the last event lost its metadata: %v", what, got[len(want)-1].Metadata)
		}
	}

	check("Read", read(t, h.Store, a, platform.Revision{}), wantA)
	check("Read after the retired version", read(t, h.Store, a, platform.Revision{Version: 2}), wantA[2:])
	check("Read after the split version", read(t, h.Store, a, platform.Revision{Version: 3, Position: resA.FirstPosition + 2}), wantA[4:])
	check("ReadAll", readAll(t, h.Store, resA.FirstPosition-1), append(append([]upWant(nil), wantA...), wantB...))
	check("ReadAll after the retired event", readAll(t, h.Store, resA.FirstPosition+1), append(append([]upWant(nil), wantA[2:]...), wantB...))

	if sub, ok := h.Store.(subscriber); ok {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		var got []platform.Envelope
		for e, err := range sub.Subscribe(ctx, resA.FirstPosition-1) {
			if err != nil {
				t.Fatalf("Subscribe over the upcast history: %v after %v", err, describeUpcast(got))
			}
			if got = append(got, e); len(got) == len(wantA)+len(wantB) {
				break
			}
		}
		check("Subscribe", got, append(append([]upWant(nil), wantA...), wantB...))
	}

	testUndecodableOnRead(t, h)
}

// testUndecodableOnRead checks that a read goes on past an event that
// does not decode when its caller goes on: a fourth version of
// storetest.up.placed, registered without an upcaster from the third,
// leaves the events stored as the third unreadable.
func testUndecodableOnRead(t *testing.T, h *harness) {
	c := h.stream("upcast-c")
	before := mustAppend(t, h.Store, c, platform.NoStream(), []platform.Envelope{{Event: upPlacedV3{Order: "before"}}})
	if err := platform.Register[upPlacedV4](h.Registry, nameUpPlaced, 4); err != nil {
		t.Fatalf("register %s version 4: %v", nameUpPlaced, err)
	}
	if err := h.Registry.Check(); err == nil || !strings.Contains(err.Error(), nameUpPlaced+`" version 3`) {
		t.Fatalf("Registry.Check() = %v, want an error naming %s version 3, which has no upcaster to 4", err, nameUpPlaced)
	}
	after := mustAppend(t, h.Store, c, platform.Exact(1), []platform.Envelope{{Event: upPlacedV4{Order: "after"}}})
	for name, seq := range map[string]iter.Seq2[platform.Envelope, error]{
		"Read":    h.Store.Read(t.Context(), c, platform.Revision{}),
		"ReadAll": h.Store.ReadAll(t.Context(), before.FirstPosition-1),
	} {
		var got []platform.Envelope
		var errs []error
		for e, err := range seq {
			if err != nil {
				errs = append(errs, err)
				continue
			}
			got = append(got, e)
		}
		if len(errs) != 1 {
			t.Fatalf("%s past an undecodable event: errors %v, want one", name, errs)
		}
		var de *platform.DecodeError
		if !errors.As(errs[0], &de) || !errors.Is(errs[0], platform.ErrUnknownEventType) {
			t.Fatalf("%s: error %v (%T) is not a *platform.DecodeError matching ErrUnknownEventType", name, errs[0], errs[0])
		}
		msg := errs[0].Error()
		if de.Position != before.FirstPosition || de.Stream != c || de.Version != 1 || de.Type != nameUpPlaced || de.SchemaVersion != 3 ||
			!strings.Contains(msg, nameUpPlaced) || !strings.Contains(msg, "version 3") ||
			!strings.Contains(msg, "position "+strconv.FormatUint(before.FirstPosition, 10)) || !strings.Contains(msg, "platform.Upcast") {
			t.Fatalf("%s: the error %+v, %q does not name the stream, type, version, position and the fix", name, de, msg)
		}
		if len(got) != 1 || got[0].Position != after.FirstPosition || !reflect.DeepEqual(got[0].Event, upPlacedV4{Order: "after"}) {
			t.Fatalf("%s past the undecodable event yields %v, want the event after it at %d", name, describeUpcast(got), after.FirstPosition)
		}
	}
}

// upPlacedV4 breaks the chain of storetest.up.placed: no upcaster from 3.
type upPlacedV4 struct{ Order string }

func describeUpcast(evs []platform.Envelope) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "[%v v%d @%d %s/%d %+v origin %+v] ", e.Stream, e.Version, e.Position, e.Type, e.SchemaVersion, e.Event, e.Origin)
	}
	return b.String()
}
