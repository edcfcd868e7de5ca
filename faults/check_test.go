//go:build faults

package faults_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lexigram/events/faults"
	"github.com/lexigram/events/platform"
)

// TestCheckerCleanRun: concurrent writers on the in-memory store, with
// conflicts on a shared aggregate, leave a ledger the checker finds
// clean.
func TestCheckerCleanRun(t *testing.T) {
	store := platform.NewMemoryEventStore(platform.MemoryOptions{Registry: registry()})
	w := newWorkload(store, 6, 2, 5)
	w.start(runSeed, t.Name())
	w.waitAcked(t, time.Time{}, 300)
	w.halt()
	ledger := w.rec.Appends()
	res := check(t.Context(), t, ledger, faults.CheckOptions{Store: store, Value: valueOf})
	row := faults.NewRow("memory store, no faults", runSeed, 0, ledger, res, 0)
	if !res.Clean() || row.Conflicts == 0 || res.AckedEvents != res.Stored {
		t.Fatalf("want a clean check with conflicts and every stored event acknowledged; got %+v, %d conflicts", res, row.Conflicts)
	}
}

// TestCheckerFindsProblems plants each problem the checker looks for
// and checks that it is found, and counted as what it is.
func TestCheckerFindsProblems(t *testing.T) {
	ctx := t.Context()
	type planted struct {
		name  string
		plant func(t *testing.T, rec *faults.Recorder, raw platform.EventStore) []faults.Append
		count func(r *faults.Result) int
	}
	cases := []planted{
		{"lost", func(t *testing.T, rec *faults.Recorder, raw platform.EventStore) []faults.Append {
			appendValues(t, rec, "a", 0, "v1", "v2")
			mustDo(t, raw.Delete(ctx, stream("a")))
			appendValues(t, raw, "a", 0, "x1", "x2") // the versions are back, with other events
			return rec.Appends()
		}, func(r *faults.Result) int { return r.Lost }},
		{"duplicated value", func(t *testing.T, rec *faults.Recorder, _ platform.EventStore) []faults.Append {
			appendValues(t, rec, "a", 0, "v1")
			appendValues(t, rec, "b", 0, "v1")
			return rec.Appends()
		}, func(r *faults.Result) int { return r.Duplicated }},
		{"phantom", func(t *testing.T, rec *faults.Recorder, raw platform.EventStore) []faults.Append {
			appendValues(t, rec, "a", 0, "v1")
			appendValues(t, raw, "a", 1, "v2")
			return rec.Appends()
		}, func(r *faults.Result) int { return r.Phantoms }},
		{"conflict though stored", func(t *testing.T, rec *faults.Recorder, _ platform.EventStore) []faults.Append {
			appendValues(t, rec, "a", 0, "v1")
			ledger := rec.Appends()
			ledger[0].Outcome, ledger[0].Err = faults.Conflict, errors.New("planted")
			return ledger
		}, func(r *faults.Result) int { return r.FalseConflicts }},
		{"conflict nobody won", func(t *testing.T, rec *faults.Recorder, _ platform.EventStore) []faults.Append {
			appendValues(t, rec, "a", 0, "v1")
			return append(rec.Appends(), faults.Append{Stream: stream("a"), Expected: 1, Checked: true, EventIDs: []string{platform.NewEventID()},
				Started: time.Now(), Ended: time.Now(), Outcome: faults.Conflict, Err: errors.New("planted")})
		}, func(r *faults.Result) int { return r.FalseConflicts }},
		{"conflict before the winner began", func(t *testing.T, rec *faults.Recorder, _ platform.EventStore) []faults.Append {
			refused := faults.Append{Stream: stream("a"), Expected: 0, Checked: true, EventIDs: []string{platform.NewEventID()},
				Started: time.Now(), Ended: time.Now(), Outcome: faults.Conflict, Err: errors.New("planted")}
			appendValues(t, rec, "a", 0, "v1")
			return append(rec.Appends(), refused)
		}, func(r *faults.Result) int { return r.FalseConflicts }},
		{"partial", func(t *testing.T, rec *faults.Recorder, _ platform.EventStore) []faults.Append {
			appendValues(t, rec, "a", 0, "v1")
			ledger := rec.Appends()
			ledger[0].EventIDs = append(ledger[0].EventIDs, platform.NewEventID())
			ledger[0].Outcome, ledger[0].Err = faults.Failed, errors.New("planted")
			return ledger
		}, func(r *faults.Result) int { return r.Partial }},
		{"misplaced", func(t *testing.T, rec *faults.Recorder, _ platform.EventStore) []faults.Append {
			appendValues(t, rec, "a", 0, "v1")
			ledger := rec.Appends()
			ledger[0].Result.FirstPosition++
			return ledger
		}, func(r *faults.Result) int { return r.Misplaced }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw := platform.NewMemoryEventStore(platform.MemoryOptions{Registry: registry()})
			rec := faults.NewRecorder(raw)
			ledger := c.plant(t, rec, raw)
			res, err := faults.Check(ctx, ledger, faults.CheckOptions{Store: raw, Value: valueOf})
			if err != nil {
				t.Fatal(err)
			}
			if res.Clean() || c.count(res) == 0 {
				t.Fatalf("planted %s: not found: %+v", c.name, res)
			}
			t.Logf("found: %v", res.Problems)
		})
	}
}

func stream(id string) platform.StreamID { return platform.StreamID{Type: "tally", ID: id} }

func appendValues(t *testing.T, store platform.EventStore, id string, expected uint64, values ...string) {
	t.Helper()
	var evs []platform.Envelope
	for _, v := range values {
		evs = append(evs, platform.Envelope{ID: platform.NewEventID(), Event: valueAdded{Value: v}})
	}
	if _, err := store.Append(context.Background(), stream(id), platform.Exact(expected), evs); err != nil {
		t.Fatal(err)
	}
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
