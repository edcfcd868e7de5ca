//go:build faults

package faults_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/faults"
	lxjs "github.com/lexigram/events/jetstream"
)

const (
	hotAggregates  = 3
	coldAggregates = 100
	// writers with group commit on: enough appends in flight for groups
	// to beat single publishes (about 25 on a 2-core machine).
	groupWriters  = 64
	singleWriters = 8
)

// TestClusterFaults runs writers against an R3 stream on a three-node
// cluster while a schedule steps the stream leader down, shuts a node
// down and restarts it, cuts the clients' connections and partitions a
// node from the other two, then checks that nothing acknowledged was
// lost, nothing stored twice, no version forked or skipped, and no
// conflict reported falsely.
func TestClusterFaults(t *testing.T) {
	for _, gc := range []bool{false, true} {
		t.Run(groupName(gc), func(t *testing.T) { clusterScenario(t, gc) })
	}
}

// TestChildKill runs writers against an R1 stream on a server in a child
// process that fsyncs before it acknowledges, SIGKILLs it and restarts
// it on its store, and cuts the clients' connections, then checks the
// same.
func TestChildKill(t *testing.T) {
	for _, gc := range []bool{false, true} {
		t.Run(groupName(gc), func(t *testing.T) { childScenario(t, gc) })
	}
}

func groupName(gc bool) string {
	if gc {
		return "group-commit"
	}
	return "single-appends"
}

// newScenarioWorkload is the workload for a scenario: with group commit,
// many writers, mostly on cold aggregates, so that appends to different
// aggregates are in flight together rather than retrying conflicts.
func newScenarioWorkload(store *lxjs.EventStore, gc bool) *workload {
	w := newWorkload(store, writersFor(gc), hotAggregates, coldAggregates)
	if gc {
		w.HotPercent = 10
	}
	return w
}

func writersFor(gc bool) int {
	if gc {
		return groupWriters
	}
	return singleWriters
}

func clusterScenario(t *testing.T, gc bool) {
	schedule := clusterSchedule(t)
	c := newCluster(t)
	admin := c.admin()
	js := newJS(t, c.connect())
	ctx := t.Context()
	store, err := lxjs.New(ctx, js, lxjs.Options{Registry: registry(), Replicas: 3, Logger: embeddedtest.Logger(t),
		GroupCommit: lxjs.GroupCommit{Enabled: gc}})
	if err != nil {
		t.Fatal(err)
	}
	stream := store.StreamName()
	w := newScenarioWorkload(store, gc)
	began := time.Now()
	w.start(runSeed, t.Name())
	w.waitAcked(t, began, 20)

	injectClusterFaults(t, c, admin, stream, schedule, began)
	healed := time.Now()
	w.waitAcked(t, healed, 2*w.Writers)
	w.halt()

	// A store of its own on the direct connection, opened once the healed
	// cluster answers again.
	var reader *lxjs.EventStore
	if perr := poll(ctx, "the healed cluster to open a store", func() bool {
		reader, err = lxjs.New(ctx, newJS(t, admin), lxjs.Options{Registry: registry(), Replicas: 3, Logger: embeddedtest.Logger(t)})
		return err == nil
	}); perr != nil {
		t.Fatalf("%v: %v", perr, err)
	}
	report(t, "cluster R3 "+groupName(gc), len(schedule), w, reader, newJS(t, admin), stream, began, healed, store)
}

// clusterSchedule draws the cluster scenarios' schedule from the run's
// seed and the test's name, and logs it with the command to replay it.
func clusterSchedule(t *testing.T) []faults.Fault {
	t.Helper()
	rng := rand.New(rand.NewPCG(runSeed, streamOf(t.Name())))
	schedule := faults.NewSchedule(rng, faults.ScheduleOptions{
		Kinds: []faults.Kind{faults.StepDown, faults.Restart, faults.ClientCut, faults.Partition},
		Extra: 2, Nodes: nodes,
		MinPause: 500 * time.Millisecond, MaxPause: 2 * time.Second,
		MinHold: 500 * time.Millisecond, MaxHold: 8 * time.Second,
	})
	t.Logf("seed %d (replay: %s=%d go test -tags faults -run '%s' ./faults/); schedule:\n%s",
		runSeed, faults.SeedEnv, runSeed, t.Name(), faults.FormatSchedule(schedule))
	return schedule
}

// overlapAfter is the partition hold from which a client cut overlaps the
// partition (the seed decides the holds, so which partitions do).
const overlapAfter = 4 * time.Second

// injectClusterFaults runs the schedule against the cluster, each fault
// healed before the next, except that a partition held overlapAfter or
// longer has the clients' connections cut in its middle; it returns once
// the stream has a leader after the last.
func injectClusterFaults(t *testing.T, c *cluster, admin *nats.Conn, stream string, schedule []faults.Fault, began time.Time) {
	t.Helper()
	ctx := t.Context()
	for i, f := range schedule {
		if err := pause(ctx, f.Pause); err != nil {
			t.Fatal(err)
		}
		at := time.Since(began).Round(time.Millisecond)
		switch f.Kind {
		case faults.StepDown:
			leader := c.streamLeader(stream)
			if err := c.stepDown(admin, stream); err != nil {
				t.Fatal(err)
			}
			t.Logf("%v fault %d: node %d stepped down as leader of %s; now node %d", at, i+1, leader, stream, c.streamLeader(stream))
		case faults.Restart:
			node := c.target(f, stream)
			wasLeader := node == c.streamLeader(stream)
			if err := c.restart(node, f.Hold/2); err != nil {
				t.Fatal(err)
			}
			c.waitReady()
			t.Logf("%v fault %d: node %d (leader: %v) shut down for %v and restarted", at, i+1, node, wasLeader, (f.Hold / 2).Round(time.Millisecond))
		case faults.ClientCut:
			n := c.cutClients(f.Hold / 4)
			t.Logf("%v fault %d: %d client connections cut, new ones refused for %v", at, i+1, n, (f.Hold / 4).Round(time.Millisecond))
			if err := pause(ctx, f.Hold/4); err != nil {
				t.Fatal(err)
			}
		case faults.Partition:
			node := c.target(f, stream)
			wasLeader := node == c.streamLeader(stream)
			n, err := c.partition(node)
			if err != nil {
				t.Fatal(err)
			}
			if f.Hold < overlapAfter {
				if err := pause(ctx, f.Hold); err != nil {
					t.Fatal(err)
				}
			} else {
				// Faults overlap: the clients' connections are cut in the
				// middle of a long partition, so that they reconnect to a
				// cluster still split (to the isolated node, perhaps).
				if err := pause(ctx, f.Hold/2); err != nil {
					t.Fatal(err)
				}
				cut := c.cutClients(f.Hold / 8)
				t.Logf("%v fault %d, overlapping: %d client connections cut during the partition, new ones refused for %v",
					time.Since(began).Round(time.Millisecond), i+1, cut, (f.Hold / 8).Round(time.Millisecond))
				if err := pause(ctx, f.Hold-f.Hold/2); err != nil {
					t.Fatal(err)
				}
			}
			c.heal()
			c.waitReady()
			t.Logf("%v fault %d: node %d (leader: %v) partitioned for %v (%d route connections cut); stream leader now node %d",
				at, i+1, node, wasLeader, f.Hold.Round(time.Millisecond), n, c.streamLeader(stream))
		}
		if err := c.waitFor("a leader of "+stream, func() bool { return c.streamLeader(stream) >= 0 }); err != nil {
			t.Fatal(err)
		}
	}
}

func childScenario(t *testing.T, gc bool) {
	rng := rand.New(rand.NewPCG(runSeed, streamOf(t.Name())))
	schedule := faults.NewSchedule(rng, faults.ScheduleOptions{
		Kinds: []faults.Kind{faults.Kill, faults.ClientCut},
		Extra: 3, Nodes: 1,
		MinPause: 500 * time.Millisecond, MaxPause: 2 * time.Second,
		MinHold: 100 * time.Millisecond, MaxHold: 1500 * time.Millisecond,
	})
	t.Logf("seed %d (replay: %s=%d go test -tags faults -run '%s' ./faults/); schedule:\n%s",
		runSeed, faults.SeedEnv, runSeed, t.Name(), faults.FormatSchedule(schedule))

	ch := newChild(t)
	js := newJS(t, dial(t, ch.url()))
	ctx := t.Context()
	store, err := lxjs.New(ctx, js, lxjs.Options{Registry: registry(), Logger: embeddedtest.Logger(t),
		GroupCommit: lxjs.GroupCommit{Enabled: gc}})
	if err != nil {
		t.Fatal(err)
	}
	w := newScenarioWorkload(store, gc)
	began := time.Now()
	w.start(runSeed, t.Name())
	w.waitAcked(t, began, 20)

	for i, f := range schedule {
		if err := pause(ctx, f.Pause); err != nil {
			t.Fatal(err)
		}
		at := time.Since(began).Round(time.Millisecond)
		switch f.Kind {
		case faults.Kill:
			if err := ch.kill(f.Hold); err != nil {
				t.Fatal(err)
			}
			t.Logf("%v fault %d: child server SIGKILLed, restarted %v later", at, i+1, f.Hold.Round(time.Millisecond))
		case faults.ClientCut:
			n := ch.proxy.Cut(f.Hold)
			t.Logf("%v fault %d: %d client connections cut, new ones refused for %v", at, i+1, n, f.Hold.Round(time.Millisecond))
			if err := pause(ctx, f.Hold); err != nil {
				t.Fatal(err)
			}
		}
		// The next fault finds the server serving again.
		w.waitAcked(t, time.Now(), 1)
	}
	healed := time.Now()
	w.waitAcked(t, healed, 2*w.Writers)
	w.halt()
	report(t, "child R1 fsync "+groupName(gc), len(schedule), w, store, js, store.StreamName(), began, healed, store)
}

// report checks the outcome, adds the scenario's row to the table and
// fails the test on any problem.
func report(t *testing.T, scenario string, injected int, w *workload, reader *lxjs.EventStore, js jetstream.JetStream, stream string, began, healed time.Time, writer *lxjs.EventStore) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	ledger := w.rec.Appends()
	res := check(ctx, t, ledger, faults.CheckOptions{Store: reader, Value: valueOf, JetStream: js, Stream: stream})
	row := faults.NewRow(scenario, runSeed, injected, ledger, res, w.rec.LongestWithoutAck(began, healed))
	row.GroupedGroups = writer.GroupCommitStats().Groups
	addRow(row)
	t.Logf("%d updates (%d failed), %d events stored, %d acknowledged; %d failed appends stored anyway, %d not; group commit: %+v\n%s",
		w.updates.Load(), w.failures.Load(), res.Stored, res.AckedEvents, res.FailedStored, res.FailedAbsent, writer.GroupCommitStats(),
		faults.FormatTable([]faults.Row{row}))
	if row.Acked == 0 {
		t.Fatal("no append was acknowledged: the workload did not run")
	}
	if !res.Clean() {
		t.Errorf("the checker found problems (replay: %s=%d go test -tags faults -run '%s' ./faults/):\n  %s",
			faults.SeedEnv, runSeed, t.Name(), strings.Join(res.Problems, "\n  "))
	}
}

// check runs the checker, again while the store cannot be read yet: a
// healed cluster may still be electing the stream's leader.
func check(ctx context.Context, t *testing.T, ledger []faults.Append, opts faults.CheckOptions) *faults.Result {
	t.Helper()
	var res *faults.Result
	var err error
	if perr := poll(ctx, "the stream to be readable", func() bool {
		res, err = faults.Check(ctx, ledger, opts)
		return err == nil
	}); perr != nil {
		t.Fatalf("%v: %v", perr, err)
	}
	return res
}

func newJS(t *testing.T, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(fmt.Errorf("jetstream: %w", err))
	}
	return js
}
