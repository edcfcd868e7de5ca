package storetest

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lexigram/events/platform"
)

// Harness is one event store under test, as newStore returns it for one
// subtest.
type Harness struct {
	// Store is the store under test. It must hold no events, and nothing
	// but the suite may write to it during the subtest.
	Store platform.EventStore

	// Registry is the registry Store decodes events with. Return a fresh
	// one per call: the suite registers its event types in it.
	Registry *platform.Registry

	// MaxEventSize is the largest event, in bytes, the store accepts; the
	// suite appends one that is larger and expects ErrInvalidArgument, and
	// one half as large and expects it to round-trip. 0 means 1 MiB, the
	// NATS default max_payload and the default of the in-memory store.
	MaxEventSize int

	// Rounds is how many rounds the concurrency subtest runs, Racers how
	// many goroutines race in each. 0 means 200 rounds of 50 racers. Lower
	// Rounds only if a slow store (a three-node cluster) needs it.
	Rounds int
	Racers int

	// Reopen, if set, returns a second store over the same data as Store
	// that decodes with reg instead of Registry. The subtest reading events
	// of unknown types needs it and is skipped without it.
	Reopen func(t *testing.T, reg *platform.Registry) platform.EventStore
}

// harness is a Harness with its defaults filled in and the suite's event
// types registered.
type harness struct {
	Harness
	aggType string // unique to the subtest
}

func (h *harness) stream(id string) platform.StreamID {
	return platform.StreamID{Type: h.aggType, ID: id}
}

// TestEventStore runs the event store conformance suite. newStore is
// called once per subtest and must return an empty store with a fresh
// registry (see the package documentation).
func TestEventStore(t *testing.T, newStore func(t *testing.T) Harness) {
	t.Helper()
	tests := []struct {
		name string
		f    func(t *testing.T, h *harness)
	}{
		{"RoundTrip", testRoundTrip},
		{"HeaderTextRoundTrip", testHeaderText},
		{"ContiguousVersions", testContiguousVersions},
		{"ExpectedVersions", testExpectedVersions},
		{"FailedAppendWritesNothing", testFailedAppendWritesNothing},
		{"MultiEventAtomicity", testMultiEventAtomicity},
		{"BadInput", testBadInput},
		{"LargeEvent", testLargeEvent},
		{"HostileAggregateIDs", testHostileIDs},
		{"ReadFromRevision", testReadFromRevision},
		{"ReadAll", testReadAll},
		{"ReadAllStopsAtHead", testReadAllStopsAtHead},
		{"ReadAllSkipsHoles", testReadAllSkipsHoles},
		{"SubscribeCatchesUpThenFollows", testSubscribe},
		{"Where", testWhere},
		{"Delete", testDelete},
		{"Truncate", testTruncate},
		{"TruncateThroughLast", testTruncateThroughLast},
		{"ConcurrentAppends", testConcurrentAppends},
		{"CancelledContext", testCancelledContext},
		{"UnknownTypeOnRead", testUnknownTypeOnRead},
		{"HashChain", testChain},
		{"UpcastOnRead", testUpcastOnRead},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.f(t, setup(t, newStore))
		})
	}
}

func setup(t *testing.T, newStore func(t *testing.T) Harness) *harness {
	t.Helper()
	h := newStore(t)
	if h.Store == nil || h.Registry == nil {
		t.Fatalf("storetest: newStore returned a Harness without Store or Registry")
	}
	if err := registerTypes(h.Registry); err != nil {
		t.Fatalf("storetest: registering the suite's event types: %v (newStore must return a fresh Registry per call)", err)
	}
	if h.MaxEventSize == 0 {
		h.MaxEventSize = 1 << 20
	}
	if h.Rounds == 0 {
		h.Rounds = 200
	}
	if h.Racers == 0 {
		h.Racers = 50
	}
	return &harness{Harness: h, aggType: uniqueType("st")}
}

func testRoundTrip(t *testing.T, h *harness) {
	ctx := platform.WithCausationID(platform.WithCorrelationID(t.Context(), "corr-ctx"), "cause-ctx")
	stream := h.stream("round-trip")
	explicitID := platform.NewEventID()
	in := []platform.Envelope{
		{
			Event:    opened{Name: "first", Tags: []string{"a", "b c"}, Count: 3},
			Metadata: map[string]string{"userId": "u-1", "trace-ID": "t 1: ü", "x_y": "v", "UPPER": "V"},
		},
		{
			ID:            explicitID,
			Event:         renamed{From: "first", To: "second"},
			CorrelationID: "corr-explicit",
			CausationID:   "cause-explicit",
		},
		{Event: noted{Text: "ünïcødé", Data: []byte{0, 1, 2, 0xff}}},
	}
	wantMeta := maps.Clone(in[0].Metadata)
	start := time.Now()
	res, err := h.Store.Append(ctx, stream, platform.NoStream(), in)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if res.FirstVersion != 1 || res.LastVersion != 3 {
		t.Fatalf("AppendResult versions %d..%d, want 1..3", res.FirstVersion, res.LastVersion)
	}
	if res.Revision() != (platform.Revision{Version: res.LastVersion, Position: res.LastPosition}) {
		t.Fatalf("AppendResult.Revision() = %+v for %+v", res.Revision(), res)
	}

	got := read(t, h.Store, stream, platform.Revision{})
	if len(got) != 3 {
		t.Fatalf("Read: %d events, want 3", len(got))
	}
	want := []struct {
		typ         string
		schema      int
		corr, cause string
		meta        map[string]string
	}{
		{nameOpened, 1, "corr-ctx", "cause-ctx", wantMeta},
		{nameRenamed, 2, "corr-explicit", "cause-explicit", nil},
		{nameNoted, 3, "corr-ctx", "cause-ctx", nil},
	}
	seen := map[string]bool{}
	for i, e := range got {
		what := fmt.Sprintf("Read event %d", i)
		if e.ID == "" || seen[e.ID] {
			t.Fatalf("%s: ID %q is empty or repeated", what, e.ID)
		}
		seen[e.ID] = true
		w := want[i]
		switch {
		case e.Type != w.typ || e.SchemaVersion != w.schema:
			t.Fatalf("%s: Type %q schema %d, want %q schema %d", what, e.Type, e.SchemaVersion, w.typ, w.schema)
		case e.Stream != stream:
			t.Fatalf("%s: Stream %v, want %v", what, e.Stream, stream)
		case e.Version != uint64(i+1):
			t.Fatalf("%s: Version %d, want %d", what, e.Version, i+1)
		case e.Position < res.FirstPosition || e.Position > res.LastPosition:
			t.Fatalf("%s: Position %d outside the AppendResult's %d..%d", what, e.Position, res.FirstPosition, res.LastPosition)
		case e.CorrelationID != w.corr || e.CausationID != w.cause:
			t.Fatalf("%s: correlation %q causation %q, want %q and %q", what, e.CorrelationID, e.CausationID, w.corr, w.cause)
		case !maps.Equal(e.Metadata, w.meta):
			t.Fatalf("%s: Metadata %v, want %v", what, e.Metadata, w.meta)
		}
		if !reflect.DeepEqual(e.Event, in[i].Event) {
			t.Fatalf("%s: Event %#v, want %#v", what, e.Event, in[i].Event)
		}
		checkTime(t, what, e.Time, start)
	}
	if got[1].ID != explicitID {
		t.Fatalf("the caller's event ID %q came back as %q", explicitID, got[1].ID)
	}
	if got[0].Position != res.FirstPosition || got[2].Position != res.LastPosition {
		t.Fatalf("positions %d..%d, AppendResult says %d..%d", got[0].Position, got[2].Position, res.FirstPosition, res.LastPosition)
	}
	checkPositions(t, "Read", got)

	// The store keeps its own copies: changing what was appended or read
	// changes nothing stored.
	in[0].Metadata["userId"] = "changed"
	got[0].Metadata["userId"] = "changed"
	again := read(t, h.Store, stream, platform.Revision{})
	if again[0].Metadata["userId"] != "u-1" {
		t.Fatalf("changing a Metadata map after Append or Read changed the stored event: %v", again[0].Metadata)
	}
	got[0].Metadata["userId"] = "u-1"
	sameEnvelopes(t, "Read twice", again, got)

	// ReadAll yields the same envelopes.
	sameEnvelopes(t, "ReadAll vs Read", readAll(t, h.Store, 0), got)

	// Without IDs in the context or the envelope, there are none.
	res2 := mustAppend(t, h.Store, stream, platform.Exact(3), events("plain", 1))
	plain := read(t, h.Store, stream, platform.Revision{Version: 3})
	if len(plain) != 1 || plain[0].CorrelationID != "" || plain[0].CausationID != "" || len(plain[0].Metadata) != 0 {
		t.Fatalf("an event appended without correlation, causation or metadata reads back as %+v", plain)
	}
	if plain[0].Position != res2.FirstPosition || plain[0].Position <= res.LastPosition {
		t.Fatalf("second append at position %d (AppendResult %+v), after %d", plain[0].Position, res2, res.LastPosition)
	}
}

// testHeaderText checks that every caller-set text the envelope
// validation accepts comes back exactly: a store that keeps these in
// message headers must not trim or fold them.
func testHeaderText(t *testing.T, h *harness) {
	a := h.stream("text")
	in := []platform.Envelope{{
		Event:         opened{Name: "text", Tags: []string{"t"}},
		CorrelationID: "corr: ü",
		CausationID:   "cause  inside",
		Metadata: map[string]string{
			"empty": "", "inner": "two  spaces", "colon": "a: b", "unicode": "ünï 日本",
			"json": `{"k": "v"}`, "long": strings.Repeat("v", 256), "Key": "upper", "key": "lower",
		},
	}}
	want := maps.Clone(in[0].Metadata)
	mustAppend(t, h.Store, a, platform.NoStream(), in)
	got := read(t, h.Store, a, platform.Revision{})
	if len(got) != 1 {
		t.Fatalf("Read: %d events, want 1", len(got))
	}
	e := got[0]
	if e.CorrelationID != "corr: ü" || e.CausationID != "cause  inside" {
		t.Fatalf("correlation %q causation %q, want %q and %q", e.CorrelationID, e.CausationID, "corr: ü", "cause  inside")
	}
	for k, v := range want {
		if gv, ok := e.Metadata[k]; !ok || gv != v {
			t.Fatalf("Metadata[%q] = %q (present: %v), want %q", k, gv, ok, v)
		}
	}
	if len(e.Metadata) != len(want) {
		t.Fatalf("Metadata %v, want %v", e.Metadata, want)
	}
}

func testContiguousVersions(t *testing.T, h *harness) {
	a, b := h.stream("a"), h.stream("b")
	var all []platform.Envelope
	var results []platform.AppendResult
	var version, lastPos uint64
	for i, n := range []int{1, 3, 2, 5, 1} {
		evs := events(fmt.Sprintf("batch%d", i), n)
		withIDs(evs)
		res := mustAppend(t, h.Store, a, platform.Exact(version), evs)
		if res.FirstVersion != version+1 || res.LastVersion != version+uint64(n) {
			t.Fatalf("append %d of %d events after version %d: versions %d..%d", i, n, version, res.FirstVersion, res.LastVersion)
		}
		if res.FirstPosition <= lastPos || res.LastPosition < res.FirstPosition {
			t.Fatalf("append %d: positions %d..%d after position %d", i, res.FirstPosition, res.LastPosition, lastPos)
		}
		version, lastPos = res.LastVersion, res.LastPosition
		results = append(results, res)
		all = append(all, evs...)
		// Another aggregate in between: versions are per aggregate,
		// positions global.
		other := mustAppend(t, h.Store, b, platform.Any(), events("other", 1))
		if other.FirstPosition <= lastPos {
			t.Fatalf("append to %v at position %d, not after %d", b, other.FirstPosition, lastPos)
		}
		lastPos = other.LastPosition
	}
	got := read(t, h.Store, a, platform.Revision{})
	if vs := versionsOf(got); !slices.Equal(vs, seqVersions(1, 12)) {
		t.Fatalf("versions %v, want 1..12", vs)
	}
	if !slices.Equal(idsOf(got), idsOf(all)) {
		t.Fatalf("event IDs %v, want %v", idsOf(got), idsOf(all))
	}
	checkPositions(t, "Read", got)
	for _, res := range results {
		first, last := got[res.FirstVersion-1], got[res.LastVersion-1]
		if first.Position != res.FirstPosition || last.Position != res.LastPosition {
			t.Fatalf("AppendResult %+v, but Read has versions %d and %d at positions %d and %d",
				res, first.Version, last.Version, first.Position, last.Position)
		}
	}
	if bs := read(t, h.Store, b, platform.Revision{}); !slices.Equal(versionsOf(bs), seqVersions(1, 5)) {
		t.Fatalf("versions of %v: %v, want 1..5", b, versionsOf(bs))
	}
}

func testExpectedVersions(t *testing.T, h *harness) {
	ctx := t.Context()
	a := h.stream("a")
	one := func() []platform.Envelope { return events("x", 1) }

	res := mustAppend(t, h.Store, a, platform.NoStream(), one())
	if res.FirstVersion != 1 {
		t.Fatalf("NoStream on a new aggregate: version %d, want 1", res.FirstVersion)
	}
	_, err := h.Store.Append(ctx, a, platform.NoStream(), one())
	checkConflict(t, "NoStream on an existing aggregate", err, a, platform.NoStream(), 1)

	res = mustAppend(t, h.Store, a, platform.Exact(1), one())
	if res.FirstVersion != 2 {
		t.Fatalf("Exact(1): version %d, want 2", res.FirstVersion)
	}
	_, err = h.Store.Append(ctx, a, platform.Exact(1), one())
	checkConflict(t, "Exact too low", err, a, platform.Exact(1), 2)
	_, err = h.Store.Append(ctx, a, platform.Exact(5), one())
	checkConflict(t, "Exact too high", err, a, platform.Exact(5), 2)
	_, err = h.Store.Append(ctx, a, platform.Exact(3), one())
	checkConflict(t, "Exact one too high", err, a, platform.Exact(3), 2)
	_, err = h.Store.Append(ctx, a, platform.Exact(0), one())
	checkConflict(t, "Exact(0) on an existing aggregate", err, a, platform.NoStream(), 2)

	if platform.Exact(0) != platform.NoStream() {
		t.Fatalf("Exact(0) = %v, want NoStream", platform.Exact(0))
	}
	b := h.stream("b")
	if res := mustAppend(t, h.Store, b, platform.Exact(0), one()); res.FirstVersion != 1 {
		t.Fatalf("Exact(0) on a new aggregate: version %d, want 1", res.FirstVersion)
	}
	never := h.stream("never")
	_, err = h.Store.Append(ctx, never, platform.Exact(1), one())
	checkConflict(t, "Exact(1) on a new aggregate", err, never, platform.Exact(1), 0)

	// ExactRevision with the revision the last append returned, then
	// with that revision once it is stale.
	rev := res.Revision()
	res = mustAppend(t, h.Store, a, platform.ExactRevision(rev), one())
	if res.FirstVersion != 3 {
		t.Fatalf("ExactRevision(%+v): version %d, want 3", rev, res.FirstVersion)
	}
	_, err = h.Store.Append(ctx, a, platform.ExactRevision(rev), one())
	checkConflict(t, "ExactRevision with a stale revision", err, a, platform.ExactRevision(rev), 3)
	rev = res.Revision()
	if res = mustAppend(t, h.Store, a, platform.ExactRevision(rev), one()); res.FirstVersion != 4 {
		t.Fatalf("ExactRevision(%+v): version %d, want 4", rev, res.FirstVersion)
	}
	// A revision read back works as well as one from an AppendResult.
	evs := read(t, h.Store, a, platform.Revision{})
	last := evs[len(evs)-1].Revision()
	if res = mustAppend(t, h.Store, a, platform.ExactRevision(last), one()); res.FirstVersion != 5 {
		t.Fatalf("ExactRevision(%+v) from Read: version %d, want 5", last, res.FirstVersion)
	}

	c := h.stream("c")
	if res := mustAppend(t, h.Store, c, platform.Any(), one()); res.FirstVersion != 1 {
		t.Fatalf("Any on a new aggregate: version %d, want 1", res.FirstVersion)
	}
	if res := mustAppend(t, h.Store, a, platform.Any(), events("y", 2)); res.FirstVersion != 6 || res.LastVersion != 7 {
		t.Fatalf("Any on an existing aggregate: versions %d..%d, want 6..7", res.FirstVersion, res.LastVersion)
	}
	if vs := versionsOf(read(t, h.Store, a, platform.Revision{})); !slices.Equal(vs, seqVersions(1, 7)) {
		t.Fatalf("versions after the conflicts: %v, want 1..7", vs)
	}
}

func testFailedAppendWritesNothing(t *testing.T, h *harness) {
	ctx := t.Context()
	a := h.stream("a")
	mustAppend(t, h.Store, a, platform.NoStream(), events("base", 3))
	before, beforeAll := read(t, h.Store, a, platform.Revision{}), readAll(t, h.Store, 0)

	bad := events("bad", 3)
	bad[1].Event = unregistered{X: 1}
	tooBig := events("big", 2)
	tooBig[1].Event = noted{Data: make([]byte, h.MaxEventSize+1)}
	failures := []struct {
		name string
		exp  platform.ExpectedVersion
		evs  []platform.Envelope
	}{
		{"NoStream", platform.NoStream(), events("f", 1)},
		{"stale Exact", platform.Exact(1), events("f", 2)},
		{"Exact too high", platform.Exact(9), events("f", 1)},
		{"10 events at a wrong version", platform.Exact(2), events("f", 10)},
		{"an unregistered event among good ones", platform.Exact(3), bad},
		{"an oversized event after a good one", platform.Exact(3), tooBig},
	}
	for _, f := range failures {
		if _, err := h.Store.Append(ctx, a, f.exp, f.evs); err == nil {
			t.Fatalf("%s: Append succeeded, want an error", f.name)
		}
		sameEnvelopes(t, f.name+": Read after the failed append", read(t, h.Store, a, platform.Revision{}), before)
		sameEnvelopes(t, f.name+": ReadAll after the failed append", readAll(t, h.Store, 0), beforeAll)
	}
	if res := mustAppend(t, h.Store, a, platform.Exact(3), events("after", 1)); res.FirstVersion != 4 {
		t.Fatalf("append after the failures: version %d, want 4", res.FirstVersion)
	}
}

func testMultiEventAtomicity(t *testing.T, h *harness) {
	ctx := t.Context()
	a := h.stream("a")
	evs := events("ten", 10)
	ids := withIDs(evs)
	res := mustAppend(t, h.Store, a, platform.NoStream(), evs)
	if res.FirstVersion != 1 || res.LastVersion != 10 {
		t.Fatalf("10-event append: versions %d..%d, want 1..10", res.FirstVersion, res.LastVersion)
	}
	got := read(t, h.Store, a, platform.Revision{})
	if !slices.Equal(versionsOf(got), seqVersions(1, 10)) || !slices.Equal(idsOf(got), ids) {
		t.Fatalf("10-event append reads back as versions %v IDs %v", versionsOf(got), idsOf(got))
	}
	checkPositions(t, "Read", got)
	if got[0].Position != res.FirstPosition || got[9].Position != res.LastPosition {
		t.Fatalf("positions %d..%d, AppendResult %+v", got[0].Position, got[9].Position, res)
	}
	all := readAll(t, h.Store, 0)
	if !slices.Equal(idsOf(all), ids) {
		t.Fatalf("ReadAll: %v, want the 10 events %v", idsOf(all), ids)
	}

	_, err := h.Store.Append(ctx, a, platform.Exact(5), events("wrong", 10))
	checkConflict(t, "10 events at a wrong version", err, a, platform.Exact(5), 10)
	sameEnvelopes(t, "Read after the failed 10-event append", read(t, h.Store, a, platform.Revision{}), got)
	sameEnvelopes(t, "ReadAll after the failed 10-event append", readAll(t, h.Store, 0), all)

	// Another 10-event batch lands whole after the first.
	res = mustAppend(t, h.Store, a, platform.Exact(10), events("more", 10))
	if res.FirstVersion != 11 || res.LastVersion != 20 {
		t.Fatalf("second 10-event append: versions %d..%d, want 11..20", res.FirstVersion, res.LastVersion)
	}
	if vs := versionsOf(read(t, h.Store, a, platform.Revision{})); !slices.Equal(vs, seqVersions(1, 20)) {
		t.Fatalf("versions %v, want 1..20", vs)
	}
}

func testBadInput(t *testing.T, h *harness) {
	ctx := t.Context()
	good := h.stream("good")
	one := func() []platform.Envelope { return events("x", 1) }
	withEvent := func(ev any) []platform.Envelope { return []platform.Envelope{{Event: ev}} }
	with := func(f func(e *platform.Envelope)) []platform.Envelope {
		evs := one()
		f(&evs[0])
		return evs
	}
	tooMany := events("many", platform.MaxAppendEvents+1)
	cases := []struct {
		name   string
		stream platform.StreamID
		evs    []platform.Envelope
		want   error
	}{
		{"no events", good, nil, platform.ErrInvalidArgument},
		{"empty event slice", good, []platform.Envelope{}, platform.ErrInvalidArgument},
		{"MaxAppendEvents+1 events", good, tooMany, platform.ErrInvalidArgument},
		{"unregistered event type", good, withEvent(unregistered{X: 1}), platform.ErrUnknownEventType},
		{"pointer to a registered event", good, withEvent(&opened{Name: "p"}), platform.ErrInvalidArgument},
		{"empty aggregate ID", platform.StreamID{Type: h.aggType}, one(), platform.ErrInvalidArgument},
		{"over-long aggregate ID", h.stream(strings.Repeat("x", platform.MaxAggregateIDLen+1)), one(), platform.ErrInvalidArgument},
		{"aggregate type with a dot", platform.StreamID{Type: "a.b", ID: "x"}, one(), platform.ErrInvalidArgument},
		{"empty aggregate type", platform.StreamID{ID: "x"}, one(), platform.ErrInvalidArgument},
		{"aggregate type with a space", platform.StreamID{Type: "x y", ID: "x"}, one(), platform.ErrInvalidArgument},
		{"aggregate type with a wildcard", platform.StreamID{Type: "x*", ID: "x"}, one(), platform.ErrInvalidArgument},
		{"over-long aggregate type", platform.StreamID{Type: strings.Repeat("t", platform.MaxAggregateTypeLen+1), ID: "x"}, one(), platform.ErrInvalidArgument},
		{"event bigger than the store's limit", good, withEvent(noted{Data: make([]byte, h.MaxEventSize+1)}), platform.ErrInvalidArgument},
		{"metadata key with a dot", good, with(func(e *platform.Envelope) { e.Metadata = map[string]string{"a.b": "v"} }), platform.ErrInvalidArgument},
		{"metadata key with a colon", good, with(func(e *platform.Envelope) { e.Metadata = map[string]string{"a:b": "v"} }), platform.ErrInvalidArgument},
		{"empty metadata key", good, with(func(e *platform.Envelope) { e.Metadata = map[string]string{"": "v"} }), platform.ErrInvalidArgument},
		{"metadata value with a newline", good, with(func(e *platform.Envelope) { e.Metadata = map[string]string{"k": "a\r\nb"} }), platform.ErrInvalidArgument},
		{"metadata value with surrounding spaces", good, with(func(e *platform.Envelope) { e.Metadata = map[string]string{"k": " padded "} }), platform.ErrInvalidArgument},
		{"correlation ID with a leading space", good, with(func(e *platform.Envelope) { e.CorrelationID = " c" }), platform.ErrInvalidArgument},
		{"event ID with a newline", good, with(func(e *platform.Envelope) { e.ID = "id\nX-Evil: 1" }), platform.ErrInvalidArgument},
		{"correlation ID with a newline", good, with(func(e *platform.Envelope) { e.CorrelationID = "c\r\nX-Evil: 1" }), platform.ErrInvalidArgument},
		{"causation ID with a newline", good, with(func(e *platform.Envelope) { e.CausationID = "c\nX-Evil: 1" }), platform.ErrInvalidArgument},
		{"over-long correlation ID", good, with(func(e *platform.Envelope) { e.CorrelationID = strings.Repeat("c", 64<<10) }), platform.ErrInvalidArgument},
		{"bad event in the middle", good, func() []platform.Envelope {
			evs := events("mid", 5)
			evs[2].Event = unregistered{}
			return evs
		}(), platform.ErrUnknownEventType},
	}
	// Each rejected append runs as its own subtest, so one store bug does
	// not hide the others.
	reject := func(name string, ctx context.Context, stream platform.StreamID, evs []platform.Envelope, want ...error) {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			before := readAll(t, h.Store, 0)
			var err error
			noPanic(t, name, func() { _, err = h.Store.Append(ctx, stream, platform.Any(), evs) })
			if len(want) == 1 {
				checkErr(t, name, err, want[0])
			} else if !errors.Is(err, want[0]) && !errors.Is(err, want[1]) {
				t.Fatalf("%s: %v, want an error matching %v or %v", name, err, want[0], want[1])
			}
			sameEnvelopes(t, name+": ReadAll after the rejected append", readAll(t, h.Store, 0), before)
		})
	}
	for _, c := range cases {
		reject(c.name, ctx, c.stream, c.evs, c.want)
	}
	reject("nil event", ctx, good, withEvent(nil), platform.ErrInvalidArgument, platform.ErrUnknownEventType)
	// The same checks apply to IDs the context carries.
	reject("correlation ID with a newline from the context",
		platform.WithCorrelationID(ctx, "corr\nX-Evil: 1"), good, one(), platform.ErrInvalidArgument)
	reject("causation ID with a newline from the context",
		platform.WithCausationID(ctx, "cause\r\nX-Evil: 1"), good, one(), platform.ErrInvalidArgument)

	// Other methods reject invalid streams too.
	for _, s := range []platform.StreamID{{Type: h.aggType}, {Type: "a.b", ID: "x"}} {
		_, err := collect(h.Store.Read(ctx, s, platform.Revision{}))
		checkErr(t, fmt.Sprintf("Read(%v)", s), err, platform.ErrInvalidArgument)
		checkErr(t, fmt.Sprintf("Delete(%v)", s), h.Store.Delete(ctx, s), platform.ErrInvalidArgument)
		checkErr(t, fmt.Sprintf("Truncate(%v)", s), h.Store.Truncate(ctx, s, platform.Revision{Version: 1}), platform.ErrInvalidArgument)
	}

	good = h.stream("limits")
	// Nothing was written, so NoStream still works, and the limits are
	// inclusive: MaxAppendEvents events and a MaxAggregateIDLen-byte ID
	// are fine.
	mustAppend(t, h.Store, good, platform.NoStream(), events("max", platform.MaxAppendEvents))
	mustAppend(t, h.Store, h.stream(strings.Repeat("x", platform.MaxAggregateIDLen)), platform.NoStream(), one())
	long := platform.StreamID{Type: strings.Repeat("t", platform.MaxAggregateTypeLen), ID: "x-" + platform.NewEventID()}
	mustAppend(t, h.Store, long, platform.NoStream(), one())
	mustAppend(t, h.Store, good, platform.Exact(platform.MaxAppendEvents), with(func(e *platform.Envelope) {
		e.Metadata = map[string]string{strings.Repeat("k", 64): strings.Repeat("v", 256), "Aa-_9": "printable: ~!@#$%^&*()"}
		e.CorrelationID = strings.Repeat("c", 256)
	}))
	if got := read(t, h.Store, good, platform.Revision{Version: platform.MaxAppendEvents}); len(got) != 1 ||
		got[0].Metadata["Aa-_9"] != "printable: ~!@#$%^&*()" || got[0].CorrelationID != strings.Repeat("c", 256) {
		t.Fatalf("event with long metadata and correlation ID reads back as %+v", got)
	}
}

func testLargeEvent(t *testing.T, h *harness) {
	a := h.stream("large")
	data := make([]byte, h.MaxEventSize/2)
	for i := range data {
		data[i] = byte(i * 7)
	}
	mustAppend(t, h.Store, a, platform.NoStream(), []platform.Envelope{{Event: noted{Text: "half", Data: data}}})
	got := read(t, h.Store, a, platform.Revision{})
	if len(got) != 1 {
		t.Fatalf("Read: %d events, want 1", len(got))
	}
	if n, ok := got[0].Event.(noted); !ok || n.Text != "half" || string(n.Data) != string(data) {
		t.Fatalf("an event of %d bytes (half the limit) did not round-trip", len(data))
	}
	_, err := h.Store.Append(t.Context(), a, platform.Exact(1), []platform.Envelope{{Event: noted{Data: make([]byte, h.MaxEventSize+1)}}})
	checkErr(t, "event above the limit", err, platform.ErrInvalidArgument)
	if !strings.Contains(err.Error(), strconv.Itoa(h.MaxEventSize)) {
		t.Fatalf("error %q does not name the limit %d", err, h.MaxEventSize)
	}
}

// hostileIDs are aggregate IDs that are awkward for subjects, keys,
// escaping and headers. Pairs like "=41" and "A" must stay separate.
func hostileIDs() []string {
	return []string{
		"a.b", "a*", "a>", "a.>", "*", ">", "a b", "ünïcødé", "bob@example.com",
		"=41", "A", "a=2Eb", "a", "=", "==", "=3D", "a..b", ".a", "a.", " ", "\t", "a\nb", "nul\x00", "\xff\xfe",
		"$JS.API", "_INBOX.x", "a/b", `a\b`, "%2E", "a:b", "\u00a0", "日本語",
		strings.Repeat("x", platform.MaxAggregateIDLen),
		strings.Repeat(".", platform.MaxAggregateIDLen),
		strings.Repeat("é", platform.MaxAggregateIDLen/2),
		strings.Repeat("=", platform.MaxAggregateIDLen),
	}
}

func testHostileIDs(t *testing.T, h *harness) {
	ids := hostileIDs()
	eventIDs := map[string][]string{} // aggregate ID -> its event IDs
	owner := map[string]string{}      // event ID -> aggregate ID
	for i, id := range ids {
		evs := events(fmt.Sprintf("h%d", i), 2+i%2)
		eids := withIDs(evs)
		// NoStream: an ID that collided with an earlier one would conflict.
		mustAppend(t, h.Store, h.stream(id), platform.NoStream(), evs)
		eventIDs[id] = eids
		for _, e := range eids {
			owner[e] = id
		}
	}
	check := func(when string, gone map[string]bool) {
		t.Helper()
		for _, id := range ids {
			got := read(t, h.Store, h.stream(id), platform.Revision{})
			want := eventIDs[id]
			if gone[id] {
				want = nil
			}
			if !slices.Equal(idsOf(got), want) {
				t.Fatalf("%s: Read(%q) yields events %v, want %v", when, id, idsOf(got), want)
			}
			for _, e := range got {
				if e.Stream != h.stream(id) {
					t.Fatalf("%s: Read(%q) yields an event of stream %v", when, id, e.Stream)
				}
			}
		}
		for _, e := range readAll(t, h.Store, 0) {
			if id, ok := owner[e.ID]; !ok || gone[id] || e.Stream != h.stream(id) {
				t.Fatalf("%s: ReadAll yields event %s of %v, appended to %q (deleted: %v)", when, e.ID, e.Stream, id, gone[id])
			}
		}
	}
	check("after appending", nil)

	// Deleting and truncating IDs that look like wildcards touches only them.
	gone := map[string]bool{}
	for _, id := range []string{"*", ">", "a.>", "a*", "=", strings.Repeat(".", platform.MaxAggregateIDLen)} {
		if err := h.Store.Delete(t.Context(), h.stream(id)); err != nil {
			t.Fatalf("Delete(%q): %v", id, err)
		}
		gone[id] = true
	}
	check("after deleting the wildcard-like IDs", gone)
	for _, id := range []string{"a", "A", "a.b", "=41", "a=2Eb"} {
		if err := h.Store.Truncate(t.Context(), h.stream(id), platform.Revision{Version: 1}); err != nil {
			t.Fatalf("Truncate(%q): %v", id, err)
		}
		eventIDs[id] = eventIDs[id][1:]
	}
	check("after truncating some IDs", gone)
}

func testReadFromRevision(t *testing.T, h *harness) {
	a := h.stream("a")
	mustAppend(t, h.Store, a, platform.NoStream(), events("first", 2))
	mustAppend(t, h.Store, h.stream("other"), platform.NoStream(), events("other", 2))
	mustAppend(t, h.Store, a, platform.Exact(2), events("second", 4))
	all := read(t, h.Store, a, platform.Revision{})
	if len(all) != 6 {
		t.Fatalf("Read: %d events, want 6", len(all))
	}
	for k := uint64(0); k <= 6; k++ {
		revs := []platform.Revision{{Version: k}}
		if k > 0 {
			revs = append(revs, all[k-1].Revision())
		}
		for _, rev := range revs {
			got := read(t, h.Store, a, rev)
			sameEnvelopes(t, fmt.Sprintf("Read after %+v", rev), got, all[k:])
		}
	}
	for _, rev := range []platform.Revision{{Version: 7}, {Version: 100}, {Version: 7, Position: all[5].Position + 1000}} {
		if got := read(t, h.Store, a, rev); len(got) != 0 {
			t.Fatalf("Read past the end (after %+v): %d events", rev, len(got))
		}
	}
	for _, rev := range []platform.Revision{{}, {Version: 3}, {Version: 3, Position: all[2].Position}} {
		if got := read(t, h.Store, h.stream("never"), rev); len(got) != 0 {
			t.Fatalf("Read of an aggregate that never existed (after %+v): %d events", rev, len(got))
		}
	}
}

// interleave appends to three aggregates in an interleaved order and
// returns the streams and the event IDs in append order.
func interleave(t *testing.T, h *harness) ([]platform.StreamID, []string) {
	t.Helper()
	streams := []platform.StreamID{h.stream("a"), h.stream("b"), h.stream("c")}
	var order []string
	versions := make([]uint64, 3)
	for _, step := range []struct{ agg, n int }{{0, 1}, {1, 2}, {2, 1}, {0, 3}, {2, 2}, {1, 1}, {0, 1}, {2, 1}, {1, 2}} {
		evs := events(fmt.Sprintf("s%d", step.agg), step.n)
		order = append(order, withIDs(evs)...)
		res := mustAppend(t, h.Store, streams[step.agg], platform.Exact(versions[step.agg]), evs)
		versions[step.agg] = res.LastVersion
	}
	return streams, order
}

func testReadAll(t *testing.T, h *harness) {
	_, order := interleave(t, h)
	all := readAll(t, h.Store, 0)
	if !slices.Equal(idsOf(all), order) {
		t.Fatalf("ReadAll(0) yields %v, want the append order %v", idsOf(all), order)
	}
	checkPositions(t, "ReadAll", all)
	// Each event as ReadAll yields it is what Read yields for it.
	for _, e := range all {
		got := read(t, h.Store, e.Stream, platform.Revision{Version: e.Version - 1})
		if len(got) == 0 {
			t.Fatalf("Read(%v) after version %d yields nothing", e.Stream, e.Version-1)
		}
		if d := diffEnvelope(got[0], e); d != "" {
			t.Fatalf("ReadAll and Read differ on %s: %s", e.ID, d)
		}
	}
	for _, k := range []int{1, 4, 7, len(all) - 1} {
		got := readAll(t, h.Store, all[k-1].Position)
		sameEnvelopes(t, fmt.Sprintf("ReadAll after position %d", all[k-1].Position), got, all[k:])
	}
	// After a position between two events.
	if gap := all[3].Position - 1; gap > all[2].Position {
		sameEnvelopes(t, "ReadAll after a position no event has", readAll(t, h.Store, gap), all[3:])
	}
	last := all[len(all)-1].Position
	for _, after := range []uint64{last, last + 1, last + 1000} {
		if got := readAll(t, h.Store, after); len(got) != 0 {
			t.Fatalf("ReadAll after %d (the head is %d) yields %d events", after, last, len(got))
		}
	}
}

func testReadAllStopsAtHead(t *testing.T, h *harness) {
	streams, order := interleave(t, h)
	const extra = 5
	type result struct {
		ids   []string
		added []string
		err   error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		defer func() {
			if p := recover(); p != nil {
				r.err = fmt.Errorf("panic: %v", p)
			}
			done <- r
		}()
		for e, err := range h.Store.ReadAll(t.Context(), 0) {
			if err != nil {
				r.err = err
				return
			}
			r.ids = append(r.ids, e.ID)
			if len(r.added) < extra {
				// Append while iterating, more than the iteration
				// yields so far.
				evs := events("during", 1)
				withIDs(evs)
				if _, err := h.Store.Append(t.Context(), streams[0], platform.Any(), evs); err != nil {
					r.err = fmt.Errorf("append during ReadAll: %w", err)
					return
				}
				r.added = append(r.added, evs[0].ID)
			}
			if len(r.ids) > len(order)+extra {
				r.err = fmt.Errorf("ReadAll yielded %d events, but only %d exist", len(r.ids), len(order)+extra)
				return
			}
		}
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(time.Minute):
		t.Fatalf("ReadAll did not terminate within a minute while events were appended during the iteration")
	}
	if r.err != nil {
		t.Fatalf("ReadAll: %v", r.err)
	}
	if len(r.ids) < len(order) || !slices.Equal(r.ids[:len(order)], order) {
		t.Fatalf("ReadAll yields %v, want the events stored when it started %v first", r.ids, order)
	}
	// Events appended during the iteration may or may not be yielded,
	// but any that are come in order.
	if tail := r.ids[len(order):]; !slices.Equal(tail, r.added[:len(tail)]) {
		t.Fatalf("ReadAll yields %v after the events it started with; appended during the iteration: %v", tail, r.added)
	}
	// A new ReadAll sees them all.
	if all := readAll(t, h.Store, 0); !slices.Equal(idsOf(all), append(order, r.added...)) {
		t.Fatalf("ReadAll after the iteration yields %v, want %v", idsOf(all), append(order, r.added...))
	}
}

func testReadAllSkipsHoles(t *testing.T, h *harness) {
	streams, _ := interleave(t, h)
	a, b, c := streams[0], streams[1], streams[2]
	all := readAll(t, h.Store, 0)
	if err := h.Store.Delete(t.Context(), b); err != nil {
		t.Fatalf("Delete(%v): %v", b, err)
	}
	if err := h.Store.Truncate(t.Context(), a, platform.Revision{Version: 2}); err != nil {
		t.Fatalf("Truncate(%v, 2): %v", a, err)
	}
	var want []platform.Envelope
	for _, e := range all {
		if e.Stream == b || (e.Stream == a && e.Version <= 2) {
			continue
		}
		want = append(want, e)
	}
	sameEnvelopes(t, "ReadAll(0) after Delete and Truncate", readAll(t, h.Store, 0), want)
	for i := 1; i < len(all); i++ {
		after := all[i-1].Position
		var w []platform.Envelope
		for _, e := range want {
			if e.Position > after {
				w = append(w, e)
			}
		}
		sameEnvelopes(t, fmt.Sprintf("ReadAll(%d) after Delete and Truncate", after), readAll(t, h.Store, after), w)
	}
	// The first event of c and of the remaining a keep their places.
	if len(read(t, h.Store, c, platform.Revision{})) != 4 {
		t.Fatalf("%v lost events", c)
	}
}

// subscriber is the live tail both stores offer beside EventStore.
type subscriber interface {
	Subscribe(ctx context.Context, after uint64) iter.Seq2[platform.Envelope, error]
}

func testSubscribe(t *testing.T, h *harness) {
	sub, ok := h.Store.(subscriber)
	if !ok {
		t.Skipf("%T has no Subscribe method", h.Store)
	}
	streams, _ := interleave(t, h)
	all := readAll(t, h.Store, 0)
	if err := h.Store.Delete(t.Context(), streams[1]); err != nil {
		t.Fatalf("Delete(%v): %v", streams[1], err)
	}
	after := all[0].Position
	var want []platform.Envelope
	for _, e := range all[1:] {
		if e.Stream != streams[1] {
			want = append(want, e)
		}
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	type item struct {
		e   platform.Envelope
		err error
	}
	got := make(chan item, 64)
	go func() {
		defer close(got)
		for e, err := range sub.Subscribe(ctx, after) {
			got <- item{e, err}
		}
	}()
	next := func(what string) item {
		t.Helper()
		select {
		case it, ok := <-got:
			if !ok {
				t.Fatalf("Subscribe ended before %s", what)
			}
			return it
		case <-time.After(10 * time.Second):
			t.Fatalf("Subscribe yielded nothing for 10s while waiting for %s", what)
			return item{}
		}
	}
	var caught []platform.Envelope
	for range want {
		it := next("the history")
		if it.err != nil {
			t.Fatalf("Subscribe(%d) while catching up: %v", after, it.err)
		}
		caught = append(caught, it.e)
	}
	sameEnvelopes(t, fmt.Sprintf("Subscribe(%d) over the history", after), caught, want)

	res := mustAppend(t, h.Store, streams[2], platform.Any(), events("live", 2))
	for v := res.FirstVersion; v <= res.LastVersion; v++ {
		it := next("a live event")
		if it.err != nil {
			t.Fatalf("Subscribe while following: %v", it.err)
		}
		if it.e.Stream != streams[2] || it.e.Version != v || it.e.Position != res.FirstPosition+(v-res.FirstVersion) {
			t.Fatalf("Subscribe yielded %v v%d at %d, want %v v%d from position %d", it.e.Stream, it.e.Version, it.e.Position, streams[2], v, res.FirstPosition)
		}
	}

	cancel()
	it := next("the end")
	if !errors.Is(it.err, context.Canceled) {
		t.Fatalf("Subscribe after cancel yielded (%v, %v), want context.Canceled", it.e.Stream, it.err)
	}
	select {
	case _, ok := <-got:
		if ok {
			t.Fatal("Subscribe yielded after its context's error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Subscribe did not return after its context ended")
	}
}

func testDelete(t *testing.T, h *harness) {
	ctx := t.Context()
	a, b := h.stream("a"), h.stream("b")
	mustAppend(t, h.Store, a, platform.NoStream(), events("a", 3))
	mustAppend(t, h.Store, b, platform.NoStream(), events("b", 2))
	mustAppend(t, h.Store, a, platform.Exact(3), events("a", 2))
	bEvents := read(t, h.Store, b, platform.Revision{})
	head := readAll(t, h.Store, 0)

	if err := h.Store.Delete(ctx, a); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if got := read(t, h.Store, a, platform.Revision{}); len(got) != 0 {
		t.Fatalf("Read after Delete: %d events", len(got))
	}
	sameEnvelopes(t, "ReadAll after Delete", readAll(t, h.Store, 0), bEvents)
	sameEnvelopes(t, "Read of another aggregate after Delete", read(t, h.Store, b, platform.Revision{}), bEvents)

	// Deleting again, or deleting what never existed, is fine.
	if err := h.Store.Delete(ctx, a); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	if err := h.Store.Delete(ctx, h.stream("never")); err != nil {
		t.Fatalf("Delete of an aggregate that never existed: %v", err)
	}

	// The aggregate starts again at version 1; its old version is gone.
	_, err := h.Store.Append(ctx, a, platform.Exact(5), events("stale", 1))
	checkConflict(t, "Exact(old version) after Delete", err, a, platform.Exact(5), 0)
	evs := events("again", 2)
	ids := withIDs(evs)
	res := mustAppend(t, h.Store, a, platform.NoStream(), evs)
	if res.FirstVersion != 1 || res.LastVersion != 2 {
		t.Fatalf("NoStream after Delete: versions %d..%d, want 1..2", res.FirstVersion, res.LastVersion)
	}
	if res.FirstPosition <= head[len(head)-1].Position {
		t.Fatalf("append after Delete at position %d, not after the head %d: positions must not be reused",
			res.FirstPosition, head[len(head)-1].Position)
	}
	got := read(t, h.Store, a, platform.Revision{})
	if !slices.Equal(idsOf(got), ids) || !slices.Equal(versionsOf(got), []uint64{1, 2}) {
		t.Fatalf("Read after re-creating: IDs %v versions %v, want %v at 1, 2", idsOf(got), versionsOf(got), ids)
	}
	sameEnvelopes(t, "ReadAll after re-creating", readAll(t, h.Store, 0), append(bEvents, got...))
}

func testTruncate(t *testing.T, h *harness) {
	ctx := t.Context()
	a, b := h.stream("known"), h.stream("unknown")
	for _, s := range []platform.StreamID{a, b} {
		mustAppend(t, h.Store, s, platform.NoStream(), events("x", 4))
		mustAppend(t, h.Store, s, platform.Exact(4), events("y", 6))
	}
	aAll, bAll := read(t, h.Store, a, platform.Revision{}), read(t, h.Store, b, platform.Revision{})

	// Position known.
	through := aAll[3].Revision()
	if err := h.Store.Truncate(ctx, a, through); err != nil {
		t.Fatalf("Truncate(%+v): %v", through, err)
	}
	sameEnvelopes(t, "Read after Truncate through 4", read(t, h.Store, a, platform.Revision{}), aAll[4:])
	sameEnvelopes(t, "Read after the truncated revision", read(t, h.Store, a, through), aAll[4:])
	sameEnvelopes(t, "Read after a truncated version", read(t, h.Store, a, platform.Revision{Version: 2}), aAll[4:])
	sameEnvelopes(t, "Read after a truncated revision", read(t, h.Store, a, aAll[1].Revision()), aAll[4:])
	sameEnvelopes(t, "Read after a kept revision", read(t, h.Store, a, aAll[6].Revision()), aAll[7:])

	// Position unknown.
	if err := h.Store.Truncate(ctx, b, platform.Revision{Version: 6}); err != nil {
		t.Fatalf("Truncate(version 6, position 0): %v", err)
	}
	sameEnvelopes(t, "Read after Truncate through 6 (position unknown)", read(t, h.Store, b, platform.Revision{}), bAll[6:])

	// Truncating again, or through less, changes nothing.
	for _, rev := range []platform.Revision{through, {Version: 4}, {Version: 2}, aAll[0].Revision()} {
		if err := h.Store.Truncate(ctx, a, rev); err != nil {
			t.Fatalf("Truncate(%+v) again: %v", rev, err)
		}
		sameEnvelopes(t, fmt.Sprintf("Read after Truncate(%+v) again", rev), read(t, h.Store, a, platform.Revision{}), aAll[4:])
	}

	// aAll precedes bAll in the global order.
	sameEnvelopes(t, "ReadAll after the truncations", readAll(t, h.Store, 0), append(slices.Clone(aAll[4:]), bAll[6:]...))

	// Past the last version: an error, and nothing changes.
	for _, rev := range []platform.Revision{{Version: 11}, {Version: 1000}} {
		err := h.Store.Truncate(ctx, b, rev)
		checkErr(t, fmt.Sprintf("Truncate(%+v) past version 10", rev), err, platform.ErrInvalidArgument)
	}
	sameEnvelopes(t, "Read after the failed Truncate", read(t, h.Store, b, platform.Revision{}), bAll[6:])

	// Appends continue at the right version.
	_, err := h.Store.Append(ctx, a, platform.Exact(4), events("stale", 1))
	checkConflict(t, "Exact(truncated version)", err, a, platform.Exact(4), 10)
	_, err = h.Store.Append(ctx, a, platform.NoStream(), events("stale", 1))
	checkConflict(t, "NoStream on a truncated aggregate", err, a, platform.NoStream(), 10)
	res := mustAppend(t, h.Store, a, platform.Exact(10), events("z", 2))
	if res.FirstVersion != 11 {
		t.Fatalf("append after Truncate: version %d, want 11", res.FirstVersion)
	}
	if vs := versionsOf(read(t, h.Store, a, platform.Revision{})); !slices.Equal(vs, seqVersions(5, 12)) {
		t.Fatalf("versions after Truncate and append: %v, want 5..12", vs)
	}
	res = mustAppend(t, h.Store, b, platform.ExactRevision(bAll[9].Revision()), events("z", 1))
	if res.FirstVersion != 11 {
		t.Fatalf("ExactRevision append after Truncate: version %d, want 11", res.FirstVersion)
	}
}

// testTruncateThroughLast checks that Truncate keeps the last event even
// when through names it: the event carries the version later appends
// continue from.
func testTruncateThroughLast(t *testing.T, h *harness) {
	ctx := t.Context()
	a, other := h.stream("a"), h.stream("other")
	res := mustAppend(t, h.Store, a, platform.NoStream(), events("x", 5))
	mustAppend(t, h.Store, other, platform.NoStream(), events("o", 2))
	before := read(t, h.Store, a, platform.Revision{})
	otherEvents := read(t, h.Store, other, platform.Revision{})
	for _, through := range []platform.Revision{res.Revision(), {Version: 5}} {
		if err := h.Store.Truncate(ctx, a, through); err != nil {
			t.Fatalf("Truncate(%+v) through the last version: %v", through, err)
		}
		sameEnvelopes(t, fmt.Sprintf("Read after Truncate(%+v) through the last version", through),
			read(t, h.Store, a, platform.Revision{}), before[4:])
	}
	if got := read(t, h.Store, a, res.Revision()); len(got) != 0 {
		t.Fatalf("Read after the last revision: %d events", len(got))
	}
	sameEnvelopes(t, "ReadAll after truncating through the last version", readAll(t, h.Store, 0),
		append(slices.Clone(before[4:]), otherEvents...))

	// The version is kept: the aggregate still exists at version 5.
	_, err := h.Store.Append(ctx, a, platform.NoStream(), events("new", 1))
	checkConflict(t, "NoStream after truncating through the last version", err, a, platform.NoStream(), 5)
	checkErr(t, "Truncate past the last version of a truncated aggregate",
		h.Store.Truncate(ctx, a, platform.Revision{Version: 6}), platform.ErrInvalidArgument)
	next := mustAppend(t, h.Store, a, platform.ExactRevision(res.Revision()), events("next", 1))
	if next.FirstVersion != 6 {
		t.Fatalf("append after truncating through the last version: version %d, want 6", next.FirstVersion)
	}
	if got := read(t, h.Store, a, platform.Revision{}); !slices.Equal(versionsOf(got), []uint64{5, 6}) {
		t.Fatalf("Read after appending: versions %v, want [5 6]", versionsOf(got))
	}
	if err := h.Store.Truncate(ctx, a, next.Revision()); err != nil {
		t.Fatalf("Truncate(%+v): %v", next.Revision(), err)
	}
	if got := read(t, h.Store, a, platform.Revision{}); !slices.Equal(versionsOf(got), []uint64{6}) {
		t.Fatalf("Read after truncating through the new last version: versions %v, want [6]", versionsOf(got))
	}
	sameEnvelopes(t, "another aggregate after the truncations", read(t, h.Store, other, platform.Revision{}), otherEvents)
}

func testConcurrentAppends(t *testing.T, h *harness) {
	a := h.stream("race")
	winners := make([]string, 0, h.Rounds)
	for round := 1; round <= h.Rounds; round++ {
		exp := platform.Exact(uint64(round - 1))
		type outcome struct {
			id  string
			res platform.AppendResult
			err error
		}
		out := make([]outcome, h.Racers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for g := range out {
			evs := events(fmt.Sprintf("r%d-g%d", round, g), 1)
			out[g].id = withIDs(evs)[0]
			wg.Go(func() {
				<-start
				out[g].res, out[g].err = h.Store.Append(t.Context(), a, exp, evs)
			})
		}
		close(start)
		wg.Wait()
		var won []outcome
		for _, o := range out {
			if o.err == nil {
				won = append(won, o)
				continue
			}
			checkConflict(t, fmt.Sprintf("round %d: a losing append", round), o.err, a, exp, uint64(round))
		}
		if len(won) != 1 {
			t.Fatalf("round %d: %d of %d appends at %v succeeded, want exactly 1", round, len(won), h.Racers, exp)
		}
		if won[0].res.FirstVersion != uint64(round) || won[0].res.LastVersion != uint64(round) {
			t.Fatalf("round %d: the winner landed at versions %d..%d", round, won[0].res.FirstVersion, won[0].res.LastVersion)
		}
		winners = append(winners, won[0].id)
	}
	got := read(t, h.Store, a, platform.Revision{})
	if !slices.Equal(versionsOf(got), seqVersions(1, uint64(h.Rounds))) {
		t.Fatalf("after %d rounds: versions %v, want 1..%d", h.Rounds, versionsOf(got), h.Rounds)
	}
	seen := map[string]bool{}
	for _, e := range got {
		if seen[e.ID] {
			t.Fatalf("event ID %s is stored twice", e.ID)
		}
		seen[e.ID] = true
	}
	if !slices.Equal(idsOf(got), winners) {
		t.Fatalf("stored events %v are not the winners %v", idsOf(got), winners)
	}
	checkPositions(t, "Read", got)
}

func testCancelledContext(t *testing.T, h *harness) {
	a, b := h.stream("new"), h.stream("existing")
	mustAppend(t, h.Store, b, platform.NoStream(), events("b", 1))
	before := readAll(t, h.Store, 0)
	ctx := cancelled(t.Context())
	for _, c := range []struct {
		stream platform.StreamID
		exp    platform.ExpectedVersion
	}{{a, platform.NoStream()}, {a, platform.Any()}, {b, platform.Exact(1)}, {b, platform.Any()}} {
		_, err := h.Store.Append(ctx, c.stream, c.exp, events("cancelled", 3))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Append(%v, %v) with a cancelled context: %v, want an error matching context.Canceled", c.stream, c.exp, err)
		}
	}
	sameEnvelopes(t, "ReadAll after appends with a cancelled context", readAll(t, h.Store, 0), before)
	if got := read(t, h.Store, a, platform.Revision{}); len(got) != 0 {
		t.Fatalf("an append with a cancelled context wrote %d events", len(got))
	}
	mustAppend(t, h.Store, a, platform.NoStream(), events("a", 1))
	mustAppend(t, h.Store, b, platform.Exact(1), events("b", 1))

	// Reading with a cancelled context ends (with an error or nothing).
	for range h.Store.Read(ctx, b, platform.Revision{}) {
	}
	for range h.Store.ReadAll(ctx, 0) {
	}
}

func testUnknownTypeOnRead(t *testing.T, h *harness) {
	if h.Reopen == nil {
		t.Skip("Harness.Reopen is nil: the store cannot open its data a second time with another registry")
	}
	a := h.stream("a")
	evs := events("u", 3) // opened, renamed, noted
	ids := withIDs(evs)
	mustAppend(t, h.Store, a, platform.NoStream(), evs)
	stored := read(t, h.Store, a, platform.Revision{})
	pos := stored[1].Position

	// The same data with every type registered reads the same.
	full := platform.NewRegistry()
	if err := registerTypes(full); err != nil {
		t.Fatal(err)
	}
	sameEnvelopes(t, "Read through a reopened store", read(t, h.Reopen(t, full), a, platform.Revision{}), stored)

	// Without renamed, reading stops at it with an error naming it.
	partial := platform.NewRegistry()
	if err := registerTypes(partial, nameRenamed); err != nil {
		t.Fatal(err)
	}
	other := h.Reopen(t, partial)
	checkUnknown := func(what string, got []platform.Envelope, err error) {
		t.Helper()
		checkErr(t, what, err, platform.ErrUnknownEventType)
		if msg := err.Error(); !strings.Contains(msg, nameRenamed) || !strings.Contains(msg, "position "+strconv.FormatUint(pos, 10)) {
			t.Fatalf("%s: error %q does not name the type %q and the position %d", what, msg, nameRenamed, pos)
		}
		if len(got) != 1 || got[0].ID != ids[0] {
			t.Fatalf("%s: before the error it yields %v, want the first event %s", what, idsOf(got), ids[0])
		}
	}
	noPanic(t, "Read with an unknown type", func() {
		got, err := collect(other.Read(t.Context(), a, platform.Revision{}))
		checkUnknown("Read", got, err)
	})
	noPanic(t, "ReadAll with an unknown type", func() {
		got, err := collect(other.ReadAll(t.Context(), 0))
		checkUnknown("ReadAll", got, err)
	})

	// renamed registered as a type it does not decode into: corrupt.
	wrong := platform.NewRegistry()
	if err := registerTypes(wrong, nameRenamed); err != nil {
		t.Fatal(err)
	}
	if err := platform.Register[renamedAsInt](wrong, nameRenamed, 2); err != nil {
		t.Fatal(err)
	}
	noPanic(t, "Read of an undecodable event", func() {
		got, err := collect(h.Reopen(t, wrong).Read(t.Context(), a, platform.Revision{}))
		checkErr(t, "Read of an undecodable event", err, platform.ErrCorruptEvent)
		if !strings.Contains(err.Error(), "position "+strconv.FormatUint(pos, 10)) {
			t.Fatalf("error %q does not name the position %d", err, pos)
		}
		if len(got) != 1 {
			t.Fatalf("before the error Read yields %d events, want 1", len(got))
		}
	})
}
