//go:build faults

package faults_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/faults"
	"github.com/lexigram/events/handlers/durable"
	"github.com/lexigram/events/internal/pgtest"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/kvsnapshot"
	"github.com/lexigram/events/projections"
	"github.com/lexigram/events/projections/pgmodel"
)

const (
	pgProjection   = "pgvalues"
	kvProjection   = "kvvalues"
	durableHandler = "faults-pg-effects"
	// consumersScenario names the scenario's rows.
	consumersScenario = "cluster R3 consumers"
)

// TestConsumerFaults runs writers on a three-node cluster under the
// cluster schedule, as TestClusterFaults does, and three consumers of
// their events, each on a client connection of its own through the
// client proxies, so that client cuts hit them too:
//
//   - a projection into PostgreSQL (pgmodel: rows and position in one
//     transaction): every event applied exactly once;
//   - a projection into a KV bucket with its checkpoint in KV
//     (kvsnapshot): at least once, its handler idempotent, so every event
//     present once however often it was applied;
//   - a durable handler (handlers/durable) recording each event in
//     PostgreSQL under its ID as idempotency key: handled at least once,
//     its effect exactly once, nothing in the DLQ.
//
// Once the faults are healed and the writers stopped, it waits for each
// consumer to reach the stream's last event, then checks that none
// skipped an event, doubled an effect, or holds one of an event the
// stream does not have. Projections that FAULTED on a cut are started
// again, as their contract says (Start resumes from the checkpoint), and
// counted.
func TestConsumerFaults(t *testing.T) {
	pool := pgtest.Pool(t)
	schema := pgSchema(t, pool)
	schedule := clusterSchedule(t)
	c := newCluster(t)
	admin := c.admin()
	ctx := t.Context()
	store, err := lxjs.New(ctx, newJS(t, c.connect()), lxjs.Options{Registry: registry(), Replicas: 3, Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	stream := store.StreamName()
	cons := startConsumers(t, c, pool, schema)

	w := newScenarioWorkload(store, false)
	began := time.Now()
	w.start(runSeed, t.Name())
	w.waitAcked(t, began, 20)
	injectClusterFaults(t, c, admin, stream, schedule, began)
	healed := time.Now()
	w.waitAcked(t, healed, 2*w.Writers)
	w.halt()
	stopped := time.Now()

	adminJS := newJS(t, admin)
	var reader *lxjs.EventStore
	if perr := poll(ctx, "the healed cluster to open a store", func() bool {
		reader, err = lxjs.New(ctx, adminJS, lxjs.Options{Registry: registry(), Replicas: 3, Logger: embeddedtest.Logger(t)})
		return err == nil
	}); perr != nil {
		t.Fatalf("%v: %v", perr, err)
	}
	caughtUp := cons.waitCaughtUp(t, adminJS, reader, stopped)
	report(t, consumersScenario, len(schedule), w, reader, adminJS, stream, began, healed, store)
	cons.verify(t, adminJS, reader, w.rec.Appends(), caughtUp)
}

// consumers are the scenario's three consumers and what they recorded.
type consumers struct {
	mgr     *projections.Manager
	pgCalls *calls
	kvCalls *calls
	effects *pgEffects
	handler *durable.Handler
	pool    *pgxpool.Pool
	pg      *pgmodel.Projection

	stopSupervisor context.CancelFunc
	supervised     chan struct{}
	mu             sync.Mutex
	restarts       map[string]int
}

func startConsumers(t *testing.T, c *cluster, pool *pgxpool.Pool, schema string) *consumers {
	t.Helper()
	ctx := t.Context()
	log := embeddedtest.Logger(t)
	cs := &consumers{pgCalls: newCalls(), kvCalls: newCalls(), pool: pool, restarts: map[string]int{}}

	// The projections' connection.
	pjs := newJS(t, c.connect())
	pstore, err := lxjs.New(ctx, pjs, lxjs.Options{Registry: registry(), Replicas: 3, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	checkpoints, err := kvsnapshot.NewCheckpointStore(ctx, pjs, kvsnapshot.CheckpointOptions{Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	kv, err := pjs.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: kvValuesBucket, Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	if cs.pg, err = pgmodel.New(pool, pgProjection, valuesModel{calls: cs.pgCalls}, pgmodel.Options{Schema: schema}); err != nil {
		t.Fatal(err)
	}
	// Small batches and frequent checkpoints: more transactions and more
	// checkpoint saves for the faults to cut through.
	if cs.mgr, err = projections.New(pstore, projections.Options{Checkpoints: checkpoints, CheckpointInterval: 20, BatchSize: 20, Logger: log}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []projections.Projection{
		{Name: pgProjection, Batch: cs.pg},
		{Name: kvProjection, Handler: &kvValues{kv: kv, calls: cs.kvCalls}},
	} {
		if err := cs.mgr.Register(p); err != nil {
			t.Fatal(err)
		}
	}
	// Not the test's context: the projections outlive the checks' reads
	// until Stop, and a cancelled context would be an abrupt stop.
	if err := cs.mgr.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.stopProjections(t) })
	sctx, cancel := context.WithCancel(context.Background())
	cs.stopSupervisor, cs.supervised = cancel, make(chan struct{})
	go cs.supervise(sctx, t)

	// The durable handler's connection.
	hjs := newJS(t, c.connect())
	hstore, err := lxjs.New(ctx, hjs, lxjs.Options{Registry: registry(), Replicas: 3, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if cs.effects, err = newPGEffects(ctx, pool, schema); err != nil {
		t.Fatal(err)
	}
	dlq, err := durable.OpenDLQ(ctx, hjs, hstore, durable.DLQOptions{Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	// AckWait well above Prefetch times a PostgreSQL transaction, and
	// short enough that an ack lost to a cut comes back within the wait.
	cs.handler, err = durable.New(ctx, hjs, hstore, durableHandler, cs.effects.handle, durable.Options{
		DLQ: dlq, AckWait: 10 * time.Second, Concurrency: 4, Prefetch: 200,
		Backoff: []time.Duration{200 * time.Millisecond, time.Second}, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.stopHandler(t) })
	return cs
}

// supervise starts a projection again when a fault stopped it in state
// FAULTED (a read that failed on a cut, a checkpoint that could not be
// saved): its contract resumes it from its checkpoint, and nothing else
// in the process would.
func (cs *consumers) supervise(ctx context.Context, t *testing.T) {
	defer close(cs.supervised)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	// While the stream has no leader every start faults again at once: a
	// pause between restarts keeps the count a count of outages.
	const spacing = 500 * time.Millisecond
	restarted := map[string]time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		statuses := cs.mgr.Statuses(sctx)
		cancel()
		for _, s := range statuses {
			if s.State != projections.Faulted || time.Since(restarted[s.Name]) < spacing {
				continue
			}
			restarted[s.Name] = time.Now()
			cs.mu.Lock()
			cs.restarts[s.Name]++
			n := cs.restarts[s.Name]
			cs.mu.Unlock()
			t.Logf("projection %s FAULTED at position %d (restart %d): %v", s.Name, s.Position, n, s.Err)
			if err := cs.mgr.Start(context.Background(), s.Name); err != nil {
				t.Errorf("start projection %s again: %v", s.Name, err)
			}
		}
	}
}

func (cs *consumers) restartsOf(name string) int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.restarts[name]
}

func (cs *consumers) stopProjections(t *testing.T) {
	if cs.stopSupervisor != nil {
		cs.stopSupervisor()
		<-cs.supervised
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cs.mgr.Stop(ctx); err != nil {
		t.Errorf("stop the projections: %v", err)
	}
}

func (cs *consumers) stopHandler(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cs.handler.Stop(ctx); err != nil {
		t.Errorf("stop the durable handler: %v", err)
	}
}

// waitCaughtUp waits for every consumer to reach the stream's last event,
// then stops them; it returns how long after the writers stopped each
// got there. One that does not within the deadline fails the test, and
// the checks then say what it missed.
func (cs *consumers) waitCaughtUp(t *testing.T, js jetstream.JetStream, reader *lxjs.EventStore, stopped time.Time) map[string]time.Duration {
	t.Helper()
	ctx := t.Context()
	var last uint64
	if err := poll(ctx, "the stream's last position", func() bool {
		st, err := reader.State(ctx)
		last = st.LastPosition
		return err == nil
	}); err != nil {
		t.Fatal(err)
	}
	caughtUp := map[string]time.Duration{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := func(name string) {
		mu.Lock()
		caughtUp[name] = time.Since(stopped)
		mu.Unlock()
	}
	for _, name := range []string{pgProjection, kvProjection} {
		wg.Go(func() {
			err := poll(ctx, fmt.Sprintf("projection %s to apply position %d", name, last), func() bool {
				s, err := cs.mgr.Status(ctx, name)
				return err == nil && s.Position >= last
			})
			if err != nil {
				s, _ := cs.mgr.Status(ctx, name)
				t.Errorf("%v: it is %s at position %d (err %v) (%s)", err, s.State, s.Position, s.Err, replayOf(t))
				return
			}
			done(name)
		})
	}
	wg.Go(func() {
		err := poll(ctx, fmt.Sprintf("durable handler %s to acknowledge position %d", durableHandler, last), func() bool {
			info, err := consumerInfo(ctx, js, reader.StreamName(), durableHandler)
			return err == nil && info.AckFloor.Stream >= last && info.NumAckPending == 0 && info.NumPending == 0
		})
		if err == nil {
			done(durableHandler)
			return
		}
		if info, ierr := consumerInfo(ctx, js, reader.StreamName(), durableHandler); ierr == nil {
			t.Errorf("%v: its ack floor is %d, %d pending, %d unacknowledged (%s)", err, info.AckFloor.Stream, info.NumPending, info.NumAckPending, replayOf(t))
		} else {
			t.Errorf("%v: %v (%s)", err, ierr, replayOf(t))
		}
	})
	wg.Wait()
	cs.stopProjections(t)
	cs.stopSupervisor = nil // stopped: the cleanup's Stop finds nothing left to do
	cs.stopHandler(t)
	return caughtUp
}

func replayOf(t *testing.T) string {
	return fmt.Sprintf("replay: %s=%d go test -tags faults -run '%s' ./faults/", faults.SeedEnv, runSeed, t.Name())
}

// verify checks what each consumer left behind against the stream read
// back and the writers' ledger, adds their rows to the table, and fails
// the test on any event skipped or doubled.
func (cs *consumers) verify(t *testing.T, js jetstream.JetStream, reader *lxjs.EventStore, ledger []faults.Append, caughtUp map[string]time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	ev, err := storedEvents(ctx, reader, ledger)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name, consumer string
		check          func(context.Context, jetstream.JetStream, *storedSet) (*faults.EffectsResult, error)
	}{
		{pgProjection, "projection PostgreSQL (exactly once)", cs.checkPG},
		{kvProjection, "projection KV, KV checkpoint (at least once)", cs.checkKV},
		{durableHandler, "durable handler, PostgreSQL key (effect once)", cs.checkDurable},
	}
	var table []faults.ConsumerRow
	for _, c := range checks {
		res, err := c.check(ctx, js, ev)
		if err != nil {
			t.Errorf("%s: %v", c.consumer, err)
			continue
		}
		row := faults.NewConsumerRow(consumersScenario, c.consumer, runSeed, res)
		row.Restarts, row.CatchUp = cs.restartsOf(c.name), caughtUp[c.name]
		addConsumerRow(row)
		table = append(table, row)
		if !res.Clean() {
			t.Errorf("%s: %d skipped, %d duplicated, %d phantom, %d other problems (%s):\n  %s",
				c.consumer, res.Skipped, res.Duplicated, res.Phantoms, res.Other, replayOf(t), strings.Join(res.Problems, "\n  "))
		}
	}
	t.Logf("consumers:\n%s", faults.FormatConsumerTable(table))
}

func consumerInfo(ctx context.Context, js jetstream.JetStream, stream, name string) (*jetstream.ConsumerInfo, error) {
	c, err := js.Consumer(ctx, stream, name)
	if err != nil {
		return nil, err
	}
	return c.Info(ctx)
}

// storedSet is the stream as read back, keyed for the consumers' checks.
type storedSet struct {
	values   map[string]string // value -> description
	ids      map[string]string // event ID -> description
	streamOf map[string]string // value -> the aggregate ID it belongs to
	perAgg   map[string]int64  // aggregate (Stream.String()) -> events stored
	// ackedAbsent are acknowledged events the stream does not hold (the
	// writers' check reports them lost): no consumer can have them.
	ackedAbsent []string
}

func storedEvents(ctx context.Context, reader *lxjs.EventStore, ledger []faults.Append) (*storedSet, error) {
	s := &storedSet{values: map[string]string{}, ids: map[string]string{}, streamOf: map[string]string{}, perAgg: map[string]int64{}}
	for e, err := range reader.ReadAll(ctx, 0) {
		if err != nil {
			return nil, fmt.Errorf("read the stream back: %w", err)
		}
		v := valueOf(e)
		d := fmt.Sprintf("value %s (event %s of %s version %d, position %d)", v, e.ID, e.Stream, e.Version, e.Position)
		s.values[v], s.ids[e.ID], s.streamOf[v] = d, d, e.Stream.ID
		s.perAgg[e.Stream.String()]++
	}
	for _, a := range ledger {
		if a.Outcome != faults.Acked {
			continue
		}
		for i, id := range a.EventIDs {
			if _, ok := s.ids[id]; !ok {
				s.ackedAbsent = append(s.ackedAbsent, fmt.Sprintf("acknowledged event %s of %s (position %d) is not in the stream", id, a.Stream, a.Result.FirstPosition+uint64(i)))
			}
		}
	}
	return s, nil
}

// skippedAcked counts the acknowledged events the stream lost as skipped:
// the consumer does not have them either.
func (s *storedSet) skippedAcked(res *faults.EffectsResult) {
	for _, d := range s.ackedAbsent {
		res.Problem(&res.Skipped, "skipped: %s", d)
	}
}

// checkPG: every stored value in the table once, applied once, and the
// apply counter equal to the number of values.
func (cs *consumers) checkPG(ctx context.Context, _ jetstream.JetStream, s *storedSet) (*faults.EffectsResult, error) {
	applies, err := queryCounts(ctx, cs.pool, "SELECT value, applies::bigint FROM "+cs.pg.View(valuesTable))
	if err != nil {
		return nil, err
	}
	total, err := queryCounts(ctx, cs.pool, "SELECT 'n', n FROM "+cs.pg.View(appliesTable))
	if err != nil {
		return nil, err
	}
	present := map[string]int{}
	for v, n := range applies {
		present[v] = int(n)
	}
	res := faults.CheckEffects(faults.Effects{Want: s.values, Present: present, Calls: cs.pgCalls.snapshot()})
	s.skippedAcked(res)
	if total["n"] != int64(len(s.values)) {
		res.Problem(&res.Other, "the apply counter is %d, the stream holds %d distinct values", total["n"], len(s.values))
	}
	return res, nil
}

// checkKV: every stored value in its aggregate's set, and nothing else.
func (cs *consumers) checkKV(ctx context.Context, js jetstream.JetStream, s *storedSet) (*faults.EffectsResult, error) {
	kv, err := js.KeyValue(ctx, kvValuesBucket)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", kvValuesBucket, err)
	}
	set, err := kvSet(ctx, kv)
	if err != nil {
		return nil, err
	}
	present := map[string]int{}
	for v, aggs := range set {
		present[v] = len(aggs)
	}
	res := faults.CheckEffects(faults.Effects{Want: s.values, Present: present, Calls: cs.kvCalls.snapshot()})
	s.skippedAcked(res)
	for v, aggs := range set {
		if want, ok := s.streamOf[v]; ok && len(aggs) == 1 && aggs[0] != want {
			res.Problem(&res.Other, "value %s is in the set of %s; its event belongs to %s", v, aggs[0], want)
		}
	}
	return res, nil
}

// checkDurable: every stored event's key recorded once, each aggregate's
// counter moved once per event, nothing in the DLQ.
func (cs *consumers) checkDurable(ctx context.Context, js jetstream.JetStream, s *storedSet) (*faults.EffectsResult, error) {
	handled, err := queryCounts(ctx, cs.pool, "SELECT event_id, 1::bigint FROM "+cs.effects.handled)
	if err != nil {
		return nil, err
	}
	counts, err := queryCounts(ctx, cs.pool, "SELECT stream, n FROM "+cs.effects.counts)
	if err != nil {
		return nil, err
	}
	present := map[string]int{}
	for id, n := range handled {
		present[id] = int(n)
	}
	res := faults.CheckEffects(faults.Effects{Want: s.ids, Present: present, Calls: cs.effects.calls.snapshot()})
	s.skippedAcked(res)
	for agg, want := range s.perAgg {
		switch got := counts[agg]; {
		case got > want:
			res.Duplicated += int(got-want) - 1
			res.Problem(&res.Duplicated, "duplicated: the counter of %s is %d, it has %d events: the key did not hold a redelivery back", agg, got, want)
		case got < want:
			res.Problem(&res.Other, "the counter of %s is %d, it has %d events", agg, got, want)
		}
	}
	dlq := cs.handler.DLQ()
	for e, err := range dlq.List(ctx, durableHandler) {
		if err != nil {
			return nil, fmt.Errorf("list the DLQ: %w", err)
		}
		res.Problem(&res.Other, "in the DLQ: event at position %d (%s, %s) after %d deliveries: %s", e.ID.Position, e.Subject, e.Reason, e.Deliveries, e.Error)
	}
	return res, nil
}
