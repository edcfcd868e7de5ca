package faults

import (
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Effects is what one consumer (a projection, a durable handler) left
// behind, to be held against the events it had to handle. Keys name an
// event's effect: its unique value for a read model keyed by value, its
// ID for a handler keyed by event ID.
type Effects struct {
	// Want maps the key of every event the consumer had to handle to a
	// description of the event for the report ("value w1.2.0 of
	// tally/hot-1 at position 17").
	Want map[string]string
	// Present counts each key's effects in the consumer's sink: 1 for an
	// event applied once, more for one applied again.
	Present map[string]int
	// Calls counts the handler's calls per key, committed or not: the
	// deliveries.
	Calls map[string]int
}

// EffectsResult is what CheckEffects found. Applied and Redelivered are
// figures; Skipped, Duplicated and Phantoms are problems.
type EffectsResult struct {
	Events      int // keys wanted
	Applied     int // handler calls
	Redelivered int // calls beyond one per wanted event
	Skipped     int // wanted events without an effect
	Duplicated  int // effects beyond one per event
	Phantoms    int // effects of events that are not wanted (not in the stream)
	Other       int // problems the caller found beside these: DLQ entries, counters that disagree

	Problems []string // the first problems, described, in key order
}

// Clean reports whether every event took effect exactly once and
// nothing else did.
func (r *EffectsResult) Clean() bool { return r.Skipped+r.Duplicated+r.Phantoms+r.Other == 0 }

// Problem counts a problem the caller found itself (a DLQ entry, a
// counter that disagrees) in counter and describes it.
func (r *EffectsResult) Problem(counter *int, format string, args ...any) {
	*counter++
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	}
}

// CheckEffects holds a consumer's effects against the events it had to
// handle: each wanted key present exactly once (else skipped or
// duplicated), no key present that is not wanted (phantom). Calls give
// the redeliveries: a consumer that is at least once may be called
// again for an event, as long as its effect stays single.
func CheckEffects(e Effects) *EffectsResult {
	r := &EffectsResult{Events: len(e.Want)}
	for _, n := range e.Calls {
		r.Applied += n
	}
	for _, k := range slices.Sorted(mapKeys(e.Want)) {
		if n := e.Calls[k]; n > 1 {
			r.Redelivered += n - 1
		}
		switch n := e.Present[k]; {
		case n == 0:
			r.Problem(&r.Skipped, "skipped: %s has no effect (%d handler calls)", e.Want[k], e.Calls[k])
		case n > 1:
			r.Duplicated += n - 2 // Problem adds one
			r.Problem(&r.Duplicated, "duplicated: %s took effect %d times", e.Want[k], n)
		}
	}
	for _, k := range slices.Sorted(mapKeys(e.Present)) {
		if _, ok := e.Want[k]; !ok && e.Present[k] > 0 {
			r.Problem(&r.Phantoms, "phantom: %q took effect %d times, yet no such event is in the stream", k, e.Present[k])
		}
	}
	return r
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// ConsumerRow is one consumer's line in the consumers' table.
type ConsumerRow struct {
	Scenario    string
	Consumer    string // e.g. "projection PostgreSQL (exactly once)"
	Seed        uint64
	Events      int           // events in the stream it had to handle
	Applied     int           // handler calls
	Redelivered int           // calls beyond one per event
	Skipped     int           // events without an effect
	Duplicated  int           // effects beyond one per event
	Problems    int           // skipped, duplicated, phantoms, DLQ entries and disagreeing counters
	Restarts    int           // FAULTED and started again (projections), or 0
	CatchUp     time.Duration // from the writers' stop until it had handled the last event
}

// NewConsumerRow summarises a consumer's check; extra counts problems
// found beside CheckEffects.
func NewConsumerRow(scenario, consumer string, seed uint64, res *EffectsResult) ConsumerRow {
	return ConsumerRow{
		Scenario: scenario, Consumer: consumer, Seed: seed, Events: res.Events, Applied: res.Applied,
		Redelivered: res.Redelivered, Skipped: res.Skipped, Duplicated: res.Duplicated,
		Problems: res.Skipped + res.Duplicated + res.Phantoms + res.Other,
	}
}

// FormatConsumerTable renders consumer rows as an aligned table.
func FormatConsumerTable(rows []ConsumerRow) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "scenario\tconsumer\tseed\tevents\tapplied\tredelivered\tskipped\tduplicated effects\tproblems\trestarts\tcaught up after\t")
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%v\t\n", r.Scenario, r.Consumer, r.Seed, r.Events, r.Applied,
			r.Redelivered, r.Skipped, r.Duplicated, r.Problems, r.Restarts, r.CatchUp.Round(time.Millisecond))
	}
	_ = w.Flush()
	return b.String()
}
