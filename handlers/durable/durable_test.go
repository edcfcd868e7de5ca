package durable_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/lexigram/events/embedded"
	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/handlers/durable"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

type orderPlaced struct{ N int }
type orderShipped struct{ N int }

func testRegistry() *platform.Registry {
	reg := platform.NewRegistry()
	platform.MustRegister[orderPlaced](reg, "order.placed", 1)
	platform.MustRegister[orderShipped](reg, "order.shipped", 1)
	return reg
}

// env is one embedded server, a store on it and a DLQ. proc opens a
// further connection, standing for another process.
type env struct {
	t     *testing.T
	srv   *embedded.Server
	nc    *nats.Conn
	js    jetstream.JetStream
	store *lxjs.EventStore
	reg   *platform.Registry
	dlq   *durable.DLQ
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := embeddedtest.Server(t, func(o *embedded.Options) { o.FsyncInterval = time.Minute })
	e := &env{t: t, srv: srv, reg: testRegistry()}
	e.nc, e.js = e.proc()
	var err error
	e.store, err = lxjs.New(context.Background(), e.js, lxjs.Options{Registry: e.reg, Storage: jetstream.MemoryStorage, Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	e.dlq, err = durable.OpenDLQ(context.Background(), e.js, e.store, durable.DLQOptions{Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) proc() (*nats.Conn, jetstream.JetStream) {
	nc := embeddedtest.Conn(e.t, e.srv)
	js, err := jetstream.New(nc)
	if err != nil {
		e.t.Fatal(err)
	}
	return nc, js
}

// start runs a handler on js (one "process") and stops it at cleanup.
func (e *env) start(js jetstream.JetStream, name string, fn func(context.Context, platform.Envelope) error, opts durable.Options) *durable.Handler {
	e.t.Helper()
	if opts.DLQ == nil {
		opts.DLQ = e.dlq
	}
	opts.Logger = embeddedtest.Logger(e.t)
	h, err := durable.New(context.Background(), js, e.store, name, fn, opts)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = h.Stop(ctx)
	})
	return h
}

// append stores events for order id and returns the position of the last.
func (e *env) append(id string, evs ...any) uint64 {
	e.t.Helper()
	envs := make([]platform.Envelope, len(evs))
	for i, ev := range evs {
		envs[i] = platform.Envelope{Event: ev}
	}
	res, err := e.store.Append(context.Background(), platform.StreamID{Type: "order", ID: id}, platform.Any(), envs)
	if err != nil {
		e.t.Fatal(err)
	}
	return res.LastPosition
}

// eventually polls cond until it holds or 15s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *env) entries(handler string) []durable.Entry {
	e.t.Helper()
	var out []durable.Entry
	for en, err := range e.dlq.List(context.Background(), handler) {
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, en)
	}
	return out
}

func TestAcksOnlyAfterTheHandlerReturns(t *testing.T) {
	e := newEnv(t)
	release := make(chan struct{})
	called := make(chan platform.Envelope, 1)
	h := e.start(e.js, "acker", func(ctx context.Context, ev platform.Envelope) error {
		called <- ev
		<-release
		return nil
	}, durable.Options{})
	pos := e.append("o1", orderPlaced{N: 1})
	ev := <-called
	if ev.Position != pos || ev.Event != (orderPlaced{N: 1}) || ev.Stream.ID != "o1" || ev.Version != 1 {
		t.Fatalf("handler got %+v", ev)
	}
	info, err := h.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 1 || info.AckFloor.Stream != 0 {
		t.Fatalf("while the handler runs: ack pending %d, ack floor %d; want 1 and 0", info.NumAckPending, info.AckFloor.Stream)
	}
	close(release)
	eventually(t, "the ack", func() bool {
		info, err := h.Info(context.Background())
		return err == nil && info.AckFloor.Stream == pos && info.NumAckPending == 0
	})
}

func TestRetriesThenDeadLetters(t *testing.T) {
	e := newEnv(t)
	var calls atomic.Int32
	e.start(e.js, "flaky", func(ctx context.Context, ev platform.Envelope) error {
		calls.Add(1)
		return errors.New("payment gateway said no")
	}, durable.Options{MaxDeliver: 3, Backoff: []time.Duration{20 * time.Millisecond}})
	before := time.Now()
	pos := e.append("o1", orderPlaced{N: 7})
	eventually(t, "the DLQ entry", func() bool { return len(e.entries("flaky")) == 1 })
	en := e.entries("flaky")[0]
	stored, err := e.js.Stream(context.Background(), e.store.StreamName())
	if err != nil {
		t.Fatal(err)
	}
	orig, err := stored.GetMsg(context.Background(), pos)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case en.ID != (durable.ID{Handler: "flaky", Position: pos}):
		t.Errorf("ID %v, want flaky/%d", en.ID, pos)
	case en.Error != "payment gateway said no" || en.Reason != durable.ReasonMaxDeliveries || en.RecordedBy != "handler":
		t.Errorf("error %q, reason %q, recorded by %q", en.Error, en.Reason, en.RecordedBy)
	case en.Deliveries != 3 || calls.Load() != 3:
		t.Errorf("deliveries %d, calls %d: want 3", en.Deliveries, calls.Load())
	case en.Time.Before(before) || time.Since(en.Time) > time.Minute:
		t.Errorf("time %v, test began %v", en.Time, before)
	case en.Subject != orig.Subject || en.Stream != e.store.StreamName() || string(en.Data) != string(orig.Data) || len(en.Data) == 0:
		t.Errorf("entry subject %q stream %q data %q; original %q %q", en.Subject, en.Stream, en.Data, orig.Subject, orig.Data)
	case en.EventType() != "order.placed" || en.Header.Get(lxjs.IDHeader) == "" || en.Header.Get(lxjs.IDHeader) != orig.Header.Get(lxjs.IDHeader) || en.Header.Get("Nats-Msg-Id") != orig.Header.Get("Nats-Msg-Id"):
		t.Errorf("entry headers %v, original %v", en.Header, orig.Header)
	case !en.EventTime.Equal(orig.Time):
		t.Errorf("event time %v, stored %v", en.EventTime, orig.Time)
	}
	got, err := e.dlq.Get(context.Background(), en.ID)
	if err != nil || got.Error != en.Error {
		t.Fatalf("Get(%v) = %+v, %v", en.ID, got, err)
	}
}

func TestPoisonIsTerminatedAtOnce(t *testing.T) {
	e := newEnv(t)
	var calls atomic.Int32
	e.start(e.js, "strict", func(ctx context.Context, ev platform.Envelope) error {
		calls.Add(1)
		if ev.Event.(orderPlaced).N == 13 {
			return fmt.Errorf("order 13: %w", durable.Permanent(errors.New("unlucky number")))
		}
		return nil
	}, durable.Options{MaxDeliver: 5, Backoff: []time.Duration{time.Hour}})

	permanent := e.append("o1", orderPlaced{N: 13})
	// Events the store did not write, straight into its stream.
	subject, _ := e.store.Subject(platform.StreamID{Type: "order", ID: "o2"})
	unknown := nats.Header{"Lx-Type": {"order.vanished"}, "Lx-Version": {"1"}, "Lx-Schema": {"1"}, "Lx-Codec": {"msgpack"}}
	corrupt := nats.Header{"Lx-Type": {"order.placed"}, "Lx-Version": {"1"}, "Lx-Schema": {"1"}, "Lx-Codec": {"msgpack"}}
	var poison []uint64
	for _, m := range []*nats.Msg{{Subject: subject, Header: unknown, Data: []byte{0x80}}, {Subject: subject, Header: corrupt, Data: []byte("not msgpack")}} {
		ack, err := e.js.PublishMsg(context.Background(), m)
		if err != nil {
			t.Fatal(err)
		}
		poison = append(poison, ack.Sequence)
	}
	e.append("o3", orderPlaced{N: 1})

	// The good event comes last: once it is handled, so are the others.
	eventually(t, "three DLQ entries and the good event", func() bool { return len(e.entries("strict")) == 3 && calls.Load() >= 2 })
	want := map[uint64]string{permanent: "unlucky number", poison[0]: "not registered", poison[1]: "decode"}
	for _, en := range e.entries("strict") {
		if en.Deliveries != 1 || en.Reason != durable.ReasonTerminated || !strings.Contains(en.Error, want[en.ID.Position]) {
			t.Errorf("entry %v: deliveries %d, reason %q, error %q; want 1, terminated, %q", en.ID, en.Deliveries, en.Reason, en.Error, want[en.ID.Position])
		}
	}
	if n := calls.Load(); n != 2 { // #13 once, the good one once; the poison never reaches the handler
		t.Errorf("handler called %d times, want 2", n)
	}
}

// An advisory read after its entry was discarded (the advisory consumer
// lagging, or redelivering) must not bring the entry back when the handler
// wrote it.
func TestALateAdvisoryDoesNotBringBackAnEntry(t *testing.T) {
	e := newEnv(t)
	e.start(e.js, "late", func(ctx context.Context, ev platform.Envelope) error {
		return durable.Permanent(errors.New("never"))
	}, durable.Options{})
	pos := e.append("o1", orderPlaced{N: 1})
	eventually(t, "the handler's DLQ entry", func() bool { return len(e.entries("late")) == 1 })

	ctx := context.Background()
	adv, err := e.js.Stream(ctx, "LEXIGRAM_DLQ_ADVISORIES")
	if err != nil {
		t.Fatal(err)
	}
	subject := "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED." + e.store.StreamName() + ".late"
	var original *jetstream.RawStreamMsg
	eventually(t, "the termination advisory", func() bool {
		original, err = adv.GetLastMsgForSubject(ctx, subject)
		return err == nil
	})
	advisoryHandled := func(seq uint64) func() bool {
		return func() bool {
			c, err := adv.Consumer(ctx, "late")
			if err != nil {
				t.Fatal(err)
			}
			info, err := c.Info(ctx)
			return err == nil && info.AckFloor.Stream >= seq
		}
	}
	eventually(t, "the advisory to be handled", advisoryHandled(original.Sequence))

	if err := e.dlq.Discard(ctx, durable.ID{Handler: "late", Position: pos}); err != nil {
		t.Fatal(err)
	}
	again, err := e.js.Publish(ctx, subject, original.Data)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the copy of the advisory to be handled", advisoryHandled(again.Sequence))
	if ens := e.entries("late"); len(ens) != 0 {
		t.Fatalf("the discarded entry came back: %+v", ens)
	}
}

func TestReplayAndDiscard(t *testing.T) {
	e := newEnv(t)
	var fixed atomic.Bool
	seen := make(chan platform.Envelope, 10)
	e.start(e.js, "replayed", func(ctx context.Context, ev platform.Envelope) error {
		if !fixed.Load() {
			return durable.Permanent(errors.New("not yet"))
		}
		seen <- ev
		return nil
	}, durable.Options{})
	p1 := e.append("o1", orderPlaced{N: 1})
	p2 := e.append("o2", orderPlaced{N: 2})
	eventually(t, "two DLQ entries", func() bool { return len(e.entries("replayed")) == 2 })
	if n, err := e.dlq.Size(context.Background(), "replayed"); err != nil || n != 2 {
		t.Fatalf("Size = %d, %v; want 2", n, err)
	}

	fixed.Store(true)
	if err := e.dlq.Replay(context.Background(), durable.ID{Handler: "replayed", Position: p1}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-seen:
		if ev.Position != p1 || ev.Event != (orderPlaced{N: 1}) || ev.Stream.ID != "o1" || ev.Version != 1 {
			t.Fatalf("the replay reached the handler as %+v", ev)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the replay did not reach the handler")
	}
	eventually(t, "the replayed entry to go", func() bool {
		ens := e.entries("replayed")
		return len(ens) == 1 && ens[0].ID.Position == p2
	})

	id2 := durable.ID{Handler: "replayed", Position: p2}
	if err := e.dlq.Discard(context.Background(), id2); err != nil {
		t.Fatal(err)
	}
	if ens := e.entries("replayed"); len(ens) != 0 {
		t.Fatalf("after Discard: %v", ens)
	}
	if err := e.dlq.Discard(context.Background(), id2); !errors.Is(err, platform.ErrInvalidArgument) {
		t.Fatalf("Discard of a missing entry: %v", err)
	}
	if err := e.dlq.Replay(context.Background(), id2); !errors.Is(err, platform.ErrInvalidArgument) {
		t.Fatalf("Replay of a missing entry: %v", err)
	}
	// The event store never saw the replay: o1 still has one event.
	n := 0
	for _, err := range e.store.Read(context.Background(), platform.StreamID{Type: "order", ID: "o1"}, platform.Revision{}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 1 {
		t.Fatalf("o1 has %d events after the replay, want 1", n)
	}
	if len(seen) != 0 {
		t.Fatalf("the handler saw %d more events", len(seen))
	}
}

func TestReplayThatFailsAgainReplacesTheEntry(t *testing.T) {
	e := newEnv(t)
	var calls atomic.Int32
	e.start(e.js, "stubborn", func(ctx context.Context, ev platform.Envelope) error {
		return durable.Permanent(fmt.Errorf("attempt %d", calls.Add(1)))
	}, durable.Options{})
	p := e.append("o1", orderPlaced{N: 1})
	eventually(t, "the DLQ entry", func() bool { return len(e.entries("stubborn")) == 1 })
	if err := e.dlq.Replay(context.Background(), durable.ID{Handler: "stubborn", Position: p}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the entry to carry the replay's error", func() bool {
		ens := e.entries("stubborn")
		return len(ens) == 1 && ens[0].Error == "attempt 2"
	})
}

func TestRedeliveryWhenAProcessDies(t *testing.T) {
	e := newEnv(t)
	ncA, jsA := e.proc()
	_, jsB := e.proc()
	const n = 20
	var mu sync.Mutex
	handled := map[uint64]string{}
	record := func(who string, ev platform.Envelope) {
		mu.Lock()
		handled[ev.Position] = who
		mu.Unlock()
	}
	stuck := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	var once sync.Once
	opts := durable.Options{AckWait: time.Second, Prefetch: 5}
	e.start(jsA, "survivor", func(ctx context.Context, ev platform.Envelope) error {
		once.Do(func() { close(stuck) })
		<-release // the process "dies" in the middle of this event
		return nil
	}, opts)
	first := e.append("o0", orderPlaced{N: 0})
	<-stuck
	ncA.Close()
	e.start(jsB, "survivor", func(ctx context.Context, ev platform.Envelope) error {
		record("B", ev)
		return nil
	}, opts)
	for i := 1; i < n; i++ {
		e.append(fmt.Sprintf("o%d", i), orderPlaced{N: i})
	}
	eventually(t, "every event handled by B", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) == n
	})
	mu.Lock()
	defer mu.Unlock()
	if handled[first] != "B" {
		t.Fatalf("the event A died on was not handled by B: %v", handled)
	}
}

func TestDeadLetterSurvivesAProcessDyingOnTheLastDelivery(t *testing.T) {
	e := newEnv(t)
	ncA, jsA := e.proc()
	_, jsB := e.proc()
	stuck := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	opts := durable.Options{AckWait: time.Second, MaxDeliver: 1}
	e.start(jsA, "fragile", func(ctx context.Context, ev platform.Envelope) error {
		close(stuck)
		<-release
		return errors.New("never recorded")
	}, opts)
	var calls atomic.Int32
	e.start(jsB, "fragile", func(ctx context.Context, ev platform.Envelope) error {
		calls.Add(1)
		return nil
	}, opts)
	// Only A pulls the first event: B is started but the event is A's
	// as soon as A's handler runs.
	pos := e.append("o1", orderPlaced{N: 1})
	<-stuck
	ncA.Close()
	eventually(t, "the advisory's DLQ entry", func() bool { return len(e.entries("fragile")) == 1 })
	en := e.entries("fragile")[0]
	if en.ID.Position != pos || en.Reason != durable.ReasonMaxDeliveries || en.RecordedBy != "advisory" || en.Deliveries != 1 || len(en.Data) == 0 || en.EventType() != "order.placed" {
		t.Fatalf("entry %+v", en)
	}
	if calls.Load() != 0 {
		t.Fatalf("B handled the event %d times after its last delivery", calls.Load())
	}
}

func TestInstancesShareTheWork(t *testing.T) {
	e := newEnv(t)
	const n = 200
	var mu sync.Mutex
	seen := map[uint64]int{}
	by := map[string]int{}
	started := map[string]chan struct{}{"A": make(chan struct{}), "B": make(chan struct{})}
	handler := func(who, other string) func(context.Context, platform.Envelope) error {
		var once sync.Once
		return func(ctx context.Context, ev platform.Envelope) error {
			once.Do(func() {
				close(started[who])
				// Hold the first event until the other instance has one,
				// so neither can take everything.
				select {
				case <-started[other]:
				case <-time.After(10 * time.Second):
				}
			})
			mu.Lock()
			seen[ev.Position]++
			by[who]++
			mu.Unlock()
			return nil
		}
	}
	_, jsA := e.proc()
	_, jsB := e.proc()
	opts := durable.Options{Prefetch: 10}
	e.start(jsA, "shared", handler("A", "B"), opts)
	e.start(jsB, "shared", handler("B", "A"), opts)
	for i := range n {
		e.append(fmt.Sprintf("o%d", i%10), orderPlaced{N: i})
	}
	eventually(t, "every event", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == n
	})
	mu.Lock()
	defer mu.Unlock()
	for pos, c := range seen {
		if c != 1 {
			t.Errorf("event %d handled %d times", pos, c)
		}
	}
	if by["A"] == 0 || by["B"] == 0 || by["A"]+by["B"] != n {
		t.Errorf("A handled %d, B %d; want both some, %d together", by["A"], by["B"], n)
	}
}

func TestPerAggregateOrderUnderParallelism(t *testing.T) {
	e := newEnv(t)
	const aggregates, each = 8, 15
	var mu sync.Mutex
	versions := map[string][]uint64{}
	var inFlight, most atomic.Int32
	var failedOnce sync.Once
	e.start(e.js, "ordered", func(ctx context.Context, ev platform.Envelope) error {
		now := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
		}
		// One event fails once: its retry must still come before the
		// aggregate's next event.
		fail := false
		if ev.Stream.ID == "o3" && ev.Version == 5 {
			failedOnce.Do(func() { fail = true })
		}
		if fail {
			return errors.New("transient")
		}
		time.Sleep(time.Millisecond) // some work, so that workers overlap
		mu.Lock()
		versions[ev.Stream.ID] = append(versions[ev.Stream.ID], ev.Version)
		mu.Unlock()
		return nil
	}, durable.Options{Concurrency: 4, PerAggregateOrder: true, Backoff: []time.Duration{50 * time.Millisecond}})
	for v := range each {
		for a := range aggregates {
			e.append(fmt.Sprintf("o%d", a), orderPlaced{N: v})
		}
	}
	eventually(t, "every event", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, vs := range versions {
			n += len(vs)
		}
		return n == aggregates*each
	})
	mu.Lock()
	defer mu.Unlock()
	for id, vs := range versions {
		if !slices.IsSorted(vs) || len(vs) != each || vs[0] != 1 {
			t.Errorf("%s saw versions %v", id, vs)
		}
	}
	if most.Load() < 2 {
		t.Errorf("at most %d handler calls ran at once: no parallelism", most.Load())
	}
}

func TestStartPositions(t *testing.T) {
	e := newEnv(t)
	p1 := e.append("o1", orderPlaced{N: 1})
	p2 := e.append("o1", orderPlaced{N: 2})
	collect := func(name string, start durable.Start) (*durable.Handler, func() []uint64) {
		var mu sync.Mutex
		var got []uint64
		h := e.start(e.js, name, func(ctx context.Context, ev platform.Envelope) error {
			mu.Lock()
			got = append(got, ev.Position)
			mu.Unlock()
			return nil
		}, durable.Options{Start: start})
		return h, func() []uint64 {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(got)
		}
	}
	_, all := collect("from-beginning", durable.FromBeginning)
	_, now := collect("from-now", durable.FromNow)
	_, after := collect("after-first", durable.After(p1))
	p3 := e.append("o1", orderPlaced{N: 3})
	want := map[string][]uint64{"from-beginning": {p1, p2, p3}, "from-now": {p3}, "after-first": {p2, p3}}
	gots := map[string]func() []uint64{"from-beginning": all, "from-now": now, "after-first": after}
	for name, w := range want {
		eventually(t, name+" to catch up", func() bool { return len(gots[name]()) >= len(w) })
		if g := gots[name](); !slices.Equal(g, w) {
			t.Errorf("%s got positions %v, want %v", name, g, w)
		}
	}

	// A consumer that exists keeps its position whatever start is asked.
	h, again := collect("from-now-2", durable.FromNow)
	if err := h.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	p4 := e.append("o1", orderPlaced{N: 4})
	_, restarted := collect("from-now-2", durable.FromBeginning)
	eventually(t, "the restarted handler to catch up", func() bool { return len(restarted()) >= 1 })
	if g := restarted(); !slices.Equal(g, []uint64{p4}) || len(again()) != 0 {
		t.Errorf("restarted with FromBeginning got %v (first life %v), want only %d", g, again(), p4)
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	m := durable.NewMetrics()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	release := make(chan struct{})
	h := e.start(e.js, "measured", func(ctx context.Context, ev platform.Envelope) error {
		switch ev.Event.(orderPlaced).N {
		case 1:
			return errors.New("always")
		case 2:
			<-release
		}
		return nil
	}, durable.Options{Metrics: m, MaxAckPending: 1, MaxDeliver: 2, Backoff: []time.Duration{10 * time.Millisecond}, EventTypes: []string{"order.placed"}})
	e.append("o1", orderPlaced{N: 1})  // retried once, then dead-lettered
	e.append("o2", orderShipped{N: 9}) // skipped
	e.append("o3", orderPlaced{N: 0})  // ok
	e.append("o4", orderPlaced{N: 2})  // blocks: ack pending
	e.append("o5", orderPlaced{N: 0})  // behind it: pending
	// o4 blocks with o5 behind it, and everything before is settled: o1
	// retried once then dead-lettered, o2 skipped, o3 ok. MaxAckPending 1
	// keeps o5 on the server while o4 runs: a lag of one.
	const settled = `
# HELP lexigram_durable_events_total Deliveries to durable handlers by outcome: ok, skipped, retried, dead_lettered, undecodable.
# TYPE lexigram_durable_events_total counter
lexigram_durable_events_total{handler="measured",outcome="dead_lettered"} 1
lexigram_durable_events_total{handler="measured",outcome="ok"} 1
lexigram_durable_events_total{handler="measured",outcome="retried"} 1
lexigram_durable_events_total{handler="measured",outcome="skipped"} 1
lexigram_durable_events_total{handler="measured",outcome="undecodable"} 0
# HELP lexigram_durable_dead_lettered_total Events durable handlers sent to the DLQ, by reason: max_deliveries or terminated.
# TYPE lexigram_durable_dead_lettered_total counter
lexigram_durable_dead_lettered_total{handler="measured",reason="max_deliveries"} 1
lexigram_durable_dead_lettered_total{handler="measured",reason="terminated"} 0
# HELP lexigram_durable_dlq_entries Entries in the DLQ.
# TYPE lexigram_durable_dlq_entries gauge
lexigram_durable_dlq_entries{handler="measured"} 1
# HELP lexigram_durable_consumer_pending Events the handler's consumer has not delivered yet: its lag.
# TYPE lexigram_durable_consumer_pending gauge
lexigram_durable_consumer_pending{handler="measured"} 1
# HELP lexigram_durable_consumer_ack_pending Events delivered to the handler and not yet acknowledged.
# TYPE lexigram_durable_consumer_ack_pending gauge
lexigram_durable_consumer_ack_pending{handler="measured"} 1
`
	eventuallyGathers(t, reg, settled, "lexigram_durable_events_total", "lexigram_durable_dead_lettered_total",
		"lexigram_durable_dlq_entries", "lexigram_durable_consumer_pending", "lexigram_durable_consumer_ack_pending")
	// ok, o1 twice: three calls have ended (a skip is not a call). The
	// latencies vary, so the histogram is read for its count alone.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	calls := uint64(0)
	for _, mf := range mfs {
		if mf.GetName() == "lexigram_durable_handler_seconds" {
			for _, mt := range mf.GetMetric() {
				calls += mt.GetHistogram().GetSampleCount()
			}
		}
	}
	if calls != 3 {
		t.Errorf("handler_seconds counted %d calls, want 3", calls)
	}
	close(release)
	eventuallyGathers(t, reg, `
# HELP lexigram_durable_events_total Deliveries to durable handlers by outcome: ok, skipped, retried, dead_lettered, undecodable.
# TYPE lexigram_durable_events_total counter
lexigram_durable_events_total{handler="measured",outcome="dead_lettered"} 1
lexigram_durable_events_total{handler="measured",outcome="ok"} 3
lexigram_durable_events_total{handler="measured",outcome="retried"} 1
lexigram_durable_events_total{handler="measured",outcome="skipped"} 1
lexigram_durable_events_total{handler="measured",outcome="undecodable"} 0
`, "lexigram_durable_events_total")
	_ = h
}

// eventuallyGathers polls g until its series of names are exactly those in
// expected (the text format), or fails with the last difference after 15s.
func eventuallyGathers(t *testing.T, g prometheus.Gatherer, expected string, names ...string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := testutil.GatherAndCompare(g, strings.NewReader(expected), names...)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics after 15s: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestExclusiveHasOneActiveProcessAndFailsOver(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	by := map[string]int{}
	total := func() int {
		mu.Lock()
		defer mu.Unlock()
		return by["A"] + by["B"]
	}
	count := func(who string) func(context.Context, platform.Envelope) error {
		return func(ctx context.Context, ev platform.Envelope) error {
			mu.Lock()
			by[who]++
			mu.Unlock()
			return nil
		}
	}
	opts := durable.Options{Exclusive: true, PinnedTTL: 2 * time.Second, Prefetch: 5}
	_, jsA := e.proc()
	_, jsB := e.proc()
	hs := map[string]*durable.Handler{"A": e.start(jsA, "pinned", count("A"), opts), "B": e.start(jsB, "pinned", count("B"), opts)}
	for i := range 30 {
		e.append(fmt.Sprintf("o%d", i%3), orderPlaced{N: i})
	}
	eventually(t, "the first 30 events", func() bool { return total() == 30 })
	mu.Lock()
	active, standby := "A", "B"
	if by["B"] > 0 {
		active, standby = "B", "A"
	}
	if by[standby] != 0 {
		t.Fatalf("both processes handled events: %v", by)
	}
	mu.Unlock()

	if err := hs[active].Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		e.append(fmt.Sprintf("o%d", i%3), orderPlaced{N: i})
	}
	eventually(t, "the standby to take over", func() bool { return total() == 40 })
	mu.Lock()
	defer mu.Unlock()
	if by[standby] != 10 || by[active] != 30 {
		t.Fatalf("after the failover: %v; want the standby (%s) to have handled the last 10", by, standby)
	}
}

func TestInPlaceRetryKeepsQueuedEventsAlive(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	var versions []uint64
	var failed atomic.Bool
	handler := func(ctx context.Context, ev platform.Envelope) error {
		if ev.Version == 1 && !failed.Swap(true) {
			return errors.New("transient")
		}
		mu.Lock()
		versions = append(versions, ev.Version)
		mu.Unlock()
		return nil
	}
	opts := durable.Options{
		Concurrency: 2, PerAggregateOrder: true, AckWait: time.Second,
		// The retry waits longer than AckWait, while v2 and v3 wait behind
		// it in the worker's queue (MaxAckPending keeps the rest on the server).
		Backoff: []time.Duration{1500 * time.Millisecond}, MaxAckPending: 3,
	}
	h := e.start(e.js, "patient", handler, opts)
	last := e.append("o1", orderPlaced{N: 1}, orderPlaced{N: 2}, orderPlaced{N: 3})
	var info *jetstream.ConsumerInfo
	eventually(t, "three acks", func() bool {
		var err error
		info, err = h.Info(context.Background())
		return err == nil && info.AckFloor.Stream == last
	})
	// Four handler calls, three deliveries: nothing was redelivered.
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(versions, []uint64{1, 2, 3}) || info.Delivered.Consumer != 3 {
		t.Fatalf("handled versions %v in %d deliveries, want [1 2 3] in 3", versions, info.Delivered.Consumer)
	}
}

func TestStopDrainsInFlightAndHandsBackTheRest(t *testing.T) {
	e := newEnv(t)
	_, jsA := e.proc()
	_, jsB := e.proc()
	started := make(chan uint64, 1)
	release := make(chan struct{})
	var aDone atomic.Bool
	a := e.start(jsA, "drained", func(ctx context.Context, ev platform.Envelope) error {
		started <- ev.Position
		<-release
		aDone.Store(true)
		return nil
	}, durable.Options{}) // AckWait 30s: only a hand-back can be this quick
	var positions []uint64
	for i := range 10 {
		positions = append(positions, e.append(fmt.Sprintf("o%d", i), orderPlaced{N: i}))
	}
	first := <-started // A is in the first; the rest wait in its buffer or on the server
	stopped := make(chan error, 1)
	go func() { stopped <- a.Stop(context.Background()) }()
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) while a handler call was in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-stopped; err != nil || !aDone.Load() {
		t.Fatalf("Stop = %v, handler finished %v", err, aDone.Load())
	}
	var mu sync.Mutex
	var got []uint64
	e.start(jsB, "drained", func(ctx context.Context, ev platform.Envelope) error {
		mu.Lock()
		got = append(got, ev.Position)
		mu.Unlock()
		return nil
	}, durable.Options{})
	eventually(t, "B to get the nine events A handed back", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 9
	})
	mu.Lock()
	defer mu.Unlock()
	// Handed-back events come back in no particular order.
	if want := slices.DeleteFunc(slices.Clone(positions), func(p uint64) bool { return p == first }); !slices.Equal(slices.Sorted(slices.Values(got)), want) {
		t.Fatalf("B got %v, want %v", got, want)
	}
}

func TestStopGivesUpWithItsContext(t *testing.T) {
	e := newEnv(t)
	running, cancelled := make(chan struct{}), make(chan struct{})
	h := e.start(e.js, "stuck", func(ctx context.Context, ev platform.Envelope) error {
		close(running)
		<-ctx.Done()
		close(cancelled)
		return ctx.Err()
	}, durable.Options{})
	e.append("o1", orderPlaced{N: 1})
	// The handler itself, not the server's ack-pending count: an event
	// delivered but not yet started is nak'ed by Stop, which then returns
	// at once.
	select {
	case <-running:
	case <-time.After(15 * time.Second):
		t.Fatal("the handler did not run")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := h.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop = %v, want the deadline", err)
	}
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the handler's context was not cancelled")
	}
}

// Stop with the NATS server gone (and the connection aware of it) returns
// at once: a drain would wait for the server's answer to its flush.
func TestStopWithNATSGone(t *testing.T) {
	e := newEnv(t)
	h := e.start(e.js, "nats-gone", func(context.Context, platform.Envelope) error { return nil }, durable.Options{})
	if err := e.srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the connection to notice the server is gone", func() bool { return !e.nc.IsConnected() })
	began := time.Now()
	if err := h.Stop(context.Background()); err != nil {
		t.Fatalf("Stop with NATS gone and nothing in flight: %v", err)
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Fatalf("Stop with NATS gone took %v", took)
	}
}

func TestRejectsBadSettings(t *testing.T) {
	e := newEnv(t)
	noop := func(context.Context, platform.Envelope) error { return nil }
	cases := map[string]struct {
		name string
		opts durable.Options
		want string
	}{
		"name with a dot":      {"bill.ing", durable.Options{}, `has '.'`},
		"empty name":           {"", durable.Options{}, "use 1 to 64"},
		"negative max":         {"h", durable.Options{MaxDeliver: -1}, "max deliver -1"},
		"short ack wait":       {"h", durable.Options{AckWait: time.Millisecond}, "ack wait 1ms"},
		"bad aggregate type":   {"h", durable.Options{AggregateTypes: []string{"or.der"}}, `aggregate type "or.der"`},
		"negative backoff":     {"h", durable.Options{Backoff: []time.Duration{-time.Second}}, "must not be negative"},
		"negative concurrency": {"h", durable.Options{Concurrency: -2}, "concurrency -2"},
	}
	for what, c := range cases {
		c.opts.DLQ = e.dlq
		_, err := durable.New(context.Background(), e.js, e.store, c.name, noop, c.opts)
		if !errors.Is(err, platform.ErrInvalidArgument) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: New = %v, want an invalid-argument error mentioning %q", what, err, c.want)
		}
	}
	if _, err := durable.ParseID("billing/12"); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{"billing", "billing/0", "bil.ling/3", "billing/x"} {
		if _, err := durable.ParseID(bad); !errors.Is(err, platform.ErrInvalidArgument) {
			t.Errorf("ParseID(%q) = %v", bad, err)
		}
	}
}

func TestListPagesThroughManyEntriesOfEveryHandler(t *testing.T) {
	e := newEnv(t)
	reject := func(context.Context, platform.Envelope) error { return durable.Permanent(errors.New("no")) }
	e.start(e.js, "rejects-all", reject, durable.Options{})
	e.start(e.js, "rejects-too", reject, durable.Options{AggregateTypes: []string{"order"}, Start: durable.FromNow})
	const n = 300 // more than one page of the batched direct get
	for i := range n / 100 {
		evs := make([]any, 100)
		for j := range evs {
			evs[j] = orderPlaced{N: j}
		}
		e.append(fmt.Sprintf("o%d", i), evs...)
	}
	eventually(t, "every entry", func() bool {
		a, err1 := e.dlq.Size(context.Background(), "rejects-all")
		b, err2 := e.dlq.Size(context.Background(), "rejects-too")
		return err1 == nil && err2 == nil && a == n && b == n
	})
	seen := map[durable.ID]bool{}
	for _, en := range e.entries("") {
		if seen[en.ID] {
			t.Fatalf("entry %v listed twice", en.ID)
		}
		seen[en.ID] = true
	}
	if len(seen) != 2*n {
		t.Fatalf("List(\"\") gave %d entries, want %d", len(seen), 2*n)
	}
	if got := e.entries("rejects-too"); len(got) != n || got[0].ID.Handler != "rejects-too" {
		t.Fatalf("List(rejects-too) gave %d entries", len(got))
	}
}

func TestTraceContextFollowsTheEvent(t *testing.T) {
	e := newEnv(t)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	// A command's span, stored with its event as the buses store it.
	cmdCtx, cmd := tp.Tracer("test").Start(context.Background(), "handle command")
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(cmdCtx, carrier)
	cmd.End()
	res, err := e.store.Append(context.Background(), platform.StreamID{Type: "order", ID: "o1"}, platform.NoStream(),
		[]platform.Envelope{{Event: orderPlaced{N: 1}, Metadata: carrier, CorrelationID: "corr-1"}})
	if err != nil {
		t.Fatal(err)
	}

	seen := make(chan trace.SpanContext, 2)
	record := func(ctx context.Context, ev platform.Envelope) error {
		seen <- trace.SpanContextFromContext(ctx)
		return nil
	}
	e.start(e.js, "traced", record, durable.Options{TracerProvider: tp})
	e.start(e.js, "untraced", record, durable.Options{})
	for range 2 {
		select {
		case sc := <-seen:
			if sc.TraceID() != cmd.SpanContext().TraceID() {
				t.Errorf("the handler ran in trace %s, the command in %s", sc.TraceID(), cmd.SpanContext().TraceID())
			}
		case <-time.After(15 * time.Second):
			t.Fatal("the handlers did not run")
		}
	}
	var spans []tracetest.SpanStub
	eventually(t, "the handler's span", func() bool {
		spans = spans[:0]
		for _, s := range exp.GetSpans() {
			if s.Name != "handle command" {
				spans = append(spans, s)
			}
		}
		return len(spans) > 0
	})
	// One span: the untraced handler made none, and the traced one ran once.
	if len(spans) != 1 || spans[0].Name != "durable handler traced" {
		var names []string
		for _, s := range spans {
			names = append(names, s.Name)
		}
		t.Fatalf("handler spans %q, want only \"durable handler traced\"", names)
	}
	s := spans[0]
	if s.Parent.SpanID() != cmd.SpanContext().SpanID() || !s.Parent.IsRemote() || s.SpanContext.TraceID() != cmd.SpanContext().TraceID() {
		t.Errorf("span parent %s (remote %t) in trace %s; want the command's span %s, remote, in trace %s",
			s.Parent.SpanID(), s.Parent.IsRemote(), s.SpanContext.TraceID(), cmd.SpanContext().SpanID(), cmd.SpanContext().TraceID())
	}
	if s.SpanKind != trace.SpanKindConsumer {
		t.Errorf("span kind %s, want consumer", s.SpanKind)
	}
	have := map[attribute.Key]string{}
	for _, kv := range s.Attributes {
		have[kv.Key] = kv.Value.String()
	}
	for k, v := range map[attribute.Key]string{
		"lexigram.handler":        "traced",
		"lexigram.type":           "order.placed",
		"lexigram.position":       fmt.Sprint(res.LastPosition),
		"lexigram.delivery":       "1",
		"lexigram.correlation_id": "corr-1",
	} {
		if have[k] != v {
			t.Errorf("span attribute %s = %q, want %q (attributes %v)", k, have[k], v, s.Attributes)
		}
	}
}

func TestPanicIsAFailureNotACrash(t *testing.T) {
	e := newEnv(t)
	e.start(e.js, "panicky", func(ctx context.Context, ev platform.Envelope) error {
		panic("nil map somewhere")
	}, durable.Options{MaxDeliver: 2, Backoff: []time.Duration{10 * time.Millisecond}})
	e.append("o1", orderPlaced{N: 1})
	eventually(t, "the DLQ entry", func() bool { return len(e.entries("panicky")) == 1 })
	en := e.entries("panicky")[0]
	if en.Deliveries != 2 || !strings.Contains(en.Error, "panicked") || !strings.Contains(en.Error, "nil map somewhere") {
		t.Fatalf("entry after %d deliveries: %q", en.Deliveries, en.Error)
	}
}

// TestSlowHandlerIsNotRedelivered: a handler that runs for more than twice
// the ack wait keeps its event, because the worker tells the server it is
// still working on it; the consumer delivers the event once.
func TestSlowHandlerIsNotRedelivered(t *testing.T) {
	e := newEnv(t)
	var calls atomic.Int32
	done := make(chan struct{})
	e.start(e.js, "slow", func(ctx context.Context, ev platform.Envelope) error {
		if calls.Add(1) == 1 {
			defer close(done)
			select {
			case <-time.After(2500 * time.Millisecond): // 2.5 times AckWait
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}, durable.Options{AckWait: time.Second})
	e.append("o-1", orderPlaced{N: 1})
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("the slow handler never finished")
	}
	cons, err := e.js.Consumer(context.Background(), e.store.StreamName(), "slow")
	if err != nil {
		t.Fatal(err)
	}
	var info *jetstream.ConsumerInfo
	eventually(t, "the event acknowledged", func() bool {
		info, err = cons.Info(context.Background())
		return err == nil && info.NumAckPending == 0 && info.AckFloor.Stream == info.Delivered.Stream
	})
	if info.Delivered.Consumer != 1 || info.NumRedelivered != 0 || calls.Load() != 1 {
		t.Fatalf("the slow event was delivered %d times (handler called %d times, %d redelivered); want once",
			info.Delivered.Consumer, calls.Load(), info.NumRedelivered)
	}
}
