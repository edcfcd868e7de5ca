package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/lexigram/events/config"
	"github.com/lexigram/events/jetstream/audit"
	"github.com/lexigram/events/kvsnapshot"
	"github.com/lexigram/events/platform"
)

// auditCommand checks the integrity of a node's event stream.
func auditCommand() *cobra.Command {
	var configPath, natsURL, aggregate, headsPath, stream, prefix, bucket string
	var all, asJSON bool
	var rate float64
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Check the event stream's integrity: every aggregate's hash chain and versions, and the global order",
		Long: `Reads the event stream once, in order, and checks every aggregate's hash
chain (each event carries the hash of the one before), its contiguous
versions and the stream's order. It reports, with the aggregate, the
versions and the stream positions of each: lost-prefix, lost-middle and
lost-postfix (Jepsen's categories; lost-postfix needs --expect-heads, the
last version each aggregate's writers had acknowledged), forks (two
events claiming one version), duplicates (one event ID twice), gaps
(positions missing that the stream does not list as deleted),
hash mismatches (an event changed after it was written: a bit flip) and
malformed messages. Events written before the chain existed are an
unchained prefix, which is not a problem; a compacted aggregate's
truncated prefix is recognised from its snapshot.

Progress goes to stderr, the summary to stdout. The exit code is 1 when
anything is found, 0 when the stream is clean. Runs against any cluster:
pass --nats-url (with user:password@ if needed).`,
		Args:         cobra.NoArgs,
		SilenceUsage: true, // finding problems is no usage error
		RunE: func(cmd *cobra.Command, _ []string) error {
			if all && aggregate != "" {
				return errors.New("--all and --aggregate exclude each other: pass one, or neither for all")
			}
			opts := audit.Options{Rate: rate}
			if aggregate != "" {
				var err error
				if opts.Aggregate, err = parseAggregate(aggregate); err != nil {
					return err
				}
			}
			if headsPath != "" {
				var err error
				if opts.ExpectedHeads, err = readHeads(headsPath); err != nil {
					return err
				}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			js, cfg, closeNATS, err := openJetStream(ctx, configPath, natsURL, "lexigram audit")
			if err != nil {
				return err
			}
			defer closeNATS()
			opts.Stream, opts.SubjectPrefix = or(stream, cfg.Store.Stream), or(prefix, cfg.Store.SubjectPrefix)
			if opts.Snapshots, err = existingSnapshots(ctx, js, or(bucket, cfg.Snapshots.Bucket)); err != nil {
				return err
			}
			progress := cmd.ErrOrStderr()
			opts.Progress = func(p audit.Progress) { printProgress(progress, p) }
			rep, err := audit.Check(ctx, js, opts)
			if err != nil {
				return err
			}
			if asJSON {
				if err := json.NewEncoder(cmd.OutOrStdout()).Encode(rep); err != nil {
					return err
				}
			} else if err := printAudit(cmd.OutOrStdout(), rep); err != nil {
				return err
			}
			if n := rep.Problems(); n > 0 {
				return fmt.Errorf("audit of stream %s found %d problem%s", rep.Stream, n, plural(n))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "YAML configuration file (default $"+config.ConfigFileEnv+")")
	f.StringVar(&natsURL, "nats-url", "", "NATS server to connect to (default: from the configuration)")
	f.StringVar(&aggregate, "aggregate", "", "check one aggregate only, as type/id (e.g. order/42)")
	f.BoolVar(&all, "all", false, "check every aggregate and the global order (the default)")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON: {stream, events, counts, findings: [{kind, aggregate, versions, positions, detail}], ...}")
	f.StringVar(&headsPath, "expect-heads", "", `JSON file of the last acknowledged version per aggregate, {"type/id": version, ...} or [{"type","id","version"}, ...]: an aggregate stored below it lost its postfix`)
	f.StringVar(&stream, "stream", "", "event stream (default store.stream, EVENTS)")
	f.StringVar(&prefix, "subject-prefix", "", "subject prefix of the events (default store.subject_prefix, events)")
	f.StringVar(&bucket, "snapshots-bucket", "", "snapshot bucket that tells a compacted aggregate from a lost prefix (default snapshots.bucket; none if it does not exist)")
	f.Float64Var(&rate, "rate", 0, "check at most this many events per second (default: as fast as the server sends)")
	return cmd
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// parseAggregate reads "type/id": the type has no '/', the ID may.
func parseAggregate(s string) (platform.StreamID, error) {
	typ, id, ok := strings.Cut(s, "/")
	st := platform.StreamID{Type: typ, ID: id}
	if !ok {
		return st, fmt.Errorf("--aggregate %q: use type/id, e.g. order/42", s)
	}
	if err := st.Validate(); err != nil {
		return st, fmt.Errorf("--aggregate %q: %w", s, err)
	}
	return st, nil
}

// readHeads reads the expected heads file: an object of "type/id":
// version, or a list of {type, id, version}.
func readHeads(path string) (map[platform.StreamID]uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--expect-heads: %w", err)
	}
	heads := map[platform.StreamID]uint64{}
	var byName map[string]uint64
	if err := json.Unmarshal(b, &byName); err == nil {
		for name, v := range byName {
			st, err := parseAggregate(name)
			if err != nil {
				return nil, fmt.Errorf("--expect-heads %s: %w", path, err)
			}
			heads[st] = v
		}
		return heads, nil
	}
	var list []struct {
		Type    string `json:"type"`
		ID      string `json:"id"`
		Version uint64 `json:"version"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf(`--expect-heads %s: %w: write {"type/id": version, ...} or [{"type": ..., "id": ..., "version": ...}, ...]`, path, err)
	}
	for i, h := range list {
		st := platform.StreamID{Type: h.Type, ID: h.ID}
		if err := st.Validate(); err != nil {
			return nil, fmt.Errorf("--expect-heads %s, entry %d: %w", path, i+1, err)
		}
		heads[st] = h.Version
	}
	return heads, nil
}

// existingSnapshots opens the snapshot bucket if it exists, as it is
// (replicas and storage unchanged); nil if it does not.
func existingSnapshots(ctx context.Context, js jetstream.JetStream, bucket string) (audit.SnapshotLoader, error) {
	kv, err := js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up snapshot bucket %s: %w", bucket, err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("snapshot bucket %s: %w", bucket, err)
	}
	o := kvsnapshot.SnapshotOptions{Bucket: bucket}
	if s, ok := st.(*jetstream.KeyValueBucketStatus); ok {
		o.Replicas, o.Storage = s.StreamInfo().Config.Replicas, s.StreamInfo().Config.Storage
	}
	return kvsnapshot.NewSnapshotStore(ctx, js, o)
}

func printProgress(w io.Writer, p audit.Progress) {
	if p.Done {
		fmt.Fprintf(w, "audit: checked %d events in %s (%.0f events/s), %d problem%s\n", p.Checked, p.Elapsed.Round(time.Millisecond), p.Rate, p.Problems, plural(p.Problems))
		return
	}
	pct := 0.0
	if p.Total > 0 {
		pct = 100 * float64(p.Checked) / float64(p.Total)
	}
	fmt.Fprintf(w, "audit: %d/%d events (%.0f%%), position %d of %d, %.0f events/s, %d problem%s so far\n",
		p.Checked, p.Total, pct, p.Position, p.Last, p.Rate, p.Problems, plural(p.Problems))
}

func printAudit(w io.Writer, rep *audit.Report) error {
	what := "every aggregate"
	if rep.Aggregate != "" {
		what = rep.Aggregate
	}
	fmt.Fprintf(w, "stream %s, %s: %d events in %d aggregates, positions %d..%d (%d deleted), %d chained, %d before the chain\n\n",
		rep.Stream, what, rep.Events, rep.Aggregates, rep.FirstPosition, rep.LastPosition, rep.Deleted, rep.Chained, rep.Unchained)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tFOUND")
	for _, k := range audit.Kinds {
		switch {
		case k == audit.LostPostfix && !rep.PostfixChecked:
			fmt.Fprintf(tw, "%s\tnot checked (pass --expect-heads)\n", k)
		case k == audit.Gap && rep.Aggregate != "":
			fmt.Fprintf(tw, "%s\tnot checked (one aggregate)\n", k)
		default:
			fmt.Fprintf(tw, "%s\t%d\n", k, rep.Counts[k])
		}
	}
	for _, k := range []audit.Kind{audit.UnchainedPrefix, audit.TruncatedPrefix} {
		fmt.Fprintf(tw, "%s\t%d (not a problem)\n", k, rep.Counts[k])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(rep.Findings) > 0 {
		fmt.Fprintln(w, "\nFINDINGS")
		for _, f := range rep.Findings {
			fmt.Fprintln(w, f.String())
		}
		total := 0
		for _, n := range rep.Counts {
			total += n
		}
		if more := total - len(rep.Findings); more > 0 {
			fmt.Fprintf(w, "... and %d more (use --aggregate to look closer)\n", more)
		}
	}
	if rep.Problems() == 0 {
		_, err := fmt.Fprintln(w, "\nclean")
		return err
	}
	return nil
}

// startScrubber starts the background audit when store.scrub_rate is
// set, its metrics on reg; stop ends it (before NATS closes).
func startScrubber(ctx context.Context, cfg config.Config, js jetstream.JetStream, snapshots audit.SnapshotLoader, reg prometheus.Registerer, log *slog.Logger) (stop func(), err error) {
	if cfg.Store.ScrubRate <= 0 {
		return func() {}, nil
	}
	s, err := audit.NewScrubber(js, audit.ScrubOptions{
		Check:    audit.Options{Stream: cfg.Store.Stream, SubjectPrefix: cfg.Store.SubjectPrefix, Rate: float64(cfg.Store.ScrubRate), Snapshots: snapshots},
		Interval: cfg.Store.ScrubInterval, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	if err := reg.Register(s); err != nil {
		return nil, err
	}
	return s.Start(ctx), nil
}
