package eventio_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/embedded/embeddedtest"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/jetstream/audit"
	"github.com/lexigram/events/jetstream/eventio"
	"github.com/lexigram/events/platform"
)

type placed struct{ Customer string }
type added struct {
	SKU string
	Qty int
}

func registry() *platform.Registry {
	reg := platform.NewRegistry()
	platform.MustRegister[placed](reg, "order.placed", 1)
	platform.MustRegister[added](reg, "order.item-added", 1)
	return reg
}

// newStore opens a store on its own stream and prefix of the server.
func newStore(t *testing.T, js jetstream.JetStream, stream, prefix string) *lxjs.EventStore {
	t.Helper()
	s, err := lxjs.New(t.Context(), js, lxjs.Options{Stream: stream, SubjectPrefix: prefix, Registry: registry(), Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func source(s *lxjs.EventStore) eventio.Source {
	return eventio.Source{Stream: s.StreamName(), SubjectPrefix: s.SubjectPrefix()}
}

// fill appends orders: each placed, then items, some two at once.
func fill(t *testing.T, s *lxjs.EventStore, orders int) int {
	t.Helper()
	n := 0
	for i := range orders {
		id := platform.StreamID{Type: "order", ID: fmt.Sprintf("o-%d", i)}
		if _, err := s.Append(t.Context(), id, platform.NoStream(), []platform.Envelope{{Event: placed{Customer: "ada"}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(t.Context(), id, platform.Exact(1), []platform.Envelope{{Event: added{SKU: "book", Qty: i}}, {Event: added{SKU: "pen", Qty: 1}}}); err != nil {
			t.Fatal(err)
		}
		n += 3
	}
	if _, err := s.Append(t.Context(), platform.StreamID{Type: "customer", ID: "ada"}, platform.NoStream(), []platform.Envelope{{Event: placed{Customer: "ada"}}}); err != nil {
		t.Fatal(err)
	}
	return n + 1
}

func collect(t *testing.T, js jetstream.JetStream, src eventio.Source, f eventio.Filter) []eventio.Line {
	t.Helper()
	var out []eventio.Line
	for l, err := range eventio.Read(t.Context(), js, src, f) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, l)
	}
	return out
}

// TestReadFilters: a type, one aggregate, event types and a start
// position each pick what they say, in stream order, and Decoded shows
// the body without its Go type.
func TestReadFilters(t *testing.T) {
	js, _ := jetstream.New(embeddedtest.Conn(t, embeddedtest.Server(t)))
	s := newStore(t, js, "EVENTS", "events")
	total := fill(t, s, 5)
	src := source(s)
	all := collect(t, js, src, eventio.Filter{})
	if len(all) != total {
		t.Fatalf("read %d events, want %d", len(all), total)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Position <= all[i-1].Position {
			t.Fatalf("positions out of order: %d after %d", all[i].Position, all[i-1].Position)
		}
	}
	if got := collect(t, js, src, eventio.Filter{AggregateType: "order"}); len(got) != total-1 {
		t.Errorf("type order: %d events, want %d", len(got), total-1)
	}
	one := collect(t, js, src, eventio.Filter{AggregateType: "order", AggregateID: "o-3"})
	if len(one) != 3 || one[0].Version() != 1 || one[2].Version() != 3 || one[2].AggregateID != "o-3" {
		t.Fatalf("aggregate order/o-3: %+v, want versions 1..3", one)
	}
	v, err := one[1].Decoded()
	if m, ok := v.(map[string]any); err != nil || !ok || m["SKU"] != "book" {
		t.Fatalf("Decoded = %#v, %v; want the item-added body as a map", v, err)
	}
	if got := collect(t, js, src, eventio.Filter{EventTypes: []string{"order.placed"}}); len(got) != 6 {
		t.Errorf("event type order.placed: %d events, want 6", len(got))
	}
	if got := collect(t, js, src, eventio.Filter{After: all[total-3].Position}); len(got) != 2 || got[0].Position != all[total-2].Position {
		t.Errorf("after position %d: %d events, want the last 2", all[total-3].Position, len(got))
	}
	if got := collect(t, js, src, eventio.Filter{AggregateType: "invoice"}); len(got) != 0 {
		t.Errorf("a type with no events: %d events", len(got))
	}
}

// TestReadFollow: a following read yields an event appended after it
// began, and ends with its context.
func TestReadFollow(t *testing.T) {
	js, _ := jetstream.New(embeddedtest.Conn(t, embeddedtest.Server(t)))
	s := newStore(t, js, "EVENTS", "events")
	fill(t, s, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	got := make(chan eventio.Line, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for l, err := range eventio.Read(ctx, js, source(s), eventio.Filter{AggregateType: "order", Follow: true}) {
			if err != nil {
				return
			}
			got <- l
		}
	}()
	for range 3 {
		<-got
	}
	if _, err := s.Append(t.Context(), platform.StreamID{Type: "order", ID: "late"}, platform.NoStream(), []platform.Envelope{{Event: placed{Customer: "bo"}}}); err != nil {
		t.Fatal(err)
	}
	select {
	case l := <-got:
		if l.AggregateID != "late" {
			t.Fatalf("followed %s/%s, want order/late", l.AggregateType, l.AggregateID)
		}
	case <-ctx.Done():
		t.Fatal("the following read did not yield the event appended after it began")
	}
	cancel()
	<-done
}

// TestExportImportRoundTrip: an export imported into another stream holds
// the same events (IDs, versions, headers, bodies), decodes through the
// store, and passes the integrity audit; an interrupted import run again
// finishes without duplicates.
func TestExportImportRoundTrip(t *testing.T) {
	js, _ := jetstream.New(embeddedtest.Conn(t, embeddedtest.Server(t)))
	from := newStore(t, js, "EVENTS", "events")
	total := fill(t, from, 40)
	var file bytes.Buffer
	n, err := eventio.Export(t.Context(), js, source(from), eventio.Filter{}, &file, nil)
	if err != nil || n != total {
		t.Fatalf("export: %d events, %v; want %d", n, err, total)
	}
	to := newStore(t, js, "COPY", "copy")

	// The first import stops a third of the way in, as a killed process would.
	lines := strings.SplitAfter(file.String(), "\n")
	part := strings.Join(lines[:total/3], "")
	if p, err := eventio.Import(t.Context(), js, source(to), strings.NewReader(part), eventio.ImportOptions{}); err != nil || p.Appended != total/3 {
		t.Fatalf("partial import: %+v, %v", p, err)
	}
	var progress []eventio.ImportProgress
	p, err := eventio.Import(t.Context(), js, source(to), bytes.NewReader(file.Bytes()), eventio.ImportOptions{Progress: func(p eventio.ImportProgress) { progress = append(progress, p) }})
	if err != nil {
		t.Fatal(err)
	}
	if p.Skipped != total/3 || p.Appended != total-total/3 || len(progress) == 0 || progress[len(progress)-1].Lines != total {
		t.Fatalf("import run again: %+v (progress %d calls), want %d skipped and %d appended", p, len(progress), total/3, total-total/3)
	}

	src, dst := collect(t, js, source(from), eventio.Filter{}), collect(t, js, source(to), eventio.Filter{})
	if len(dst) != len(src) {
		t.Fatalf("the copy holds %d events, the source %d", len(dst), len(src))
	}
	for i := range src {
		a, b := src[i], dst[i]
		if a.AggregateType != b.AggregateType || a.AggregateID != b.AggregateID || !bytes.Equal(a.Data, b.Data) || a.EventID() != b.EventID() || a.Version() != b.Version() {
			t.Fatalf("event %d differs: %+v vs %+v", i, a, b)
		}
		for k := range a.Header {
			if strings.HasPrefix(k, "Lx-") && a.Header.Get(k) != b.Header.Get(k) {
				t.Fatalf("event %d header %s: %q vs %q", i, k, a.Header.Get(k), b.Header.Get(k))
			}
		}
	}
	var items int
	for e, err := range to.Read(t.Context(), platform.StreamID{Type: "order", ID: "o-7"}, platform.Revision{}) {
		if err != nil {
			t.Fatal(err)
		}
		if a, ok := e.Event.(added); ok && a.SKU == "book" && a.Qty == 7 {
			items++
		}
	}
	if items != 1 {
		t.Fatalf("the copy's order/o-7 decodes %d book items of quantity 7, want 1", items)
	}
	rep, err := audit.Check(t.Context(), js, audit.Options{Stream: "COPY", SubjectPrefix: "copy"})
	if err != nil || !rep.Clean() {
		t.Fatalf("audit of the copy: %v, %+v", err, rep)
	}
	// Appends through the store go on from the imported versions.
	if _, err := to.Append(t.Context(), platform.StreamID{Type: "order", ID: "o-7"}, platform.Exact(3), []platform.Envelope{{Event: added{SKU: "ink"}}}); err != nil {
		t.Fatalf("append after the import: %v", err)
	}
}

// TestImportRefuses: a line that skips versions, another history at a
// stored version and a line that is not an event each stop the import
// with an error naming the line and what to do.
func TestImportRefuses(t *testing.T) {
	js, _ := jetstream.New(embeddedtest.Conn(t, embeddedtest.Server(t)))
	from := newStore(t, js, "EVENTS", "events")
	fill(t, from, 2)
	var file bytes.Buffer
	if _, err := eventio.Export(t.Context(), js, source(from), eventio.Filter{AggregateType: "order", AggregateID: "o-0"}, &file, nil); err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(file.String(), "\n")
	gap := lines[0] + lines[2]

	other := newStore(t, js, "OTHER", "other")
	if _, err := other.Append(t.Context(), platform.StreamID{Type: "order", ID: "o-0"}, platform.NoStream(), []platform.Envelope{{Event: placed{Customer: "zed"}}}); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		into  *lxjs.EventStore
		input string
		want  string
	}{
		"gap":           {newStore(t, js, "GAP", "gap"), gap, `line 2: order/"o-0" version 3 follows version 1`},
		"other history": {other, file.String(), "another history"},
		"not an event":  {newStore(t, js, "BAD", "bad"), `{"aggregate_type":"order","aggregate_id":"x"}` + "\n", "line 1"},
		"not JSON":      {newStore(t, js, "JUNK", "junk"), "hello\n", "line 1"},
	} {
		_, err := eventio.Import(t.Context(), js, source(c.into), strings.NewReader(c.input), eventio.ImportOptions{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want one containing %q", name, err, c.want)
		}
	}
}
