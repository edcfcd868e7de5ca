package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/lexigram/events/bench"
	"github.com/lexigram/events/embedded"
)

func benchCommand() *cobra.Command {
	var opts bench.Options
	var asJSON bool
	var cpuProfile string
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the event store against the raw NATS calls it stands on, in the same run",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			opts.Out = cmd.ErrOrStderr() // progress; the figures go to stdout
			if exe, err := os.Executable(); err == nil {
				opts.ServerCommand = []string{exe, "bench-server"}
			}
			if cpuProfile != "" {
				stopProfile, err := startCPUProfile(cpuProfile)
				if err != nil {
					return err
				}
				defer stopProfile()
			}
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
	cmd.Flags().IntVar(&opts.Replicas, "replicas", 0, "with --nats-url: replicas of the event streams the figures make (default 1), to measure the stream you will run")
	cmd.Flags().StringVar(&opts.Storage, "storage", "", "file or memory: storage of the event streams the figures make (default: each figure's own)")
	cmd.Flags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of this process (the client side; servers run as children) to this file, for go tool pprof")
	return cmd
}

// startCPUProfile profiles this process into path until the returned stop.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile %s: %w", path, err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile %s: %w", path, err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// benchServerCommand is the child process that lexigram bench starts for
// each embedded server, so that the server's heap stays out of the
// client's garbage collection.
func benchServerCommand() *cobra.Command {
	var dataDir string
	var fsync time.Duration
	cmd := &cobra.Command{
		Use:    "bench-server",
		Short:  "Run an embedded NATS server for lexigram bench and print its URL",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			srv, err := embedded.Start(ctx, embedded.Options{Port: embedded.RandomPort, DataDir: dataDir, FsyncInterval: fsync,
				Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "URL "+srv.ClientURL())
			<-ctx.Done()
			shutdown, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			return srv.Shutdown(shutdown)
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "JetStream directory")
	cmd.Flags().DurationVar(&fsync, "fsync-interval", 0, "0: fsync before every ack")
	return cmd
}
