package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/lexigram/events/config"
	"github.com/lexigram/events/node"
	"github.com/lexigram/events/sagas"
)

// sagasCommand lists and shows saga instances and acts on them, on a
// running node's NATS.
func sagasCommand() *cobra.Command {
	var configPath, natsURL, bucket string
	cmd := &cobra.Command{
		Use:   "sagas",
		Short: "List and show saga instances; retry, abort them or fire their timers",
		Long: `Saga instances live in a JetStream key-value bucket (lexigram_sagas by default)
and move on in whichever process runs a saga manager. These commands read and
change them there: a change is a compare-and-set on the instance, which the
managers then act on (they must be running for a retry or an abort to run).

The commands connect to the NATS of a running node: --nats-url, or the
configuration's (nats.urls, else the embedded server's host and port).`,
	}
	cmd.PersistentFlags().StringVar(&configPath, "config", "", "YAML configuration file (default $"+config.ConfigFileEnv+")")
	cmd.PersistentFlags().StringVar(&natsURL, "nats-url", "", "NATS server to connect to (default: from the configuration)")
	cmd.PersistentFlags().StringVar(&bucket, "bucket", sagas.DefaultKVBucket, "the key-value bucket of the instances")
	open := func(cmd *cobra.Command) (*sagas.Operator, func(), error) {
		return openOperator(cmd.Context(), configPath, natsURL, bucket)
	}

	var q sagas.Query
	var states []string
	var asJSON bool
	ls := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List instances in ID order (oldest first), a page at a time",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, s := range states {
				st, err := parseState(s)
				if err != nil {
					return err
				}
				q.States = append(q.States, st)
			}
			op, done, err := open(cmd)
			if err != nil {
				return err
			}
			defer done()
			page, err := op.List(cmd.Context(), q)
			if err != nil {
				return err
			}
			return printInstances(cmd.OutOrStdout(), page, q, asJSON)
		},
	}
	ls.Flags().StringVar(&q.Type, "type", "", "only instances of this saga type")
	ls.Flags().StringSliceVar(&states, "state", nil, "only instances in these states (e.g. PARKED,COMPENSATION_FAILED)")
	ls.Flags().StringVar(&q.After, "after", "", "list the instances after this ID (the last of the previous page)")
	ls.Flags().IntVar(&q.Limit, "limit", 50, "at most this many instances")
	ls.Flags().BoolVar(&asJSON, "json", false, "one JSON object per instance")

	var showJSON bool
	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show an instance: its state, data, each step's attempts with results, errors and timings, and its pending timer",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			op, done, err := open(cmd)
			if err != nil {
				return err
			}
			defer done()
			d, err := op.Show(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if showJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(d)
			}
			return printDetails(cmd.OutOrStdout(), d)
		},
	}
	show.Flags().BoolVar(&showJSON, "json", false, "the instance as JSON")

	act := func(use, short, verb string, f func(ctx context.Context, op *sagas.Operator, id string) (sagas.Instance, error)) *cobra.Command {
		var actJSON bool
		c := &cobra.Command{
			Use:   use + " ID...",
			Short: short,
			Args:  cobra.MinimumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				op, done, err := open(cmd)
				if err != nil {
					return err
				}
				defer done()
				for _, id := range args {
					in, err := f(cmd.Context(), op, id)
					if err != nil {
						return err
					}
					if actJSON {
						if err := json.NewEncoder(cmd.OutOrStdout()).Encode(in); err != nil {
							return err
						}
						continue
					}
					fmt.Fprintf(cmd.OutOrStdout(), "%s %s (%s, now %s)\n", verb, in.ID, in.Type, in.State)
				}
				return nil
			},
		}
		c.Flags().BoolVar(&actJSON, "json", false, "print each instance as JSON after the change")
		return c
	}
	retry := act("retry", "Send a PARKED or COMPENSATION_FAILED instance on again", "retried",
		func(ctx context.Context, op *sagas.Operator, id string) (sagas.Instance, error) {
			return op.Retry(ctx, id)
		})
	var reason string
	abort := act("abort", "Stop unfinished instances for good: they compensate the steps they completed", "aborted",
		func(ctx context.Context, op *sagas.Operator, id string) (sagas.Instance, error) {
			return op.Abort(ctx, id, reason)
		})
	abort.Flags().StringVar(&reason, "reason", "", "why, kept in the instance's error (and so in its history)")
	fire := act("fire", "Make the deadline of instances resting at a wait fall due now", "fired the timer of",
		func(ctx context.Context, op *sagas.Operator, id string) (sagas.Instance, error) {
			return op.FireTimer(ctx, id)
		})
	cmd.AddCommand(ls, show, retry, abort, fire)
	return refuseUnknown(cmd)
}

// openOperator connects as the configuration says and opens the
// instances' store.
func openOperator(ctx context.Context, configPath, natsURL, bucket string) (*sagas.Operator, func(), error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	js, cfg, closeNATS, err := openJetStream(ctx, configPath, natsURL, "lexigram sagas")
	if err != nil {
		return nil, nil, err
	}
	op, err := openSagaStore(ctx, js, cfg, bucket)
	if err != nil {
		closeNATS()
		return nil, nil, err
	}
	return op, closeNATS, nil
}

func openSagaStore(ctx context.Context, js jetstream.JetStream, cfg config.Config, bucket string) (*sagas.Operator, error) {
	if _, err := js.KeyValue(ctx, bucket); err != nil {
		return nil, fmt.Errorf("open the saga instances' bucket %q: %w (has a saga manager run on this NATS? pass --bucket if it uses another)", bucket, err)
	}
	store, err := sagas.NewKVStore(ctx, js, sagas.KVOptions{Bucket: bucket, Replicas: cfg.Store.Replicas, Storage: node.Storage(cfg)})
	if err != nil {
		return nil, err
	}
	return sagas.NewOperator(js, store, sagas.Options{})
}

var allStates = []sagas.State{sagas.NotStarted, sagas.Started, sagas.Running, sagas.Completed, sagas.Failed, sagas.TimedOut,
	sagas.Compensating, sagas.Compensated, sagas.CompensationFailed, sagas.Parked}

func parseState(s string) (sagas.State, error) {
	want := sagas.State(strings.ToUpper(strings.TrimSpace(s)))
	for _, st := range allStates {
		if st == want {
			return st, nil
		}
	}
	names := make([]string, len(allStates))
	for i, st := range allStates {
		names[i] = string(st)
	}
	return "", fmt.Errorf("--state %q is not a saga state: use one of %s", s, strings.Join(names, ", "))
}

func printInstances(out io.Writer, page []sagas.Instance, q sagas.Query, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(out)
		for _, in := range page {
			if err := enc.Encode(in); err != nil {
				return err
			}
		}
		return nil
	}
	if len(page) == 0 {
		fmt.Fprintln(out, "no saga instances match")
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTYPE\tKEY\tSTATE\tSTEP\tUPDATED\tERROR")
	for _, in := range page {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", in.ID, in.Type, in.Key, in.State, in.Step,
			in.Updated.Format(time.RFC3339), strconv.Quote(in.Error))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(page) == q.Limit {
		fmt.Fprintf(out, "more may follow: --after %s\n", page[len(page)-1].ID)
	}
	return nil
}

func printDetails(out io.Writer, d sagas.Details) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("ID", d.ID)
	row("Type", d.Type)
	row("Key", d.Key)
	row("State", string(d.State))
	row("Step", strconv.Itoa(d.Step))
	if d.Error != "" {
		row("Error", d.Error)
	}
	row("Correlation", d.CorrelationID)
	row("Created", d.Created.Format(time.RFC3339Nano))
	row("Updated", d.Updated.Format(time.RFC3339Nano))
	if !d.Due.IsZero() {
		row("Step due", d.Due.Format(time.RFC3339Nano))
	}
	if !d.Deadline.IsZero() {
		row("Saga deadline", d.Deadline.Format(time.RFC3339Nano))
	}
	switch {
	case d.Timer == nil:
		row("Timer", "none")
	case d.Timer.Stale:
		row("Timer", d.Timer.At.Format(time.RFC3339)+" (stale: it will fire and be ignored)")
	default:
		row("Timer", d.Timer.At.Format(time.RFC3339))
	}
	row("Data", string(d.Data))
	for _, r := range d.Inbox {
		row("Waiting event", fmt.Sprintf("%s at position %d", r.Type, r.Position))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(d.History) == 0 {
		return nil
	}
	fmt.Fprintln(out, "\nHistory:")
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tATTEMPT\tSTARTED\tTOOK\tOUTCOME\tEVENT\tERROR")
	for _, h := range d.History {
		step := h.Step
		if h.Compensation {
			step += " (compensation)"
		}
		event := ""
		if h.Event != 0 {
			event = strconv.FormatUint(h.Event, 10)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", step, h.Attempt, h.Started.Format(time.RFC3339Nano), h.Took, h.Outcome, event, h.Error)
	}
	return tw.Flush()
}
