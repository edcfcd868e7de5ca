package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/lexigram/events/handlers/durable"
	"github.com/lexigram/events/jetstream/eventio"
)

// bulkDLQ makes `dlq replay` or `dlq discard`: for the IDs given, or for
// every entry of one handler (--handler NAME --all, optionally --since),
// after a confirmation, with progress.
func bulkDLQ(open func(*cobra.Command) (*durable.DLQ, func(), error), use, short, verb string,
	act func(context.Context, *durable.DLQ, durable.ID) error) *cobra.Command {
	var handler, since string
	var all, yes bool
	cmd := &cobra.Command{
		Use:   use + " [ID... | --handler NAME --all [--since TIME]]",
		Short: short,
		Example: fmt.Sprintf("  lexigram dlq %[1]s billing/1234 billing/1240\n"+
			"  lexigram dlq %[1]s --handler billing --all --since 2h    # after an outage: every entry of the last two hours", use),
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := parseIDs(args)
			if err != nil {
				return err
			}
			switch {
			case len(ids) > 0 && (all || handler != "" || since != ""):
				return fmt.Errorf("dlq %s: give entry IDs or --handler NAME --all, not both", use)
			case len(ids) == 0 && !all:
				return fmt.Errorf("dlq %s: give the entry IDs (lexigram dlq list shows them), or --handler NAME --all for every entry of a handler", use)
			case all && handler == "":
				return fmt.Errorf("dlq %s --all: name the handler with --handler NAME (every handler at once is not offered: replays go to running handlers one by one)", use)
			}
			cutoff, err := parseSince(since, time.Now())
			if err != nil {
				return err
			}
			q, done, err := open(cmd)
			if err != nil {
				return err
			}
			defer done()
			if all {
				if ids, err = entriesOf(cmd.Context(), q, handler, cutoff); err != nil {
					return err
				}
				if len(ids) == 0 {
					fmt.Fprintf(cmd.OutOrStdout(), "no dead letters for handler %s%s\n", handler, sinceText(since))
					return nil
				}
				question := fmt.Sprintf("%s %d dead letters of handler %s%s?", use, len(ids), handler, sinceText(since))
				if err := confirm(cmd.InOrStdin(), cmd.ErrOrStderr(), question, yes); err != nil {
					return err
				}
			}
			p := newProgress(cmd.ErrOrStderr(), verb, len(ids), len(ids) > 1 && all)
			for i, id := range ids {
				if err := act(cmd.Context(), q, id); err != nil {
					return fmt.Errorf("%s %s: %w (%d of %d done; run the same command again for the rest)", use, id, err, i, len(ids))
				}
				if !all {
					fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", verb, id)
				}
				p.step(i + 1)
			}
			if all {
				fmt.Fprintf(cmd.OutOrStdout(), "%s %d dead letters of handler %s\n", verb, len(ids), handler)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&handler, "handler", "", "with --all: the handler whose entries to take")
	cmd.Flags().BoolVar(&all, "all", false, "every entry of --handler (after a confirmation)")
	cmd.Flags().StringVar(&since, "since", "", "with --all: only entries dead-lettered since this time (RFC 3339, or a duration such as 2h meaning that long ago)")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}

func parseIDs(args []string) ([]durable.ID, error) {
	ids := make([]durable.ID, len(args))
	for i, a := range args {
		var err error
		if ids[i], err = durable.ParseID(a); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// parseSince reads --since: a time, or a duration before now. "" is no bound.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--since %q: use an RFC 3339 time (2026-12-07T06:00:00Z) or a positive duration (90m, 2h)", s)
}

func sinceText(since string) string {
	if since == "" {
		return ""
	}
	return " since " + since
}

// entriesOf lists the IDs of handler's entries written at or after cutoff.
func entriesOf(ctx context.Context, q *durable.DLQ, handler string, cutoff time.Time) ([]durable.ID, error) {
	var ids []durable.ID
	for e, err := range q.List(ctx, handler) {
		if err != nil {
			return nil, err
		}
		if !e.Time.Before(cutoff) {
			ids = append(ids, e.ID)
		}
	}
	return ids, nil
}

// confirm asks question on a terminal; elsewhere it needs --yes.
func confirm(in io.Reader, out io.Writer, question string, yes bool) error {
	if yes {
		return nil
	}
	if f, ok := in.(*os.File); !ok || !isTerminal(f) {
		return errors.New(question + " Not on a terminal to ask: add --yes to go ahead")
	}
	fmt.Fprintf(out, "%s [y/N] ", question)
	answer, _ := bufio.NewReader(in).ReadString('\n')
	if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
		return errors.New("stopped: nothing was changed")
	}
	return nil
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// progress prints lines such as "replayed 120/10000 (950/s)" on long
// work, at most one a second and the last.
type progress struct {
	out   io.Writer
	verb  string
	total int
	show  bool
	began time.Time
	last  time.Time
}

func newProgress(out io.Writer, verb string, total int, show bool) *progress {
	now := time.Now()
	return &progress{out: out, verb: verb, total: total, show: show, began: now, last: now}
}

// due reports whether a line is due now; final lines always are.
func (p *progress) due(final bool) bool {
	now := time.Now()
	if !p.show || (!final && now.Sub(p.last) < time.Second) {
		return false
	}
	p.last = now
	return true
}

func (p *progress) rate(n int) float64 {
	return float64(n) / max(time.Since(p.began).Seconds(), 1e-3)
}

// step reports done of a known total.
func (p *progress) step(done int) {
	if p.due(done >= p.total) {
		fmt.Fprintf(p.out, "%s %d/%d (%.0f/s)\n", p.verb, done, p.total, p.rate(done))
	}
}

// count reports a count with no known total.
func (p *progress) count(n int) {
	if p.due(false) {
		fmt.Fprintf(p.out, "%s %d (%.0f/s)\n", p.verb, n, p.rate(n))
	}
}

// bytes reports input read of size (0: unknown) and the items in it.
func (p *progress) bytes(read, size int64, items int) {
	if !p.due(false) {
		return
	}
	if size > 0 {
		left := time.Duration(float64(time.Since(p.began)) * float64(size-read) / float64(max(read, 1)))
		fmt.Fprintf(p.out, "%s %d lines, %.0f%% (%.0f/s, about %s left)\n", p.verb, items, 100*float64(read)/float64(size), p.rate(items), left.Round(time.Second))
		return
	}
	fmt.Fprintf(p.out, "%s %d lines (%.0f/s)\n", p.verb, items, p.rate(items))
}

// showDLQ prints one entry: its fields, headers and the event's data,
// decoded to JSON by the codec it was stored with.
func showDLQ(e durable.Entry, asJSON bool, out io.Writer) error {
	event := decodedData(e)
	if asJSON {
		v := struct {
			Entry any `json:"entry"`
			Event any `json:"event"`
		}{jsonEntry(e), event}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for _, row := range [][2]string{
		{"ID", e.ID.String()}, {"Event type", e.EventType()}, {"Stream", e.Stream}, {"Subject", e.Subject},
		{"Reason", string(e.Reason)}, {"Error", e.Error}, {"Deliveries", fmt.Sprint(e.Deliveries)},
		{"Dead since", e.Time.Format(time.RFC3339)}, {"Event stored", e.EventTime.Format(time.RFC3339)}, {"Recorded by", e.RecordedBy},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", row[0], row[1])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out, "Headers:")
	for k, vs := range e.Header {
		fmt.Fprintf(out, "  %s: %s\n", k, strings.Join(vs, ", "))
	}
	body, err := json.MarshalIndent(event, "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Event:\n%s\n", body)
	return nil
}

// decodedData is the entry's event as plain values, whatever the binary
// registers.
func decodedData(e durable.Entry) any {
	if e.Data == nil {
		return nil
	}
	v, err := eventio.Line{Position: e.ID.Position, Header: e.Header, Data: e.Data}.Decoded()
	if err != nil {
		return map[string]any{"undecoded": e.Data, "why": err.Error()}
	}
	return v
}
