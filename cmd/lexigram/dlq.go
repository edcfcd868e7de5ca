package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/lexigram/events/config"
	"github.com/lexigram/events/handlers/durable"
	"github.com/lexigram/events/node"
)

// dlqCommand lists, replays and discards the dead letters of durable
// handlers, on a running node's NATS.
func dlqCommand() *cobra.Command {
	var configPath, natsURL string
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "List, replay and discard the dead letters of durable event handlers",
		Long: `The dead-letter queue holds the events a durable handler gave up on: after its
retries, or at once for an event it can never handle. Entries are named
<handler>/<event position>, e.g. billing/1234.

The commands connect to the NATS of a running node: --nats-url, or the
configuration's (nats.urls, else the embedded server's host and port).`,
	}
	cmd.PersistentFlags().StringVar(&configPath, "config", "", "YAML configuration file (default $"+config.ConfigFileEnv+")")
	cmd.PersistentFlags().StringVar(&natsURL, "nats-url", "", "NATS server to connect to (default: from the configuration)")
	open := func(cmd *cobra.Command) (*durable.DLQ, func(), error) {
		return openDLQ(cmd.Context(), configPath, natsURL)
	}

	var handler string
	var asJSON bool
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List dead letters, oldest first",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q, done, err := open(cmd)
			if err != nil {
				return err
			}
			defer done()
			return listDLQ(cmd.Context(), q, handler, asJSON, cmd.OutOrStdout())
		},
	}
	list.Flags().StringVar(&handler, "handler", "", "only this handler's dead letters")
	list.Flags().BoolVar(&asJSON, "json", false, "one JSON object per entry, with the event's headers and data")

	show := &cobra.Command{
		Use:   "show ID",
		Short: "Print one dead letter: its error, headers and the event",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := durable.ParseID(args[0])
			if err != nil {
				return err
			}
			q, done, err := open(cmd)
			if err != nil {
				return err
			}
			defer done()
			e, err := q.Get(cmd.Context(), id)
			if err != nil {
				return fmt.Errorf("show %s: %w", id, err)
			}
			return showDLQ(e, asJSON, cmd.OutOrStdout())
		},
	}
	show.Flags().BoolVar(&asJSON, "json", false, "the entry as one JSON object")

	replay := bulkDLQ(open, "replay", "Send dead letters back to their handler (which must be running to take them)", "replayed",
		func(ctx context.Context, q *durable.DLQ, id durable.ID) error { return q.Replay(ctx, id) })
	discard := bulkDLQ(open, "discard", "Remove dead letters for good", "discarded",
		func(ctx context.Context, q *durable.DLQ, id durable.ID) error { return q.Discard(ctx, id) })
	cmd.AddCommand(list, show, replay, discard)
	return refuseUnknown(cmd)
}

// openDLQ connects as the configuration says and opens the DLQ of its
// event store.
func openDLQ(ctx context.Context, configPath, natsURL string) (*durable.DLQ, func(), error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	js, cfg, closeNATS, err := openJetStream(ctx, configPath, natsURL, "lexigram dlq")
	if err != nil {
		return nil, nil, err
	}
	store, err := node.OpenStore(ctx, js, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		closeNATS()
		return nil, nil, err
	}
	q, err := durable.OpenDLQ(ctx, js, store, durable.DLQOptions{Replicas: cfg.Store.Replicas, Storage: node.Storage(cfg)})
	if err != nil {
		closeNATS()
		return nil, nil, err
	}
	return q, closeNATS, nil
}

// listDLQ prints a table, or JSON lines with everything an entry holds.
func listDLQ(ctx context.Context, q *durable.DLQ, handler string, asJSON bool, out io.Writer) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	if !asJSON {
		fmt.Fprintln(tw, "ID\tEVENT TYPE\tSUBJECT\tREASON\tDELIVERIES\tDEAD SINCE\tERROR")
	}
	enc := json.NewEncoder(out)
	n := 0
	for e, err := range q.List(ctx, handler) {
		if err != nil {
			return err
		}
		n++
		if asJSON {
			if err := enc.Encode(jsonEntry(e)); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", e.ID, e.EventType(), e.Subject, e.Reason, e.Deliveries,
			e.Time.Format(time.RFC3339), strconv.Quote(e.Error))
	}
	if !asJSON {
		if n == 0 {
			what := "no dead letters"
			if handler != "" {
				what += " for handler " + handler
			}
			fmt.Fprintln(out, what)
			return nil
		}
		return tw.Flush()
	}
	return nil
}

func jsonEntry(e durable.Entry) any {
	return struct {
		ID         string              `json:"id"`
		Handler    string              `json:"handler"`
		Position   uint64              `json:"position"`
		EventType  string              `json:"event_type"`
		Stream     string              `json:"stream"`
		Subject    string              `json:"subject"`
		Reason     durable.Reason      `json:"reason"`
		Error      string              `json:"error"`
		Deliveries int                 `json:"deliveries"`
		Time       time.Time           `json:"time"`
		EventTime  time.Time           `json:"event_time"`
		RecordedBy string              `json:"recorded_by"`
		Header     map[string][]string `json:"header"`
		Data       []byte              `json:"data"`
	}{e.ID.String(), e.ID.Handler, e.ID.Position, e.EventType(), e.Stream, e.Subject, e.Reason, e.Error, e.Deliveries,
		e.Time, e.EventTime, e.RecordedBy, e.Header, e.Data}
}
