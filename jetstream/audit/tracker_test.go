package audit

import (
	"fmt"
	"slices"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/lexigram/events/platform"
)

// chainOf returns the messages of one aggregate's versions 1..n, chained.
func chainOf(id string, n int) []nats.Header {
	var out []nats.Header
	prev := ""
	for v := 1; v <= n; v++ {
		eid := fmt.Sprintf("%s-%d", id, v)
		out = append(out, nats.Header{"Lx-Id": {eid}, "Lx-Type": {"t"}, "Lx-Schema": {"1"}, "Lx-Version": {fmt.Sprint(v)}, "Lx-Prev": {prev}})
		prev = platform.ChainHash(prev, eid, "t", 1, uint64(v), []byte("body"))
	}
	return out
}

// TestGaps: positions missing from the stream are deletes when the
// stream lists them (at the start, or at the end for deletes made while
// the check ran), gaps when it does not; with too many deletes to list,
// they are counted against the stream's number of deletes.
func TestGaps(t *testing.T) {
	msgs := chainOf("a", 4)
	feed := func(deletedAtStart *deletedSet, positions []uint64, last uint64, deletedAtEnd *deletedSet) *Report {
		rep := &Report{}
		tr := newTracker("events", rep, 100, deletedAtStart, true, 1)
		for i, p := range positions {
			tr.observe(p, "events.doc.a", msgs[i], []byte("body"))
		}
		tr.end(last, deletedAtEnd)
		return rep
	}
	gaps := func(rep *Report) [][]uint64 {
		var out [][]uint64
		for _, f := range rep.Findings {
			if f.Kind == Gap {
				out = append(out, f.Positions)
			}
		}
		return out
	}

	// 1 2 _ _ 5 6 _ (7 was the last position): 3 deleted at the start, 7
	// deleted during the check, 4 never listed.
	rep := feed(newDeletedSet([]uint64{3}, 1, true), []uint64{1, 2, 5, 6}, 7, newDeletedSet([]uint64{3, 7}, 2, true))
	if g := gaps(rep); len(g) != 1 || !slices.Equal(g[0], []uint64{4, 4}) || rep.Deleted != 2 || rep.Counts[Gap] != 1 {
		t.Fatalf("listed deletes: gaps %v, deleted %d, %v", g, rep.Deleted, rep.Findings)
	}
	// Nothing listed at all: 3, 4 and 7 are gaps, 3..4 as one.
	rep = feed(newDeletedSet(nil, 0, true), []uint64{1, 2, 5, 6}, 7, newDeletedSet(nil, 0, true))
	if g := gaps(rep); len(g) != 2 || !slices.Equal(g[0], []uint64{3, 4}) || !slices.Equal(g[1], []uint64{7, 7}) {
		t.Fatalf("no deletes: gaps %v", g)
	}
	// Too many to list: three missing, the stream reports two deleted.
	rep = feed(newDeletedSet(nil, 2, false), []uint64{1, 2, 5, 6}, 7, newDeletedSet(nil, 2, false))
	if g := gaps(rep); len(g) != 1 || g[0] != nil || rep.Deleted != 2 || rep.Counts[Gap] != 1 {
		t.Fatalf("unlisted deletes: gaps %v, deleted %d, %v", g, rep.Deleted, rep.Findings)
	}
	rep = feed(newDeletedSet(nil, 3, false), []uint64{1, 2, 5, 6}, 7, newDeletedSet(nil, 3, false))
	if rep.Counts[Gap] != 0 || rep.Deleted != 3 {
		t.Fatalf("unlisted deletes that explain everything: %v, deleted %d", rep.Findings, rep.Deleted)
	}
}

// TestFindingsBounded: every finding is counted, only the first
// MaxFindings are kept.
func TestFindingsBounded(t *testing.T) {
	rep := &Report{}
	tr := newTracker("events", rep, 3, newDeletedSet(nil, 0, true), false, 1)
	for i := range 10 {
		tr.observe(uint64(i+1), "events.doc.x", nats.Header{"Lx-Id": {"x"}}, nil)
	}
	if rep.Counts[Malformed] != 10 || len(rep.Findings) != 3 || rep.Problems() != 10 || rep.Clean() {
		t.Fatalf("counts %v, %d findings kept", rep.Counts, len(rep.Findings))
	}
}
