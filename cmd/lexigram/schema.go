package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/lexigram/events/config"
	"github.com/lexigram/events/jetstream/schemacheck"
	"github.com/lexigram/events/platform"
)

// defaultSample is how many events of each (type, version, codec) `schema
// check` decodes unless told --all or another --sample.
const defaultSample = 1000

// schemaCommand groups the schema tools. They read with
// platform.DefaultRegistry as this binary fills it.
func schemaCommand() *cobra.Command { return schemaCommandWith(platform.DefaultRegistry) }

// schemaCommandWith is schemaCommand reading with reg.
func schemaCommandWith(reg *platform.Registry) *cobra.Command {
	cmd := refuseUnknown(&cobra.Command{
		Use:   "schema",
		Short: "Check that the registered event types read every event a stream holds (the deploy gate)",
	})
	cmd.AddCommand(schemaCheckCommand(reg))
	return cmd
}

func schemaCheckCommand(reg *platform.Registry) *cobra.Command {
	var configPath, natsURL, stream, compat string
	var sample int
	var all, asJSON bool
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Prove that every (type, schema version, codec) in the stream decodes and upcasts to a current type",
		Long: `Reads the event stream once, in order, and for every stored (type, schema
version, codec) proves that the registry decodes the stored body with the
stored codec and upcasts it to a type registered at its current version.
It decodes the first --sample events of each (1000 by default) and a
random sample of the rest, or every event with --all; the headers of
every event are read either way. Each failure is reported with its type,
version, position, aggregate and cause.

--compat backward also checks, for each current version N above 1, that
version N-1 is registered with an upcaster, and that its stored events
round-trip: upcast, encoded with their codec and decoded again at the
current version, they are equal (see jetstream/schemacheck).

This binary checks against the types it registers itself, which are not
your application's. Put the same gate in your own CI with your registry:
schemacheck.Check(ctx, js, reg, schemacheck.Options{...}) from
github.com/lexigram/events/jetstream/schemacheck (docs/schema.md).

Progress goes to stderr, the report to stdout. The exit code is 1 when
anything fails, 0 when every event checked reads. Runs against any
cluster: pass --nats-url (with user:password@ if needed).`,
		Args:         cobra.NoArgs,
		SilenceUsage: true, // failures are no usage error
		RunE: func(cmd *cobra.Command, _ []string) error {
			if all && cmd.Flags().Changed("sample") {
				return errors.New("--all and --sample exclude each other: pass one (the default is --sample 1000)")
			}
			if sample < 1 && !all {
				return fmt.Errorf("--sample %d: use a positive count of events per type and version, or --all", sample)
			}
			opts := schemacheck.Options{Sample: sample, Compat: schemacheck.Compat(compat)}
			if all {
				opts.Sample = 0
			}
			if compat != "" && opts.Compat != schemacheck.CompatBackward {
				return fmt.Errorf("--compat %q: use backward", compat)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			js, cfg, closeNATS, err := openJetStream(ctx, configPath, natsURL, "lexigram schema check")
			if err != nil {
				return err
			}
			defer closeNATS()
			opts.Stream = or(stream, cfg.Store.Stream)
			bar := newProgressLine(cmd.ErrOrStderr())
			opts.Progress = bar.show
			rep, err := schemacheck.Check(ctx, js, reg, opts)
			if err != nil {
				return err
			}
			if asJSON {
				if err := json.NewEncoder(cmd.OutOrStdout()).Encode(rep); err != nil {
					return err
				}
			} else if err := printSchemaReport(cmd.OutOrStdout(), rep); err != nil {
				return err
			}
			if !rep.Clean() {
				return fmt.Errorf("schema check of stream %s found %d failure%s", rep.Stream, rep.FailureCount, plural(rep.FailureCount))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "YAML configuration file (default $"+config.ConfigFileEnv+")")
	f.StringVar(&natsURL, "nats-url", "", "NATS server to connect to (default: from the configuration)")
	f.StringVar(&stream, "stream", "", "event stream (default store.stream, EVENTS)")
	f.IntVar(&sample, "sample", defaultSample, "decode the first N events of each (type, version, codec) and a random sample of the rest")
	f.BoolVar(&all, "all", false, "decode every event")
	f.StringVar(&compat, "compat", "", "also check compatibility rules: backward (version N-1 upcasts to the current N and its stored events round-trip)")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON: {stream, events, checked, types: [{type, schema_version, codec, count, checked, failures, ...}], failures: [{kind, type, schema_version, position, aggregate, cause, ...}], failure_count, ...}")
	return cmd
}

// progressLine shows a check's progress: a bar redrawn in place on a
// terminal, a line a second otherwise.
type progressLine struct {
	w        io.Writer
	terminal bool
}

func newProgressLine(w io.Writer) *progressLine {
	p := &progressLine{w: w}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.terminal = true
		}
	}
	return p
}

func (p *progressLine) show(pr schemacheck.Progress) {
	if pr.Done {
		wipe := ""
		if p.terminal {
			wipe = "\r\033[K" // the bar's line
		}
		fmt.Fprintf(p.w, "%sschema check: read %d events, decoded %d, in %s (%.0f events/s), %d failure%s\n",
			wipe, pr.Read, pr.Checked, pr.Elapsed.Round(time.Millisecond), pr.Rate, pr.Failures, plural(pr.Failures))
		return
	}
	pct := 0.0
	if pr.Total > 0 {
		pct = min(100, 100*float64(pr.Read)/float64(pr.Total))
	}
	if !p.terminal {
		fmt.Fprintf(p.w, "schema check: %d/%d events (%.0f%%), position %d of %d, %.0f events/s, %d failure%s so far\n",
			pr.Read, pr.Total, pct, pr.Position, pr.Last, pr.Rate, pr.Failures, plural(pr.Failures))
		return
	}
	const width = 30
	done := int(pct / 100 * width)
	fmt.Fprintf(p.w, "\r\033[Kschema check [%s%s] %3.0f%% %d/%d events, %.0f/s, %d failure%s",
		strings.Repeat("#", done), strings.Repeat(".", width-done), pct, pr.Read, pr.Total, pr.Rate, pr.Failures, plural(pr.Failures))
}

func printSchemaReport(w io.Writer, rep schemacheck.Report) error {
	how := "every event decoded"
	if rep.Sample > 0 {
		how = fmt.Sprintf("a sample of %d per type, version and codec (seed %d)", rep.Sample, rep.Seed)
	}
	if rep.Compat != "" {
		how += ", compat " + string(rep.Compat)
	}
	fmt.Fprintf(w, "stream %s: %d events at positions %d..%d, %d decoded: %s\n\n", rep.Stream, rep.Events, rep.FirstPosition, rep.LastPosition, rep.Checked, how)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TYPE\tVERSION\tCODEC\tEVENTS\tCHECKED\tFAILED\tREADS AS")
	for _, t := range rep.Types {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%d\t%s\n", t.Type, t.SchemaVersion, t.Codec, t.Count, t.Checked, t.Failures, t.ReadsAs)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(rep.Failures) > 0 {
		fmt.Fprintln(w, "\nFAILURES")
		for _, f := range rep.Failures {
			fmt.Fprintln(w, f.String())
		}
		if more := rep.FailureCount - len(rep.Failures); more > 0 {
			fmt.Fprintf(w, "... and %d more (--json lists the kept ones with their subjects)\n", more)
		}
	}
	if rep.Clean() {
		_, err := fmt.Fprintln(w, "\nclean")
		return err
	}
	return nil
}
