package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/embedded/embeddedtest"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// newR3 is an R3 file store on a three-node in-process cluster.
func newR3(t *testing.T) (*embeddedtest.TestCluster, *lxjs.EventStore) {
	t.Helper()
	c := embeddedtest.Cluster(t)
	js, err := jetstream.New(c.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	st, err := lxjs.New(context.Background(), js, lxjs.Options{Registry: testRegistry(), Replicas: 3, Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return c, st
}

// TestFailover shuts the stream leader down during a run of appends:
// appends go on after the election, every acknowledged event is there
// afterwards, and conflicts are still detected.
func TestFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("leader elections take seconds")
	}
	c, st := newR3(t)
	ctx := context.Background()
	const aggregates = 4
	revs := make([]platform.Revision, aggregates)
	var acked []string // event IDs the store acknowledged
	appendOne := func(i int) error {
		id := platform.StreamID{Type: "order", ID: fmt.Sprint("agg-", i%aggregates)}
		ev := []platform.Envelope{{ID: platform.NewEventID(), Event: itemAdded{SKU: "s", Qty: i}}}
		deadline := time.Now().Add(30 * time.Second)
		for {
			// Retrying with the same event ID is safe: the store recognises
			// an append that landed before its answer was lost.
			res, err := st.Append(ctx, id, platform.ExactRevision(revs[i%aggregates]), ev)
			if err == nil {
				revs[i%aggregates] = res.Revision()
				acked = append(acked, ev[0].ID)
				return nil
			}
			if errors.Is(err, platform.ErrConcurrency) || time.Now().After(deadline) {
				return fmt.Errorf("append %d: %w", i, err)
			}
		}
	}
	for i := 0; i < 40; i++ {
		if err := appendOne(i); err != nil {
			t.Fatal(err)
		}
	}
	leader := c.StreamLeader(st.StreamName())
	if leader < 0 {
		t.Fatal("no stream leader")
	}
	c.Shutdown(leader)
	for i := 40; i < 120; i++ {
		if err := appendOne(i); err != nil {
			t.Fatalf("after the leader (node %d) went down: %v", leader, err)
		}
	}
	if now := c.StreamLeader(st.StreamName()); now == leader || now < 0 {
		t.Fatalf("stream leader after failover: %d (was %d)", now, leader)
	}

	stored := map[string]bool{}
	for a := 0; a < aggregates; a++ {
		id := platform.StreamID{Type: "order", ID: fmt.Sprint("agg-", a)}
		for i, e := range readStream(t, st, id) {
			if e.Version != uint64(i+1) {
				t.Fatalf("%s: event %d has version %d", id, i, e.Version)
			}
			if stored[e.ID] {
				t.Fatalf("event %s stored twice", e.ID)
			}
			stored[e.ID] = true
		}
	}
	for _, id := range acked {
		if !stored[id] {
			t.Fatalf("acknowledged event %s is missing after failover", id)
		}
	}
	if len(stored) != len(acked) {
		t.Fatalf("%d events stored, %d acknowledged", len(stored), len(acked))
	}
	_, err := st.Append(ctx, platform.StreamID{Type: "order", ID: "agg-0"}, platform.Exact(1), events(itemAdded{SKU: "stale"}))
	if !errors.Is(err, platform.ErrConcurrency) {
		t.Fatalf("stale append after failover: want a conflict, got %v", err)
	}
	c.Restart(leader)
}

// TestReadSeesOwnAppendOnR3: any replica answers a direct get, and a
// follower may not have applied the newest append or purge yet; a read
// right after them still sees them.
func TestReadSeesOwnAppendOnR3(t *testing.T) {
	if testing.Short() {
		t.Skip("three-node cluster")
	}
	_, st := newR3(t)
	ctx := t.Context()
	for i := range 200 {
		id := platform.StreamID{Type: "order", ID: strconv.Itoa(i)}
		res, err := st.Append(ctx, id, platform.NoStream(), events(orderPlaced{"c"}, itemAdded{SKU: "a"}))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Append(ctx, id, platform.ExactRevision(res.Revision()), events(itemAdded{SKU: "b"})); err != nil {
			t.Fatal(err)
		}
		if got := readStream(t, st, id); len(got) != 3 {
			t.Fatalf("aggregate %d: read %d events right after appending 3", i, len(got))
		}
		// A purge takes longer to apply on a follower than an append.
		if err := st.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Append(ctx, id, platform.NoStream(), events(orderPlaced{"again"})); err != nil {
			t.Fatal(err)
		}
		if got := readStream(t, st, id); len(got) != 1 || got[0].Event != (orderPlaced{"again"}) {
			t.Fatalf("aggregate %d: read %d events right after deleting it and appending 1", i, len(got))
		}
	}
}
