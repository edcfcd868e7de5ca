package faults

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/jetstream/audit"
	"github.com/lexigram/events/platform"
)

// maxProblems bounds the problems a Result describes; all are counted.
const maxProblems = 40

// Result is what the checker found. Every count but the first four is a
// problem.
type Result struct {
	Stored       int // events in the stream
	AckedEvents  int // events of acknowledged appends
	FailedStored int // appends that failed and are stored all the same, once: allowed
	FailedAbsent int // appends that failed and are not stored: allowed

	Lost           int // events of acknowledged appends not stored
	Misplaced      int // acknowledged events stored elsewhere than the store said
	Duplicated     int // extra copies of an event ID or of a value
	Partial        int // appends stored in part: an atomic append split
	FalseConflicts int // conflicts reported for an append that was stored, or that no other writer beat
	Phantoms       int // stored events no append in the ledger wrote
	Gaps           int // missing aggregate versions
	Forks          int // aggregate versions stored twice
	Disagreements  int // the aggregate read and the global read differ
	Audit          int // problems the integrity audit found

	Problems []string // the first problems, described
}

// Clean reports whether nothing was lost, doubled, split, forked or
// falsely refused.
func (r *Result) Clean() bool {
	return r.Lost+r.Misplaced+r.Duplicated+r.Partial+r.FalseConflicts+r.Phantoms+r.Gaps+r.Forks+r.Disagreements+r.Audit == 0
}

func (r *Result) problem(counter *int, format string, args ...any) {
	*counter++
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	}
}

// CheckOptions say what to check the ledger against.
type CheckOptions struct {
	// Store is read back: the global order and each aggregate.
	Store platform.EventStore
	// Value returns an event's unique value: no two stored events may
	// share one.
	Value func(platform.Envelope) string
	// JetStream and Stream, when set, run the integrity audit
	// (jetstream/audit) over the stream, with the acknowledged heads as
	// its ledger for lost postfixes.
	JetStream jetstream.JetStream
	Stream    string
}

// stored is one event as read back.
type stored struct {
	platform.Envelope
	value string
}

// Check reads everything back and holds it against the ledger:
//
//   - every event of an acknowledged append is stored once, at the
//     version and position the store answered (else lost, misplaced);
//   - no event ID and no value is stored twice (duplicated);
//   - an append that failed is stored whole, once, at the version it
//     expected, or not at all (partial, misplaced);
//   - an append refused with a conflict is not stored, and another
//     writer's append, begun before the refusal came back, holds the
//     version it expected to write (false conflict);
//   - every stored event comes from an append in the ledger (phantom);
//   - each aggregate's versions run 1, 2, 3... with no gap and no fork,
//     and reading it alone gives what the global order holds for it;
//   - the integrity audit finds nothing.
//
// An error means the store could not be read; what was checked is lost.
func Check(ctx context.Context, ledger []Append, opts CheckOptions) (*Result, error) {
	res := &Result{}
	var all []stored
	for e, err := range opts.Store.ReadAll(ctx, 0) {
		if err != nil {
			return nil, fmt.Errorf("faults: check: read all: %w", err)
		}
		all = append(all, stored{Envelope: e, value: opts.Value(e)})
	}
	res.Stored = len(all)

	byID := map[string][]stored{}
	byValue := map[string]int{}
	perStream := map[platform.StreamID][]stored{}
	var lastPos uint64
	for _, e := range all {
		if e.Position <= lastPos {
			res.problem(&res.Disagreements, "global order: position %d after %d", e.Position, lastPos)
		}
		lastPos = e.Position
		byID[e.ID] = append(byID[e.ID], e)
		byValue[e.value]++
		perStream[e.Stream] = append(perStream[e.Stream], e)
	}
	for id, copies := range byID {
		if len(copies) > 1 {
			res.problem(&res.Duplicated, "event %s stored %d times, at positions %v", id, len(copies), positions(copies))
		}
	}
	for v, n := range byValue {
		if n > 1 {
			res.problem(&res.Duplicated, "value %q stored %d times", v, n)
		}
	}

	streams := map[platform.StreamID]bool{}
	for s := range perStream {
		streams[s] = true
	}
	for _, a := range ledger {
		streams[a.Stream] = true
	}
	atVersion := map[platform.StreamID]map[uint64]stored{}
	for _, s := range slices.SortedFunc(func(yield func(platform.StreamID) bool) {
		for s := range streams {
			if !yield(s) {
				return
			}
		}
	}, func(a, b platform.StreamID) int { return cmp.Or(cmp.Compare(a.Type, b.Type), cmp.Compare(a.ID, b.ID)) }) {
		if err := checkStream(ctx, opts, s, perStream[s], res, atVersion); err != nil {
			return nil, err
		}
	}

	written := map[string]*Append{}
	for i := range ledger {
		for _, id := range ledger[i].EventIDs {
			written[id] = &ledger[i]
		}
	}
	for i := range ledger {
		checkAppend(&ledger[i], byID, atVersion, written, res)
	}
	for _, e := range all {
		if written[e.ID] == nil {
			res.problem(&res.Phantoms, "event %s (%s version %d, position %d) was written by no append in the ledger", e.ID, e.Stream, e.Version, e.Position)
		}
	}

	if opts.JetStream != nil {
		if err := runAudit(ctx, opts, ledger, res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// checkStream reads one aggregate on its own and checks its versions.
func checkStream(ctx context.Context, opts CheckOptions, s platform.StreamID, global []stored, res *Result, atVersion map[platform.StreamID]map[uint64]stored) error {
	var own []platform.Envelope
	for e, err := range opts.Store.Read(ctx, s, platform.Revision{}) {
		if err != nil {
			return fmt.Errorf("faults: check: read %s: %w", s, err)
		}
		own = append(own, e)
	}
	if len(own) != len(global) {
		res.problem(&res.Disagreements, "%s: reading it gives %d events, the global order %d", s, len(own), len(global))
	}
	for i := range min(len(own), len(global)) {
		if own[i].ID != global[i].ID || own[i].Version != global[i].Version || own[i].Position != global[i].Position {
			res.problem(&res.Disagreements, "%s: event %d is %s v%d @%d read alone, %s v%d @%d in the global order", s, i,
				own[i].ID, own[i].Version, own[i].Position, global[i].ID, global[i].Version, global[i].Position)
			break
		}
	}
	versions := map[uint64]stored{}
	atVersion[s] = versions
	var want uint64 = 1
	for _, e := range global {
		switch {
		case e.Version < want:
			res.problem(&res.Forks, "%s: version %d stored again at position %d (after version %d)", s, e.Version, e.Position, want-1)
		case e.Version > want:
			res.problem(&res.Gaps, "%s: versions %d..%d missing before position %d", s, want, e.Version-1, e.Position)
			want = e.Version + 1
		default:
			want++
		}
		if _, ok := versions[e.Version]; !ok {
			versions[e.Version] = e
		}
	}
	return nil
}

// checkAppend holds one append's outcome against what is stored.
func checkAppend(a *Append, byID map[string][]stored, atVersion map[platform.StreamID]map[uint64]stored, written map[string]*Append, res *Result) {
	present := 0
	for _, id := range a.EventIDs {
		if len(byID[id]) > 0 {
			present++
		}
	}
	switch a.Outcome {
	case Acked:
		res.AckedEvents += len(a.EventIDs)
		for i, id := range a.EventIDs {
			copies := byID[id]
			if len(copies) == 0 {
				res.problem(&res.Lost, "acknowledged event %s of %s (version %d, position %d) is not stored", id, a.Stream,
					a.Result.FirstVersion+uint64(i), a.Result.FirstPosition+uint64(i))
				continue
			}
			e := copies[0]
			if e.Stream != a.Stream || e.Version != a.Result.FirstVersion+uint64(i) || e.Position != a.Result.FirstPosition+uint64(i) {
				res.problem(&res.Misplaced, "acknowledged event %s: the store answered %s version %d position %d; it is stored as %s version %d position %d",
					id, a.Stream, a.Result.FirstVersion+uint64(i), a.Result.FirstPosition+uint64(i), e.Stream, e.Version, e.Position)
			}
		}
	case Failed:
		switch {
		case present == 0:
			res.FailedAbsent++
		case present < len(a.EventIDs):
			res.problem(&res.Partial, "failed append to %s: %d of its %d events are stored (%v)", a.Stream, present, len(a.EventIDs), a.Err)
		default:
			res.FailedStored++
			if !a.Checked {
				return
			}
			for i, id := range a.EventIDs {
				if e := byID[id][0]; e.Version != a.Expected+1+uint64(i) {
					res.problem(&res.Misplaced, "failed append to %s expected version %d, yet its event %d is stored at version %d", a.Stream, a.Expected, i, e.Version)
				}
			}
		}
	case Conflict:
		if present > 0 {
			res.problem(&res.FalseConflicts, "append to %s at version %d was refused as a conflict (%v), yet %d of its events are stored", a.Stream, a.Expected, a.Err, present)
			return
		}
		if !a.Checked {
			return
		}
		winner, ok := atVersion[a.Stream][a.Expected+1]
		if !ok {
			res.problem(&res.FalseConflicts, "append to %s at version %d was refused as a conflict (%v), yet nothing is stored at version %d", a.Stream, a.Expected, a.Err, a.Expected+1)
			return
		}
		if w := written[winner.ID]; w != nil && w.Started.After(a.Ended) {
			res.problem(&res.FalseConflicts, "append to %s at version %d was refused as a conflict at %s after %v (%v); the append holding version %d began later, at %s",
				a.Stream, a.Expected, a.Ended.Format("15:04:05.000000"), a.Ended.Sub(a.Started).Round(time.Millisecond), a.Err, a.Expected+1, w.Started.Format("15:04:05.000000"))
		}
	}
}

// runAudit runs the integrity audit with the acknowledged heads.
func runAudit(ctx context.Context, opts CheckOptions, ledger []Append, res *Result) error {
	heads := map[platform.StreamID]uint64{}
	for _, a := range ledger {
		if a.Outcome == Acked {
			heads[a.Stream] = max(heads[a.Stream], a.Result.LastVersion)
		}
	}
	rep, err := audit.Check(ctx, opts.JetStream, audit.Options{Stream: opts.Stream, ExpectedHeads: heads})
	if err != nil {
		return fmt.Errorf("faults: check: integrity audit: %w", err)
	}
	for _, f := range rep.Findings {
		if f.Kind.Problem() {
			res.problem(&res.Audit, "audit: %s", f)
		}
	}
	if n := rep.Problems(); n > res.Audit {
		res.Audit = n // findings beyond the report's bound are counted, not kept
	}
	if rep.Events != uint64(res.Stored) {
		res.problem(&res.Audit, "audit: checked %d events, the global read gave %d", rep.Events, res.Stored)
	}
	return nil
}

func positions(copies []stored) []uint64 {
	ps := make([]uint64, len(copies))
	for i, c := range copies {
		ps[i] = c.Position
	}
	return ps
}
