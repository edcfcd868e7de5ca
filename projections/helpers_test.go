package projections_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/embedded"
	"github.com/lexigram/events/embedded/embeddedtest"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/kvsnapshot"
	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/projections"
)

type OrderPlaced struct {
	Customer string
	Total    int
}

type ItemAdded struct {
	SKU   string
	Price int
}

var registry = func() *platform.Registry {
	r := platform.NewRegistry()
	platform.MustRegister[OrderPlaced](r, "order.placed", 1)
	platform.MustRegister[ItemAdded](r, "order.item-added", 1)
	return r
}()

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// node is one simulated process: its own connection to the shared server.
type node struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	store  *lxjs.EventStore
	cps    *kvsnapshot.CheckpointStore
	leases *projections.KVLeases
}

func server(t testing.TB) *embedded.Server {
	return embeddedtest.Server(t, func(o *embedded.Options) { o.FsyncInterval = time.Minute })
}

func newNode(t testing.TB, srv *embedded.Server, withLeases bool) *node {
	t.Helper()
	ctx := testContext(t)
	n := &node{nc: embeddedtest.Conn(t, srv)}
	var err error
	if n.js, err = jetstream.New(n.nc); err != nil {
		t.Fatal(err)
	}
	if n.store, err = lxjs.New(ctx, n.js, lxjs.Options{Registry: registry, Logger: embeddedtest.Logger(t)}); err != nil {
		t.Fatal(err)
	}
	if n.cps, err = kvsnapshot.NewCheckpointStore(ctx, n.js, kvsnapshot.CheckpointOptions{}); err != nil {
		t.Fatal(err)
	}
	if withLeases {
		if n.leases, err = projections.NewKVLeases(ctx, n.js, projections.KVLeaseOptions{TTL: time.Second, Logger: embeddedtest.Logger(t)}); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

func (n *node) manager(t testing.TB, opts projections.Options) *projections.Manager {
	t.Helper()
	if opts.Checkpoints == nil {
		opts.Checkpoints = n.cps
	}
	if opts.Leases == nil && n.leases != nil {
		opts.Leases = n.leases
	}
	if opts.Logger == nil {
		opts.Logger = embeddedtest.Logger(t)
	}
	m, err := projections.New(n.store, opts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// appendOrders appends n orders of one event each, then k item events to
// each, and returns the last position.
func appendOrders(t testing.TB, s platform.EventStore, prefix string, n, items int) uint64 {
	t.Helper()
	ctx := testContext(t)
	var last uint64
	for i := range n {
		id := platform.StreamID{Type: "order", ID: fmt.Sprintf("%s-%d", prefix, i)}
		evs := []platform.Envelope{{Event: OrderPlaced{Customer: "c" + prefix, Total: i}}}
		for k := range items {
			evs = append(evs, platform.Envelope{Event: ItemAdded{SKU: fmt.Sprintf("sku-%d", k), Price: k}})
		}
		res, err := s.Append(ctx, id, platform.NoStream(), evs)
		if err != nil {
			t.Fatal(err)
		}
		last = res.LastPosition
	}
	return last
}

// recorder is a Handler that records the positions it was given.
type recorder struct {
	mu    sync.Mutex
	seen  []uint64
	count map[uint64]int
	// hook runs before recording; an error fails the event.
	hook func(ctx context.Context, e platform.Envelope) error
}

func newRecorder() *recorder { return &recorder{count: map[uint64]int{}} }

func (r *recorder) Handle(ctx context.Context, gen projections.Generation, e platform.Envelope) error {
	r.mu.Lock()
	hook := r.hook
	r.mu.Unlock()
	if hook != nil {
		if err := hook(ctx, e); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, e.Position)
	r.count[e.Position]++
	return nil
}

func (r *recorder) setHook(h func(ctx context.Context, e platform.Envelope) error) {
	r.mu.Lock()
	r.hook = h
	r.mu.Unlock()
}

func (r *recorder) positions() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

// storedPositions lists every position the store holds.
func storedPositions(t testing.TB, s projections.EventSource) []uint64 {
	t.Helper()
	var out []uint64
	for e, err := range s.ReadAll(testContext(t), 0) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e.Position)
	}
	return out
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitState(t testing.TB, m *projections.Manager, name string, want projections.State) projections.Status {
	t.Helper()
	var st projections.Status
	eventually(t, 10*time.Second, fmt.Sprintf("projection %s in state %s", name, want), func() bool {
		var err error
		st, err = m.Status(testContext(t), name)
		if err != nil {
			t.Fatal(err)
		}
		return st.State == want
	})
	return st
}

func stopAll(t testing.TB, m *projections.Manager) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
}
