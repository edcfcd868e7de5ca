package faults

import (
	"context"
	"errors"
	"iter"
	"slices"
	"sync"
	"time"

	"github.com/lexigram/events/platform"
)

// Outcome is what the store answered to one append.
type Outcome int

// The outcomes of an append.
const (
	Acked    Outcome = iota // stored, the store said where
	Conflict                // a *platform.ConcurrencyError: nothing stored, another writer was first
	Failed                  // any other error: the events may or may not be stored
)

func (o Outcome) String() string {
	switch o {
	case Acked:
		return "acked"
	case Conflict:
		return "conflict"
	default:
		return "failed"
	}
}

// Append is one append the store was asked for, and its answer.
type Append struct {
	Stream platform.StreamID
	// Expected is the version the append expected the aggregate at;
	// Checked is false for platform.Any, which expects none.
	Expected uint64
	Checked  bool
	EventIDs []string
	Started  time.Time
	Ended    time.Time
	Outcome  Outcome
	Result   platform.AppendResult // when Acked
	Err      error                 // when not Acked
}

// Recorder is a platform.EventStore that passes everything to the store
// underneath and records every append with its outcome: the ledger the
// checker holds the stored history against. Put it under the
// repository, so that each save the repository retries on a conflict
// is recorded as the append it is.
type Recorder struct {
	store platform.EventStore

	mu      sync.Mutex
	appends []Append
	acks    []time.Time
}

// NewRecorder records the appends made through it to store.
func NewRecorder(store platform.EventStore) *Recorder {
	return &Recorder{store: store}
}

// Append records the append and its outcome.
func (r *Recorder) Append(ctx context.Context, stream platform.StreamID, expected platform.ExpectedVersion, events []platform.Envelope) (platform.AppendResult, error) {
	a := Append{Stream: stream, Started: time.Now()}
	a.Expected, a.Checked = expected.Expected()
	for _, e := range events {
		a.EventIDs = append(a.EventIDs, e.ID)
	}
	res, err := r.store.Append(ctx, stream, expected, events)
	a.Ended = time.Now()
	switch {
	case err == nil:
		a.Outcome, a.Result = Acked, res
	case errors.Is(err, platform.ErrConcurrency):
		a.Outcome, a.Err = Conflict, err
	default:
		a.Outcome, a.Err = Failed, err
	}
	r.mu.Lock()
	r.appends = append(r.appends, a)
	if err == nil {
		r.acks = append(r.acks, a.Ended)
	}
	r.mu.Unlock()
	return res, err
}

// Read passes through.
func (r *Recorder) Read(ctx context.Context, stream platform.StreamID, after platform.Revision) iter.Seq2[platform.Envelope, error] {
	return r.store.Read(ctx, stream, after)
}

// ReadAll passes through.
func (r *Recorder) ReadAll(ctx context.Context, after uint64) iter.Seq2[platform.Envelope, error] {
	return r.store.ReadAll(ctx, after)
}

// Delete passes through; the checker assumes nothing is deleted.
func (r *Recorder) Delete(ctx context.Context, stream platform.StreamID) error {
	return r.store.Delete(ctx, stream)
}

// Truncate passes through; the checker assumes nothing is truncated.
func (r *Recorder) Truncate(ctx context.Context, stream platform.StreamID, through platform.Revision) error {
	return r.store.Truncate(ctx, stream, through)
}

// Appends returns a copy of the ledger so far, in the order the answers came.
func (r *Recorder) Appends() []Append {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.appends)
}

// AckedSince counts the appends acknowledged after t.
func (r *Recorder) AckedSince(t time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, a := range r.acks {
		if a.After(t) {
			n++
		}
	}
	return n
}

// LongestWithoutAck is the longest time between from and to during which
// no append was acknowledged: how long the store was unavailable to
// every writer at once, at worst.
func (r *Recorder) LongestWithoutAck(from, to time.Time) time.Duration {
	r.mu.Lock()
	acks := slices.Clone(r.acks)
	r.mu.Unlock()
	slices.SortFunc(acks, func(a, b time.Time) int { return a.Compare(b) })
	longest, last := time.Duration(0), from
	for _, t := range acks {
		if t.Before(from) || t.After(to) {
			continue
		}
		longest = max(longest, t.Sub(last))
		last = t
	}
	return max(longest, to.Sub(last))
}
