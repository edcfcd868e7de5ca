package durable_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lexigram/events/handlers/durable"
	"github.com/lexigram/events/platform"
)

// Versions the schema tests add to the env's registry after the first
// events are stored: order.placed v1 (orderPlaced) → v2, a bundle split
// into a placed v1 (→ v2) and a shipped, a retired note, and order.created
// renamed by its upcaster to order.opened.
type (
	placedV2 struct {
		N    int
		Note string
	}
	bundleV1  struct{ N int }
	noteV1    struct{ Text string }
	createdV1 struct{ N int }
	openedV2  struct{ N int }
)

func (e *env) registerFirstVersions() {
	e.t.Helper()
	platform.MustRegister[bundleV1](e.reg, "order.bundle", 1)
	platform.MustRegister[noteV1](e.reg, "order.note", 1)
	platform.MustRegister[createdV1](e.reg, "order.created", 1)
}

func (e *env) registerLaterVersions() {
	e.t.Helper()
	platform.MustRegister[placedV2](e.reg, "order.placed", 2)
	platform.MustRegister[openedV2](e.reg, "order.opened", 2)
	platform.MustUpcast(e.reg, func(p orderPlaced) placedV2 { return placedV2{N: p.N, Note: "upcast"} })
	platform.MustUpcast(e.reg, func(c createdV1) openedV2 { return openedV2(c) })
	platform.MustUpcastMany(e.reg, func(b bundleV1) []any { return []any{orderPlaced(b), orderShipped(b)} })
	platform.MustRetire[noteV1](e.reg)
	if err := e.reg.Check(); err != nil {
		e.t.Fatal(err)
	}
}

type seen struct {
	mu   sync.Mutex
	envs []platform.Envelope
}

func (s *seen) add(ev platform.Envelope) {
	s.mu.Lock()
	s.envs = append(s.envs, ev)
	s.mu.Unlock()
}

func (s *seen) events() []any {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]any, len(s.envs))
	for i, e := range s.envs {
		out[i] = e.Event
	}
	return out
}

// A durable handler gets events upcast to their current versions: one
// stored event split in two is two calls and one ack, a retired one no
// call and an ack, and the EventTypes filter matches what events read
// as, not the stored type.
func TestHandlerReadsUpcastEvents(t *testing.T) {
	e := newEnv(t)
	e.registerFirstVersions()
	e.append("o1", orderPlaced{N: 1}, bundleV1{N: 2}, noteV1{Text: "gone"})
	last := e.append("o2", createdV1{N: 4}, orderPlaced{N: 3})
	e.registerLaterVersions()

	m := durable.NewMetrics()
	reg := registryOf(m)
	var all, shipped, opened seen
	handlers := []*durable.Handler{
		e.start(e.js, "all", func(ctx context.Context, ev platform.Envelope) error { all.add(ev); return nil }, durable.Options{Metrics: m}),
		e.start(e.js, "shipped", func(ctx context.Context, ev platform.Envelope) error { shipped.add(ev); return nil },
			durable.Options{EventTypes: []string{"order.shipped"}}),
		e.start(e.js, "opened", func(ctx context.Context, ev platform.Envelope) error { opened.add(ev); return nil },
			durable.Options{EventTypes: []string{"order.opened"}}),
	}
	for _, h := range handlers {
		eventually(t, h.Name()+" acknowledging every stored event", func() bool {
			info, err := h.Info(context.Background())
			return err == nil && info.AckFloor.Stream == last && info.NumAckPending == 0 && info.NumPending == 0
		})
	}
	want := []any{placedV2{N: 1, Note: "upcast"}, placedV2{N: 2, Note: "upcast"}, orderShipped{N: 2}, openedV2{N: 4}, placedV2{N: 3, Note: "upcast"}}
	if got := all.events(); !reflect.DeepEqual(got, want) {
		t.Fatalf("handler all got %#v, want %#v", got, want)
	}
	all.mu.Lock()
	split := all.envs[1:3]
	for i, ev := range split {
		if ev.Version != 2 || ev.Position != split[0].Position || ev.Origin.Part != i+1 || ev.Origin.Parts != 2 || ev.Origin.Type != "order.bundle" {
			t.Errorf("part %d of the split: version %d, position %d, origin %+v", i+1, ev.Version, ev.Position, ev.Origin)
		}
	}
	if split[1].ID != split[0].ID+".2" || !strings.HasPrefix(split[1].ID, split[0].ID) {
		t.Errorf("the split's parts have IDs %q and %q, want the second to be the first's with .2", split[0].ID, split[1].ID)
	}
	all.mu.Unlock()
	if got := shipped.events(); !reflect.DeepEqual(got, []any{orderShipped{N: 2}}) {
		t.Fatalf("handler of order.shipped got %#v, want the shipped part of the split", got)
	}
	if got := opened.events(); !reflect.DeepEqual(got, []any{openedV2{N: 4}}) {
		t.Fatalf("handler of order.opened got %#v, want the order.created event renamed by its upcaster", got)
	}
	// Five stored events: four handled, the retired note skipped.
	eventuallyGathers(t, reg, `
# HELP lexigram_durable_events_total Deliveries to durable handlers by outcome: ok, skipped, retried, dead_lettered, undecodable.
# TYPE lexigram_durable_events_total counter
lexigram_durable_events_total{handler="all",outcome="dead_lettered"} 0
lexigram_durable_events_total{handler="all",outcome="ok"} 4
lexigram_durable_events_total{handler="all",outcome="retried"} 0
lexigram_durable_events_total{handler="all",outcome="skipped"} 1
lexigram_durable_events_total{handler="all",outcome="undecodable"} 0
`, "lexigram_durable_events_total")
}

func registryOf(c prometheus.Collector) *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(c)
	return r
}

// When a part of a split event fails, a retry in place goes on from that
// part; a redelivery starts the event again from its first part.
func TestSplitEventRetries(t *testing.T) {
	for _, ordered := range []bool{true, false} {
		t.Run(fmt.Sprintf("PerAggregateOrder=%v", ordered), func(t *testing.T) {
			e := newEnv(t)
			e.registerFirstVersions()
			pos := e.append("o1", bundleV1{N: 7})
			e.registerLaterVersions()
			var calls seen
			var once sync.Once
			h := e.start(e.js, "retrier", func(ctx context.Context, ev platform.Envelope) error {
				calls.add(ev)
				fail := false
				if ev.Origin.Part == 2 {
					once.Do(func() { fail = true })
				}
				if fail {
					return errors.New("transient")
				}
				return nil
			}, durable.Options{PerAggregateOrder: ordered, Backoff: []time.Duration{10 * time.Millisecond}})
			eventually(t, "the split event's ack", func() bool {
				info, err := h.Info(context.Background())
				return err == nil && info.AckFloor.Stream == pos && info.NumAckPending == 0
			})
			placed, ship := placedV2{N: 7, Note: "upcast"}, orderShipped{N: 7}
			want := []any{placed, ship, ship}
			if !ordered {
				want = []any{placed, ship, placed, ship}
			}
			if got := calls.events(); !reflect.DeepEqual(got, want) {
				t.Fatalf("calls %#v, want %#v", got, want)
			}
		})
	}
}

// SkipUndecodable acknowledges events that do not decode, counted, with
// no DLQ entry; without it they go to the DLQ (TestPoisonIsTerminatedAtOnce).
func TestSkipUndecodable(t *testing.T) {
	e := newEnv(t)
	m := durable.NewMetrics()
	reg := registryOf(m)
	var got seen
	h := e.start(e.js, "skipper", func(ctx context.Context, ev platform.Envelope) error { got.add(ev); return nil },
		durable.Options{SkipUndecodable: true, Metrics: m})
	e.append("o1", orderPlaced{N: 1})
	subject, _ := e.store.Subject(platform.StreamID{Type: "order", ID: "o2"})
	for _, hd := range []nats.Header{
		{"Lx-Type": {"order.vanished"}, "Lx-Version": {"1"}, "Lx-Schema": {"1"}, "Lx-Codec": {"msgpack"}},
		{"Lx-Type": {"order.placed"}, "Lx-Version": {"1"}, "Lx-Schema": {"9"}, "Lx-Codec": {"msgpack"}},
		{"Lx-Type": {"order.placed"}, "Lx-Version": {"1"}, "Lx-Schema": {"1"}, "Lx-Codec": {"msgpack"}},
	} {
		if _, err := e.js.PublishMsg(context.Background(), &nats.Msg{Subject: subject, Header: hd, Data: []byte("not msgpack")}); err != nil {
			t.Fatal(err)
		}
	}
	last := e.append("o3", orderPlaced{N: 3})
	eventually(t, "every event acknowledged", func() bool {
		info, err := h.Info(context.Background())
		return err == nil && info.AckFloor.Stream == last && info.NumAckPending == 0
	})
	if evs := got.events(); !reflect.DeepEqual(evs, []any{orderPlaced{N: 1}, orderPlaced{N: 3}}) {
		t.Fatalf("handler got %#v, want the two good events", evs)
	}
	if n := len(e.entries("skipper")); n != 0 {
		t.Fatalf("%d DLQ entries, want none with SkipUndecodable", n)
	}
	eventuallyGathers(t, reg, `
# HELP lexigram_durable_events_total Deliveries to durable handlers by outcome: ok, skipped, retried, dead_lettered, undecodable.
# TYPE lexigram_durable_events_total counter
lexigram_durable_events_total{handler="skipper",outcome="dead_lettered"} 0
lexigram_durable_events_total{handler="skipper",outcome="ok"} 2
lexigram_durable_events_total{handler="skipper",outcome="retried"} 0
lexigram_durable_events_total{handler="skipper",outcome="skipped"} 0
lexigram_durable_events_total{handler="skipper",outcome="undecodable"} 3
`, "lexigram_durable_events_total")
}
