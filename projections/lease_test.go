package projections_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/projections"
)

// instance is one process running the projection.
type instance struct {
	n   *node
	m   *projections.Manager
	rec *recorder
}

func startInstance(t *testing.T, ctx context.Context, n *node) *instance {
	t.Helper()
	in := &instance{n: n, m: n.manager(t, projections.Options{CheckpointInterval: 1, BatchSize: 10}), rec: newRecorder()}
	if err := in.m.Register(projections.Projection{Name: "single", Handler: in.rec}); err != nil {
		t.Fatal(err)
	}
	if err := in.m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return in
}

func (in *instance) active(t *testing.T) bool {
	st, err := in.m.Status(testContext(t), "single")
	if err != nil {
		t.Fatal(err)
	}
	return st.Active
}

// whichActive waits until exactly one instance is active and returns it.
func whichActive(t *testing.T, ins ...*instance) (active *instance, others []*instance) {
	t.Helper()
	eventually(t, 10*time.Second, "one active instance", func() bool {
		active, others = nil, nil
		n := 0
		for _, in := range ins {
			if in.active(t) {
				active = in
				n++
			} else {
				others = append(others, in)
			}
		}
		return n == 1
	})
	return active, others
}

func TestOneActiveInstanceAndFailover(t *testing.T) {
	ctx := testContext(t)
	srv := server(t)
	a, b, c := newNode(t, srv, true), newNode(t, srv, true), newNode(t, srv, true)
	first := appendOrders(t, a.store, "h", 5, 1)
	ia, ib := startInstance(t, ctx, a), startInstance(t, ctx, b)
	stopAll(t, ib.m)

	active, others := whichActive(t, ia, ib)
	standby := others[0]
	if err := active.m.WaitFor(ctx, "single", first); err != nil {
		t.Fatal(err)
	}
	// The standby applies nothing, but its WaitFor follows the active
	// process's progress on the shared read model.
	if err := standby.m.WaitFor(ctx, "single", first); err != nil {
		t.Fatal(err)
	}
	if st, _ := standby.m.Status(ctx, "single"); st.State != projections.Running || st.Active || st.Position != first || standby.rec.len() != 0 {
		t.Fatalf("standby status %+v after applying %d events, want RUNNING, inactive, at the active one's position %d, nothing applied", st, standby.rec.len(), first)
	}
	holder, err := c.leases.Holder(ctx, "single")
	if err != nil || holder != active.n.leases.Instance() {
		t.Fatalf("lease holder %q, %v; want %q", holder, err, active.n.leases.Instance())
	}

	// A clean stop hands over at once.
	second := appendOrders(t, c.store, "s", 3, 0)
	if err := active.m.WaitFor(ctx, "single", second); err != nil {
		t.Fatal(err)
	}
	if err := active.m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	eventually(t, 5*time.Second, "the standby takes over after a clean stop", func() bool { return standby.active(t) })
	t.Logf("takeover after a clean stop: %v", time.Since(began))
	third := appendOrders(t, c.store, "t", 3, 0)
	if err := standby.m.WaitFor(ctx, "single", third); err != nil {
		t.Fatal(err)
	}
	if n := standby.rec.len(); n != 3 && n != 4 {
		// the checkpoint is saved every event; the one in flight at the
		// handover may come twice
		t.Fatalf("the new active instance applied %d events, want only the 3 after the handover", n)
	}
	before := active.rec.len()

	// The old active one comes back as standby; then the active one dies:
	// its connection closes without a clean stop.
	restarted := startInstance(t, ctx, newNode(t, srv, true))
	stopAll(t, restarted.m)
	standby.n.nc.Close()
	began = time.Now()
	eventually(t, 10*time.Second, "failover after the active process died", func() bool { return restarted.active(t) })
	t.Logf("failover after a crash (lease TTL 1s): %v", time.Since(began))
	fourth := appendOrders(t, c.store, "u", 2, 0)
	if err := restarted.m.WaitFor(ctx, "single", fourth); err != nil {
		t.Fatal(err)
	}
	if active.rec.len() != before {
		t.Fatal("the stopped instance applied events")
	}
	all := map[uint64]bool{}
	for _, in := range []*instance{active, standby, restarted} {
		for _, p := range in.rec.positions() {
			all[p] = true
		}
	}
	for p := uint64(1); p <= fourth; p++ {
		if !all[p] {
			t.Fatalf("position %d was applied by no instance", p)
		}
	}
}

// TestStandbyFollowingLateConverges is the schedule that once failed
// TestOneActiveInstanceAndFailover under CPU load: both instances start
// together, but the standby's subscription to the progress announcements
// takes effect only after the active one has announced its last position
// (the whole history in one batch) and the store stays idle. No later
// announcement makes good the one it missed, so the standby must learn
// the position some other way.
func TestStandbyFollowingLateConverges(t *testing.T) {
	ctx := testContext(t)
	srv := server(t)
	a, b := newNode(t, srv, true), newNode(t, srv, true)
	first := appendOrders(t, a.store, "h", 5, 1) // 10 events: one batch, one announcement

	// A third connection sees what the standby would have, had it
	// subscribed in time.
	announced := make(chan struct{})
	var once sync.Once
	sniff := embeddedtest.Conn(t, srv)
	if _, err := sniff.Subscribe("lexigram.projections."+projections.DefaultLeaseBucket+".single.applied", func(m *nats.Msg) {
		if string(m.Data) == strconv.FormatUint(first, 10) {
			once.Do(func() { close(announced) })
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := sniff.Flush(); err != nil {
		t.Fatal(err)
	}
	// b follows (and so tries the lease) only once a has announced: a is
	// the active one.
	projections.SetBeforeFollow(b.leases, func() {
		select {
		case <-announced:
		case <-t.Context().Done():
		}
	})
	ia := startInstance(t, ctx, a)
	stopAll(t, ia.m)
	ib := startInstance(t, ctx, b)
	stopAll(t, ib.m)
	select {
	case <-announced:
	case <-ctx.Done():
		t.Fatal("the active instance never announced its position")
	}
	if !ia.active(t) {
		t.Fatal("setup: the instance that announced is not active")
	}
	// Well within the test's deadline, so that a failure says where the
	// standby is stuck.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := ib.m.WaitFor(wctx, "single", first); err != nil {
		t.Fatal(err)
	}
	if st, _ := ib.m.Status(ctx, "single"); st.State != projections.Running || st.Active || st.Position != first || ib.rec.len() != 0 {
		t.Fatalf("standby status %+v after applying %d events, want RUNNING, inactive, at the active one's position %d, nothing applied", st, ib.rec.len(), first)
	}
}

// Two lease clients in one process get names of their own, so that a
// lease's Holder tells which instance holds it.
func TestLeaseInstanceNamesDiffer(t *testing.T) {
	js, err := jetstream.New(embeddedtest.Conn(t, embeddedtest.Server(t)))
	if err != nil {
		t.Fatal(err)
	}
	a, err := projections.NewKVLeases(context.Background(), js, projections.KVLeaseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := projections.NewKVLeases(context.Background(), js, projections.KVLeaseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Instance() == b.Instance() {
		t.Errorf("both lease clients are named %q", a.Instance())
	}
}
