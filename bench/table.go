package bench

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Met reports whether the figure's ratio meets its target; ok is false
// when it has no target (or one this package cannot read).
func (f Figure) Met() (met, ok bool) {
	op, val, found := strings.Cut(strings.TrimSpace(f.Target), " ")
	limit, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
	if !found || err != nil {
		return false, false
	}
	switch op {
	case ">=":
		return f.Ratio >= limit, true
	case "<=":
		return f.Ratio <= limit, true
	}
	return false, false
}

// WriteTable writes the figures as a table: name, ours, raw, unit, ratio
// (ours/raw), target and whether it is met, then the figures' notes.
func WriteTable(w io.Writer, figs []Figure) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tours\traw\tunit\tratio\ttarget\t")
	for _, f := range figs {
		mark := ""
		if met, ok := f.Met(); ok && met {
			mark = "ok"
		} else if ok {
			mark = "MISS"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.2f\t%s %s\t\n", f.Name, num(f.Ours), num(f.Raw), f.Unit, f.Ratio, f.Target, mark)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nratio = ours/raw: for events/s higher is better, for ms and allocs/op lower is better.")
	for _, f := range figs {
		if f.Note != "" {
			fmt.Fprintf(w, "  %s: %s\n", f.Name, f.Note)
		}
	}
}

// num formats a measurement with sensible precision.
func num(v float64) string {
	switch {
	case v >= 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}
