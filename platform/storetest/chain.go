package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/lexigram/events/platform"
)

// readChain drains a store's ReadChain for one aggregate.
func readChain(t *testing.T, cr platform.ChainReader, stream platform.StreamID) []platform.StoredEvent {
	t.Helper()
	var out []platform.StoredEvent
	for e, err := range cr.ReadChain(t.Context(), stream) {
		if err != nil {
			t.Fatalf("ReadChain(%v): %v", stream, err)
		}
		out = append(out, e)
	}
	return out
}

// checkChain fails unless the aggregate's stored events are versions
// from..to, each carrying the ChainHash of the one before (recomputed
// here from what is stored), the first carrying firstPrev.
func checkChain(t *testing.T, what string, cr platform.ChainReader, stream platform.StreamID, from, to uint64, firstPrev string) []platform.StoredEvent {
	t.Helper()
	chain := readChain(t, cr, stream)
	if uint64(len(chain)) != to-from+1 {
		t.Fatalf("%s: %d stored events, want versions %d..%d", what, len(chain), from, to)
	}
	prev := firstPrev
	for i, e := range chain {
		switch {
		case e.Version != from+uint64(i):
			t.Fatalf("%s: event %d is version %d, want %d", what, i, e.Version, from+uint64(i))
		case !e.Chained:
			t.Fatalf("%s: version %d carries no previous-hash", what, e.Version)
		case e.Prev != prev:
			t.Fatalf("%s: version %d (position %d) carries previous-hash %q, want %q (the hash of version %d as stored)", what, e.Version, e.Position, e.Prev, prev, e.Version-1)
		case len(e.Body) == 0 || e.ID == "" || e.Type == "" || e.Position == 0:
			t.Fatalf("%s: version %d is incomplete: %+v", what, e.Version, e)
		}
		if h := e.Hash(); len(h) != platform.ChainHashLen {
			t.Fatalf("%s: version %d hashes to %q, %d characters, want %d", what, e.Version, h, len(h), platform.ChainHashLen)
		}
		prev = e.Hash()
	}
	return chain
}

// testChain checks the hash chain of a store that keeps one: every append
// path (new aggregate, exact version with and without position, Any,
// several events at once, a store that did not see the earlier appends),
// conflicts, truncation, deletion and racing writers on many aggregates.
func testChain(t *testing.T, h *harness) {
	cr, ok := h.Store.(platform.ChainReader)
	if !ok {
		t.Skip("the store keeps no hash chain (it does not implement platform.ChainReader)")
	}
	ctx := t.Context()
	a := h.stream("chain")

	res := mustAppend(t, h.Store, a, platform.NoStream(), events("new", 1))
	mustAppend(t, h.Store, a, platform.ExactRevision(res.Revision()), events("batch", 3))
	mustAppend(t, h.Store, a, platform.Exact(4), events("exact", 1))
	res = mustAppend(t, h.Store, a, platform.Any(), events("any", 2))
	// A conflict writes nothing and leaves the chain to the winner.
	_, err := h.Store.Append(ctx, a, platform.Exact(3), events("loser", 1))
	checkConflict(t, "a stale append", err, a, platform.Exact(3), 7)
	_, err = h.Store.Append(ctx, a, platform.ExactRevision(platform.Revision{Version: 6, Position: res.LastPosition - 1}), events("loser", 2))
	checkConflict(t, "a stale revision", err, a, platform.ExactRevision(platform.Revision{Version: 6, Position: res.LastPosition - 1}), 7)
	res = mustAppend(t, h.Store, a, platform.ExactRevision(res.Revision()), events("after", 1))
	chain := checkChain(t, "appends of every kind", cr, a, 1, 8, "")

	// A second store over the same data has not seen the appends.
	if h.Reopen != nil {
		other := h.Reopen(t, h.Registry)
		res = mustAppend(t, other, a, platform.ExactRevision(res.Revision()), events("reopened", 2))
		res = mustAppend(t, other, a, platform.Exact(10), events("reopened", 1))
		mustAppend(t, h.Store, a, platform.ExactRevision(res.Revision()), events("first again", 1))
		chain = checkChain(t, "appends through a reopened store", cr, a, 1, 12, "")
	}
	last := chain[len(chain)-1].Version

	// Truncation keeps the chain: what stays still carries the hashes of
	// the events that went.
	if err := h.Store.Truncate(ctx, a, platform.Revision{Version: 5}); err != nil {
		t.Fatalf("Truncate: %v", err)
	}
	mustAppend(t, h.Store, a, platform.Exact(last), events("after truncate", 2))
	checkChain(t, "after Truncate through version 5", cr, a, 6, last+2, chain[5].Prev)

	// A deleted aggregate starts a new chain.
	if err := h.Store.Delete(ctx, a); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	res = mustAppend(t, h.Store, a, platform.NoStream(), events("reborn", 2))
	mustAppend(t, h.Store, a, platform.ExactRevision(res.Revision()), events("reborn", 1))
	checkChain(t, "after Delete", cr, a, 1, 3, "")

	// Racing writers on several aggregates, single and multi-event
	// appends, Any and exact revisions.
	const aggregates, rounds, racers = 6, 8, 4
	var wg sync.WaitGroup
	errs := make(chan error, aggregates*rounds*racers)
	for k := range aggregates {
		s := h.stream(fmt.Sprint("race-", k))
		wg.Go(func() {
			var rev platform.Revision
			for round := range rounds {
				var inner sync.WaitGroup
				won := make(chan platform.AppendResult, racers)
				for g := range racers {
					inner.Go(func() {
						exp := platform.ExactRevision(rev)
						if g == 0 && round%3 == 2 {
							exp = platform.Any()
						}
						r, err := h.Store.Append(ctx, s, exp, events(fmt.Sprint("r", round, "g", g), 1+g%3))
						if err == nil {
							won <- r
						} else if !errors.Is(err, platform.ErrConcurrency) {
							errs <- fmt.Errorf("%v round %d racer %d: %w", s, round, g, err)
						}
					})
				}
				inner.Wait()
				close(won)
				for r := range won {
					if r.LastVersion > rev.Version {
						rev = r.Revision()
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for k := range aggregates {
		s := h.stream(fmt.Sprint("race-", k))
		evs := read(t, h.Store, s, platform.Revision{})
		checkChain(t, fmt.Sprintf("racing writers on %v", s), cr, s, 1, evs[len(evs)-1].Version, "")
	}
}
