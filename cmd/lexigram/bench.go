package main

import (
	"encoding/json"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/lexigram/events/bench"
)

func benchCommand() *cobra.Command {
	var opts bench.Options
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the event store against the raw NATS calls it stands on, in the same run",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			opts.Out = cmd.ErrOrStderr() // progress; the figures go to stdout
			figs, err := bench.Run(ctx, opts)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(figs)
			}
			bench.WriteTable(cmd.OutOrStdout(), figs)
			return nil
		},
	}
	cmd.Flags().BoolVar(&opts.Quick, "quick", false, "small sizes: the whole run in under a minute")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the figures as JSON: [{name, ours, raw, unit, ratio, target}]")
	cmd.Flags().StringVar(&opts.NATSURL, "nats-url", "", "run against this NATS server instead of embedded ones")
	cmd.Flags().BoolVar(&opts.InProcess, "in-process", false, "connect to the embedded servers in-process (as the node's components do) instead of over loopback TCP (as applications do)")
	cmd.Flags().StringVar(&opts.Filter, "filter", "", "run only the figures whose name contains this")
	return cmd
}
