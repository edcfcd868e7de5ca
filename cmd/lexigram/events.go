package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/lexigram/events/config"
	"github.com/lexigram/events/jetstream/eventio"
	"github.com/lexigram/events/node"
)

// eventsCommand reads, exports and imports the event stream of a running
// node, without its Go types: bodies are shown decoded by their codec.
func eventsCommand() *cobra.Command {
	var configPath, natsURL string
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Read the event stream (tail, get) and move it as JSON lines (export, import)",
		Long: `Reads the event store's stream of a running node as stored, with no
registry: each event's body is shown decoded by its codec (msgpack or JSON).
An aggregate filter is a type (order) or one aggregate (order/42).

export writes one JSON line per event (position, time, aggregate, the stored
headers and the body in base64); import appends such lines to the store's
stream exactly as they were stored, in order per aggregate. An import is
idempotent: run it again after an interruption and it skips what is
stored. Use it for backups, for moving between clusters and for migrations
from other stores (write their events as these lines).`,
	}
	cmd.PersistentFlags().StringVar(&configPath, "config", "", "YAML configuration file (default $"+config.ConfigFileEnv+")")
	cmd.PersistentFlags().StringVar(&natsURL, "nats-url", "", "NATS server to connect to (default: from the configuration)")
	connect := func(cmd *cobra.Command) (jetstream.JetStream, eventio.Source, config.Config, func(), error) {
		ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
		defer cancel()
		js, cfg, closeNATS, err := openJetStream(ctx, configPath, natsURL, "lexigram events")
		if err != nil {
			return nil, eventio.Source{}, cfg, nil, err
		}
		return js, eventio.Source{Stream: cfg.Store.Stream, SubjectPrefix: cfg.Store.SubjectPrefix}, cfg, closeNATS, nil
	}

	var follow, asJSON bool
	var from string
	var eventTypes []string
	tail := &cobra.Command{
		Use:   "tail [TYPE[/ID]]",
		Short: "Print events, oldest first from --from (default: the last 10), and with --follow those appended later",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := filterOf(args, from, eventTypes)
			if err != nil {
				return err
			}
			f.Follow = follow
			js, src, _, done, err := connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			if from == "" {
				if f.After, err = lastPositions(cmd.Context(), js, src, 10); err != nil {
					return err
				}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return printEvents(ctx, js, src, f, asJSON, cmd.OutOrStdout())
		},
	}
	tail.Flags().BoolVarP(&follow, "follow", "f", false, "go on printing events as they are appended, until interrupted")
	tail.Flags().StringVar(&from, "from", "", "start after this position, or at this time (RFC 3339, or a duration such as 1h meaning that long ago); 0 is the beginning")
	tail.Flags().StringSliceVar(&eventTypes, "event-type", nil, "only events of these types (repeat or comma-separate)")
	tail.Flags().BoolVar(&asJSON, "json", false, "one JSON object per event, the body decoded")

	get := &cobra.Command{
		Use:   "get TYPE ID",
		Short: "Print one aggregate's history",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			js, src, _, done, err := connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			f := eventio.Filter{AggregateType: args[0], AggregateID: args[1]}
			if _, _, err := eventio.ParseAggregate(args[0]); err != nil {
				return err
			}
			return printEvents(cmd.Context(), js, src, f, asJSON, cmd.OutOrStdout())
		},
	}
	get.Flags().BoolVar(&asJSON, "json", false, "one JSON object per event, the body decoded")

	var output string
	export := &cobra.Command{
		Use:   "export [TYPE[/ID]] [--output FILE]",
		Short: "Write events as JSON lines (to stdout, or --output), with progress on stderr",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := filterOf(args, from, eventTypes)
			if err != nil {
				return err
			}
			js, src, _, done, err := connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			out := cmd.OutOrStdout()
			if output != "" {
				file, err := os.Create(output)
				if err != nil {
					return fmt.Errorf("--output %s: %w", output, err)
				}
				defer file.Close()
				out = file
			}
			p := newProgress(cmd.ErrOrStderr(), "exported", 0, true)
			n, err := eventio.Export(cmd.Context(), js, src, f, out, func(n int) { p.count(n) })
			if err != nil {
				return fmt.Errorf("export: %w (after %d events)", err, n)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "exported %d events from stream %s\n", n, src.Stream)
			return nil
		},
	}
	export.Flags().StringVarP(&output, "output", "o", "", "write to this file instead of stdout")
	export.Flags().StringVar(&from, "from", "", "start after this position or at this time (a partial export cannot be imported into an empty stream: import needs whole aggregates)")
	export.Flags().StringSliceVar(&eventTypes, "event-type", nil, "only events of these types")

	importCmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Append the events of a JSON-lines file (as export writes it) to the store's stream; run it again to resume",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, size, err := openInput(args[0])
			if err != nil {
				return err
			}
			defer in.Close()
			js, src, cfg, done, err := connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			if _, err := node.OpenStore(cmd.Context(), js, cfg, slog.New(slog.DiscardHandler)); err != nil {
				return err // makes the stream as the node would, or says why it cannot
			}
			p := newProgress(cmd.ErrOrStderr(), "imported", 0, true)
			res, err := eventio.Import(cmd.Context(), js, src, in, eventio.ImportOptions{Progress: func(ip eventio.ImportProgress) {
				p.bytes(ip.Bytes, size, ip.Lines)
			}})
			fmt.Fprintf(cmd.ErrOrStderr(), "%d lines read: %d events appended, %d already stored\n", res.Lines, res.Appended, res.Skipped)
			return err
		},
	}
	cmd.AddCommand(tail, get, export, importCmd)
	return refuseUnknown(cmd)
}

// filterOf reads the aggregate argument, --from and --event-type.
func filterOf(args []string, from string, eventTypes []string) (eventio.Filter, error) {
	var f eventio.Filter
	var err error
	if len(args) == 1 {
		if f.AggregateType, f.AggregateID, err = eventio.ParseAggregate(args[0]); err != nil {
			return f, err
		}
	}
	f.EventTypes = eventTypes
	if from != "" {
		if pos, err := strconv.ParseUint(from, 10, 64); err == nil {
			f.After = pos
		} else if f.Since, err = parseSince(from, time.Now()); err != nil {
			return f, fmt.Errorf("--from %q: use a position (1234), an RFC 3339 time or a duration before now (1h)", from)
		}
	}
	return f, nil
}

// lastPositions is the position after which the stream's last n events are.
func lastPositions(ctx context.Context, js jetstream.JetStream, src eventio.Source, n uint64) (uint64, error) {
	s, err := js.Stream(ctx, src.Stream)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w: is this the node's NATS, and its store.stream? (--config names the node's configuration)", src.Stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	if info.State.LastSeq <= n {
		return 0, nil
	}
	return info.State.LastSeq - n, nil
}

// printEvents prints a table, or JSON lines with the body decoded.
func printEvents(ctx context.Context, js jetstream.JetStream, src eventio.Source, f eventio.Filter, asJSON bool, out io.Writer) error {
	enc := json.NewEncoder(out)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	if !asJSON && !f.Follow {
		fmt.Fprintln(tw, "POSITION\tTIME\tAGGREGATE\tVERSION\tTYPE\tEVENT")
	}
	n := 0
	for l, err := range eventio.Read(ctx, js, src, f) {
		if err != nil {
			return err
		}
		n++
		body, derr := l.Decoded()
		if derr != nil {
			body = derr.Error()
		}
		if asJSON {
			if err := enc.Encode(map[string]any{
				"position": l.Position, "time": l.Time, "aggregate_type": l.AggregateType, "aggregate_id": l.AggregateID,
				"version": l.Version(), "type": l.EventType(), "id": l.EventID(), "header": l.Header, "event": body,
			}); err != nil {
				return err
			}
			continue
		}
		js, _ := json.Marshal(body)
		fmt.Fprintf(tw, "%d\t%s\t%s/%s\t%d\t%s\t%s\n", l.Position, l.Time.Format(time.RFC3339), l.AggregateType, l.AggregateID, l.Version(), l.EventType(), js)
		if f.Follow {
			tw.Flush()
		}
	}
	if n == 0 && !asJSON {
		fmt.Fprintln(out, "no events")
		return nil
	}
	return tw.Flush()
}

// openInput opens FILE ("-" is stdin) and returns its size, 0 if unknown.
func openInput(path string) (io.ReadCloser, int64, error) {
	if path == "-" {
		return io.NopCloser(os.Stdin), 0, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("import %s: %w", path, err)
	}
	var size int64
	if st, err := f.Stat(); err == nil {
		size = st.Size()
	}
	return f, size, nil
}
