package faults

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"
)

// Row is one scenario's line in the summary table.
type Row struct {
	Scenario      string
	Seed          uint64
	Faults        int           // faults injected
	Attempted     int           // appends attempted (each repository save is one)
	Acked         int           // appends acknowledged
	Conflicts     int           // appends refused with a conflict
	Errors        int           // appends that failed otherwise
	Lost          int           // acknowledged events not stored
	Duplicated    int           // events stored twice
	Unavailable   time.Duration // the longest time no writer got an acknowledgement
	Problems      int           // everything the checker found, lost and duplicated included
	GroupedGroups uint64        // group commit's batches of several appends, when on
}

// NewRow summarises a scenario's ledger and check.
func NewRow(scenario string, seed uint64, faults int, ledger []Append, res *Result, unavailable time.Duration) Row {
	r := Row{Scenario: scenario, Seed: seed, Faults: faults, Attempted: len(ledger), Unavailable: unavailable}
	for _, a := range ledger {
		switch a.Outcome {
		case Acked:
			r.Acked++
		case Conflict:
			r.Conflicts++
		default:
			r.Errors++
		}
	}
	if res != nil {
		r.Lost, r.Duplicated = res.Lost, res.Duplicated
		r.Problems = res.Lost + res.Misplaced + res.Duplicated + res.Partial + res.FalseConflicts + res.Phantoms + res.Gaps + res.Forks + res.Disagreements + res.Audit
	}
	return r
}

// FormatTable renders rows as an aligned table.
func FormatTable(rows []Row) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "scenario\tseed\tfaults\tattempted\tacked\tconflicts\terrors\tlost\tduplicated\tproblems\tgroups\tlongest unavailable\t")
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%v\t\n", r.Scenario, r.Seed, r.Faults, r.Attempted, r.Acked,
			r.Conflicts, r.Errors, r.Lost, r.Duplicated, r.Problems, r.GroupedGroups, r.Unavailable.Round(time.Millisecond))
	}
	_ = w.Flush()
	return b.String()
}
