//go:build faults

package faults_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/faults"
	lxjs "github.com/lexigram/events/jetstream"
)

// TestNoFalseConflictWhenLeaderPartitioned has writers append in pairs
// to an aggregate per pair and partitions the stream leader from the
// other two nodes while they write. A conflict is true when the version
// it expected to write is held by another append begun before the
// refusal came back; the checker reports any other as false. A false
// conflict is the store answering "another writer was first" for what
// is in fact "I could not find out" (the other writer's append was
// stuck on the partitioned leader and never stored): the caller reloads
// and retries, or tells its user someone else changed the aggregate,
// where it should have been told the store is unavailable.
func TestNoFalseConflictWhenLeaderPartitioned(t *testing.T) {
	c := newCluster(t)
	admin := c.admin()
	ctx := t.Context()
	store, err := lxjs.New(ctx, newJS(t, c.connect()), lxjs.Options{Registry: registry(), Replicas: 3, Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	stream := store.StreamName()
	const writers = 8
	w := newWorkload(store, writers, 1, 1)
	w.pairs = true
	began := time.Now()
	w.start(runSeed, t.Name())
	w.waitAcked(t, began, 20)
	rng := rand.New(rand.NewPCG(runSeed, streamOf(t.Name())))
	for round := range 2 {
		leader := c.streamLeader(stream)
		if leader < 0 {
			leader = rng.IntN(nodes)
		}
		if _, err := c.partition(leader); err != nil {
			t.Fatal(err)
		}
		hold := 5*time.Second + time.Duration(rng.Int64N(int64(2*time.Second)))
		if err := pause(ctx, hold); err != nil {
			t.Fatal(err)
		}
		c.heal()
		c.waitReady()
		if err := c.waitFor("a leader of "+stream, func() bool { return c.streamLeader(stream) >= 0 }); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: the stream leader, node %d, partitioned for %v; leader now node %d", round+1, leader, hold.Round(time.Millisecond), c.streamLeader(stream))
		w.waitAcked(t, time.Now(), writers)
	}
	healed := time.Now()
	w.halt()
	ledger := w.rec.Appends()
	res := check(ctx, t, ledger, faults.CheckOptions{Store: store, Value: valueOf, JetStream: newJS(t, admin), Stream: stream})
	row := faults.NewRow("cluster R3 paired writers, leader partitioned", runSeed, 2, ledger, res, w.rec.LongestWithoutAck(began, healed))
	addRow(row)
	t.Log("\n" + faults.FormatTable([]faults.Row{row}))
	if !res.Clean() {
		t.Errorf("%s", fmt.Sprintf("the checker found problems (replay: %s=%d go test -tags faults -run '%s' ./faults/):\n  %s",
			faults.SeedEnv, runSeed, t.Name(), strings.Join(res.Problems, "\n  ")))
	}
}
