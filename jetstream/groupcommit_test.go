package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/embedded"
	"github.com/lexigram/events/embedded/embeddedtest"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// ledger records what the store told each caller, to hold it against
// what the stream holds afterwards.
type ledger struct {
	mu     sync.Mutex
	stored map[string]platform.Envelope // event ID → the version and position the caller was told
	maybe  map[string]bool              // event IDs of appends that ended in "may or may not be stored"
	denied map[string]bool              // event IDs of appends refused with a conflict
}

func newLedger() *ledger {
	return &ledger{stored: map[string]platform.Envelope{}, maybe: map[string]bool{}, denied: map[string]bool{}}
}

func (l *ledger) ok(stream platform.StreamID, evs []platform.Envelope, res platform.AppendResult) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, e := range evs {
		l.stored[e.ID] = platform.Envelope{Stream: stream, Version: res.FirstVersion + uint64(i), Position: res.FirstPosition + uint64(i)}
		delete(l.maybe, e.ID)
	}
}

func (l *ledger) mark(set map[string]bool, evs []platform.Envelope) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range evs {
		set[e.ID] = true
	}
}

// check reads the whole stream: every event a caller was told is stored
// is there once, at the version and position it was told; no refused
// event is there; anything else there was "may or may not".
func (l *ledger) check(t *testing.T, st *lxjs.EventStore) {
	t.Helper()
	seen := map[string]bool{}
	for e, err := range st.ReadAll(context.Background(), 0) {
		if err != nil {
			t.Fatalf("ReadAll: %v", err)
		}
		if seen[e.ID] {
			t.Fatalf("event %s is stored twice", e.ID)
		}
		seen[e.ID] = true
		if l.denied[e.ID] {
			t.Fatalf("event %s of an append refused with a conflict is stored", e.ID)
		}
		want, ok := l.stored[e.ID]
		if !ok {
			if !l.maybe[e.ID] {
				t.Fatalf("event %s (%v v%d) is stored but no caller was told so", e.ID, e.Stream, e.Version)
			}
			continue
		}
		if e.Stream != want.Stream || e.Version != want.Version || e.Position != want.Position {
			t.Fatalf("event %s is %v v%d at %d; its caller was told %v v%d at %d",
				e.ID, e.Stream, e.Version, e.Position, want.Stream, want.Version, want.Position)
		}
	}
	for id := range l.stored {
		if !seen[id] {
			t.Fatalf("event %s was acknowledged but is not stored", id)
		}
	}
}

func newEvents(n int, tag string) []platform.Envelope {
	evs := make([]platform.Envelope, n)
	for i := range evs {
		evs[i] = platform.Envelope{ID: platform.NewEventID(), Event: itemAdded{SKU: tag, Qty: i}}
	}
	return evs
}

// TestGroupCommitMixedConflicts: many writers, some appends stale on
// purpose, some of several events, some with Any on aggregates others
// write too. Every caller gets exactly its own answer.
func TestGroupCommitMixedConflicts(t *testing.T) {
	t.Run("R1", func(t *testing.T) {
		r := newR1(t, lxjs.AlwaysGroup)
		wantGroupsSettled(t, testMixedConflicts(t, r.store, 250))
	})
	t.Run("R3", func(t *testing.T) {
		if testing.Short() {
			t.Skip("three-node cluster")
		}
		c := embeddedtest.Cluster(t)
		js, err := jetstream.New(c.Connect(t))
		if err != nil {
			t.Fatal(err)
		}
		o := lxjs.Options{Registry: testRegistry(), Replicas: 3, Logger: embeddedtest.Logger(t)}
		lxjs.AlwaysGroup(&o)
		st, err := lxjs.New(context.Background(), js, o)
		if err != nil {
			t.Fatal(err)
		}
		wantGroupsSettled(t, testMixedConflicts(t, st, 150))
	})
}

// wantGroupsSettled fails the test unless groups met conflicts and were
// settled and checked.
func wantGroupsSettled(t *testing.T, stats lxjs.GroupCommitStats) {
	t.Helper()
	if stats.Groups == 0 || stats.Failures == 0 || stats.Checked == 0 || stats.OneByOne != 0 {
		t.Fatalf("the run did not exercise group commit: %+v", stats)
	}
}

// testMixedConflicts runs the workload, checks every answer against the
// stream and returns the group commit's counters.
func testMixedConflicts(t *testing.T, st *lxjs.EventStore, perWriter int) lxjs.GroupCommitStats {
	ctx := context.Background()
	const writers, owned, shared = 24, 8, 4
	l := newLedger()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	var conflicts, anys int
	var mu sync.Mutex
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			revs := make([]platform.Revision, owned)
			for range perWriter {
				k := rng.IntN(owned)
				id := platform.StreamID{Type: "order", ID: fmt.Sprintf("w%d-%d", w, k)}
				evs := newEvents(1+rng.IntN(3)*rng.IntN(2), "x")
				switch roll := rng.IntN(100); {
				case roll < 10 && revs[k].Version > 0: // stale on purpose
					_, err := st.Append(ctx, id, platform.Exact(revs[k].Version-1), evs)
					var ce *platform.ConcurrencyError
					if !errors.As(err, &ce) || ce.Actual != revs[k].Version {
						errs <- fmt.Errorf("stale append to %v at v%d: got %v, want a conflict with actual %d", id, revs[k].Version-1, err, revs[k].Version)
						return
					}
					l.mark(l.denied, evs)
					mu.Lock()
					conflicts++
					mu.Unlock()
				case roll < 20: // Any, on an aggregate every writer shares
					sid := platform.StreamID{Type: "order", ID: fmt.Sprint("shared-", rng.IntN(shared))}
					res, err := st.Append(ctx, sid, platform.Any(), evs)
					if err != nil {
						errs <- fmt.Errorf("Any append to %v: %w", sid, err)
						return
					}
					l.ok(sid, evs, res)
					mu.Lock()
					anys++
					mu.Unlock()
				default:
					res, err := st.Append(ctx, id, platform.ExactRevision(revs[k]), evs)
					if err != nil {
						errs <- fmt.Errorf("append to %v at %+v: %w", id, revs[k], err)
						return
					}
					if res.FirstVersion != revs[k].Version+1 || res.LastVersion != revs[k].Version+uint64(len(evs)) ||
						res.LastPosition-res.FirstPosition != uint64(len(evs)-1) {
						errs <- fmt.Errorf("append of %d to %v at v%d: result %+v", len(evs), id, revs[k].Version, res)
						return
					}
					revs[k] = res.Revision()
					l.ok(id, evs, res)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	l.check(t, st)
	stats := st.GroupCommitStats()
	t.Logf("%d conflicts, %d Any appends; %+v", conflicts, anys, stats)
	if conflicts == 0 || anys == 0 {
		t.Fatalf("the run made %d conflicts and %d Any appends", conflicts, anys)
	}
	return stats
}

// TestGroupCommitTimedOutBatchLanded: a group's batch is stored but its
// acknowledgement is held past the request timeout. Every append in it
// must still be reported stored, once, at its place.
func TestGroupCommitTimedOutBatchLanded(t *testing.T) {
	ctx := context.Background()
	s := embeddedtest.Server(t)
	proxy := newGateProxy(t, strings.TrimPrefix(s.ClientURL(), "nats://"))
	nc, err := nats.Connect(proxy.url(), nats.NoReconnect())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc, jetstream.WithDefaultTimeout(300*time.Millisecond))
	o := lxjs.Options{Registry: testRegistry(), Logger: embeddedtest.Logger(t)}
	lxjs.AlwaysGroup(&o)
	st, err := lxjs.New(ctx, js, o)
	if err != nil {
		t.Fatal(err)
	}
	obs := embeddedtest.Conn(t, s)
	ojs, _ := jetstream.New(obs)
	stream, _ := ojs.Stream(ctx, st.StreamName())
	lastSeq := func() uint64 {
		info, err := stream.Info(ctx)
		if err != nil {
			return 0
		}
		return info.State.LastSeq
	}

	l := newLedger()
	type call struct {
		id  platform.StreamID
		evs []platform.Envelope
	}
	run := func(c call, done chan<- error) {
		res, err := st.Append(ctx, c.id, platform.NoStream(), c.evs)
		if err == nil {
			l.ok(c.id, c.evs, res)
		}
		done <- err
	}
	done := make(chan error, 8)

	// A first append goes out alone; holding its answer keeps the
	// committer busy while the others queue up behind it.
	proxy.holdOn(`"stream":"` + st.StreamName() + `"`)
	go run(call{platform.StreamID{Type: "order", ID: "first"}, newEvents(1, "a")}, done)
	waitUntil(t, 5*time.Second, func() bool { return lastSeq() >= 1 })
	const queued = 5
	for i := range queued {
		go run(call{platform.StreamID{Type: "order", ID: fmt.Sprint("grouped-", i)}, newEvents(1+i%2, "b")}, done)
	}
	waitUntil(t, 5*time.Second, func() bool { return st.GroupCommitStats().Queued == queued })

	// Let the first answer through, and hold the group's instead.
	proxy.rearm(`"batch":"`)
	waitUntil(t, 10*time.Second, func() bool { return st.GroupCommitStats().Failures >= 1 })
	if got := lastSeq(); got != 1+queued+queued/2 {
		t.Fatalf("the group's batch was not stored before its answer was held: last sequence %d", got)
	}
	proxy.release()
	for range 1 + queued {
		if err := <-done; err != nil {
			t.Fatalf("an append whose batch landed reported %v", err)
		}
	}
	l.check(t, st)
	if info, _ := stream.Info(ctx); info.State.Msgs != 1+queued+queued/2 {
		t.Fatalf("%d messages stored, want %d", info.State.Msgs, 1+queued+queued/2)
	}
}

// TestGroupCommitServerRestart restarts the server under concurrent
// appends. Writers retry what ended in doubt with the same event IDs;
// afterwards every acknowledged event is stored once and nothing else is.
func TestGroupCommitServerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a server")
	}
	ctx := context.Background()
	dir := t.TempDir()
	start := func(port int) *embedded.Server {
		s, err := embedded.Start(ctx, embedded.Options{Port: port, DataDir: dir, Logger: embeddedtest.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	srv := start(embedded.RandomPort)
	url := srv.ClientURL()
	var port int
	if _, err := fmt.Sscanf(url[strings.LastIndex(url, ":")+1:], "%d", &port); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc, jetstream.WithDefaultTimeout(time.Second))
	o := lxjs.Options{Registry: testRegistry(), Logger: embeddedtest.Logger(t)}
	lxjs.AlwaysGroup(&o)
	st, err := lxjs.New(ctx, js, o)
	if err != nil {
		t.Fatal(err)
	}

	l := newLedger()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	var progress sync.WaitGroup
	const writers = 16
	progress.Add(writers)
	for w := range writers {
		wg.Go(func() {
			var rev platform.Revision
			id := platform.StreamID{Type: "order", ID: fmt.Sprint("w", w)}
			for n := 0; ; n++ {
				if n == 20 {
					progress.Done()
				}
				select {
				case <-stop:
					if n < 20 {
						progress.Done()
					}
					return
				default:
				}
				evs := newEvents(1, "r")
				deadline := time.Now().Add(30 * time.Second)
				for {
					res, err := st.Append(ctx, id, platform.ExactRevision(rev), evs)
					if err == nil {
						rev = res.Revision()
						l.ok(id, evs, res)
						break
					}
					l.mark(l.maybe, evs)
					if errors.Is(err, platform.ErrConcurrency) || time.Now().After(deadline) {
						errs <- fmt.Errorf("writer %d: %w", w, err)
						return
					}
					time.Sleep(20 * time.Millisecond) // the server is away: do not spin
				}
			}
		})
	}
	progress.Wait() // every writer has stored 20 events
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	srv = start(port)
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	// Let the writers run on the restarted server for a while.
	before := st.GroupCommitStats().Appends
	waitUntil(t, 30*time.Second, func() bool { return st.GroupCommitStats().Appends >= before+200 })
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	l.check(t, st)
}

// TestGroupCommitSwitchesLoseNothing: the committer switches between
// groups and singles every few completions, under the mixed workload, so
// appends are caught queued when grouping stops (they go alone), and
// singles are in flight when it starts. Every caller still gets exactly
// its own answer.
func TestGroupCommitSwitchesLoseNothing(t *testing.T) {
	r := newR1(t, lxjs.SwitchEvery(20))
	if s := testMixedConflicts(t, r.store, 250); s.Switches < 20 || s.Groups < 20 {
		t.Fatalf("%+v: the run did not exercise switches and groups", s)
	}
}

// TestGroupCommitFollowsTheDemand: a lone writer never pays for group
// commit (nothing groups with one append in flight), and with 128 writers
// on a server that fsyncs every write the committer groups them.
func TestGroupCommitFollowsTheDemand(t *testing.T) {
	r := newR1(t, func(o *lxjs.Options) { o.GroupCommit.Enabled = true })
	ctx := context.Background()
	var rev platform.Revision
	id := platform.StreamID{Type: "order", ID: "lone"}
	for range 300 {
		res, err := r.store.Append(ctx, id, platform.ExactRevision(rev), newEvents(1, "lone"))
		if err != nil {
			t.Fatal(err)
		}
		rev = res.Revision()
	}
	if s := r.store.GroupCommitStats(); s.Grouping || s.Switches != 0 || s.Groups != 0 || s.Single == 0 {
		t.Fatalf("a lone writer: %+v; want singles only, measured", s)
	}

	const writers = 128
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			var rev platform.Revision
			id := platform.StreamID{Type: "order", ID: fmt.Sprint("busy-", w)}
			for {
				select {
				case <-stop:
					return
				default:
				}
				res, err := r.store.Append(ctx, id, platform.ExactRevision(rev), newEvents(1, "busy"))
				if err != nil {
					errs <- err
					return
				}
				rev = res.Revision()
			}
		})
	}
	waitUntil(t, 60*time.Second, func() bool { return r.store.GroupCommitStats().Groups >= 20 })
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	s := r.store.GroupCommitStats()
	t.Logf("%+v", s)
	if s.Appends < 20*2 || s.Group == 0 || s.Group >= s.Single {
		t.Fatalf("128 writers: %+v; want groups of several appends, cheaper than singles", s)
	}
}
