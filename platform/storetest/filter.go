package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/lexigram/events/platform"
)

// whereer is a store that reads filtered (Where).
type whereer interface {
	Where(platform.Filter) platform.GlobalReader
}

// testWhere: a filtered ReadAll yields exactly the events a filter picks,
// in global order, for one aggregate type, several, one aggregate and
// event types; a filtered Subscribe follows with only those; a bad
// filter is an error.
func testWhere(t *testing.T, h *harness) {
	w, ok := h.Store.(whereer)
	if !ok {
		t.Skipf("%T has no Where method", h.Store)
	}
	mine, _ := interleave(t, h)
	other := platform.StreamID{Type: h.aggType + "o", ID: "z"}
	mustAppend(t, h.Store, other, platform.NoStream(), events("o", 3))
	all := readAll(t, h.Store, 0)
	nameOf := func(e platform.Envelope) string { return e.Type }
	for name, f := range map[string]platform.Filter{
		"one type":    {AggregateTypes: []string{h.aggType}},
		"two types":   {AggregateTypes: []string{h.aggType, other.Type}},
		"other type":  {AggregateTypes: []string{other.Type}},
		"aggregate":   {Aggregate: mine[1]},
		"event type":  {EventTypes: []string{nameRenamed}},
		"type and ev": {AggregateTypes: []string{other.Type}, EventTypes: []string{nameOpened}},
		"nothing":     {AggregateTypes: []string{h.aggType + "none"}},
	} {
		var want []platform.Envelope
		for _, e := range all {
			if f.Matches(e) {
				want = append(want, e)
			}
		}
		got, err := collect(w.Where(f).ReadAll(t.Context(), 0))
		if err != nil {
			t.Fatalf("Where(%s).ReadAll: %v", name, err)
		}
		sameEnvelopes(t, "Where("+name+").ReadAll", got, want)
		if name == "event type" && (len(got) == 0 || slices.ContainsFunc(got, func(e platform.Envelope) bool { return nameOf(e) != nameRenamed })) {
			t.Fatalf("Where(event type %s) yields %d events: %v", nameRenamed, len(got), idsOf(got))
		}
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	got := make(chan platform.Envelope, 16)
	go func() {
		defer close(got)
		for e, err := range w.Where(platform.Filter{AggregateTypes: []string{other.Type}}).Subscribe(ctx, all[len(all)-1].Position) {
			if err != nil {
				return
			}
			got <- e
		}
	}()
	mustAppend(t, h.Store, mine[0], platform.Any(), events("late", 1))
	res := mustAppend(t, h.Store, other, platform.Any(), events("late", 1))
	select {
	case e := <-got:
		if e.Stream != other || e.Position != res.LastPosition {
			t.Fatalf("a filtered Subscribe yielded %s at %d, want %s at %d (and nothing of %s)", e.Stream, e.Position, other, res.LastPosition, mine[0])
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a filtered Subscribe yielded nothing for 30s after an append it picks")
	}

	for name, f := range map[string]platform.Filter{
		"bad type":           {AggregateTypes: []string{"a.b"}},
		"type and aggregate": {Aggregate: mine[0], AggregateTypes: []string{h.aggType}},
	} {
		if _, err := collect(w.Where(f).ReadAll(t.Context(), 0)); err == nil {
			t.Errorf("Where(%s).ReadAll: no error", name)
		}
	}
}
