package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/lexigram/events/config"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/node"
	"github.com/lexigram/events/platform"
)

// streamsCommand inspects the JetStream streams of a running node.
func streamsCommand() *cobra.Command {
	var configPath, natsURL, systemURL, systemCreds string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "streams",
		Short: "Inspect the JetStream streams of a running node: size, replicas, storage and durability",
	}
	cmd.PersistentFlags().StringVar(&configPath, "config", "", "YAML configuration file (default $"+config.ConfigFileEnv+")")
	cmd.PersistentFlags().StringVar(&natsURL, "nats-url", "", "NATS server to connect to (default: from the configuration)")
	info := &cobra.Command{
		Use:     "info [STREAM...]",
		Aliases: []string{"ls"},
		Short:   "List the streams (or those named) with messages, bytes, subjects, replicas, storage and durability",
		Long: `Lists the account's streams with their messages, bytes, subjects, replicas,
storage and the durability of an acknowledged write, as the event store
reports it. The servers' fsync setting is read from their VARZ, which only
the system account answers: pass --system-url (or --system-creds) for a
system-account user, or import $SYS.REQ.SERVER.PING.VARZ into this account;
otherwise the setting is reported unknown, never guessed. A node on the
embedded server knows its own setting: see its /healthz.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			js, _, closeNATS, err := openJetStream(ctx, configPath, natsURL, "lexigram streams")
			if err != nil {
				return err
			}
			defer closeNATS()
			sys := js.Conn()
			if systemURL != "" || systemCreds != "" {
				if sys, err = connectSystem(systemURL, systemCreds, js.Conn()); err != nil {
					return err
				}
				defer sys.Close()
			}
			rows, problem, err := streamRows(ctx, js, sys, args)
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]any{"streams": rows, "sync_problem": problem})
			}
			return printStreams(cmd.OutOrStdout(), rows, problem)
		},
	}
	info.Flags().BoolVar(&asJSON, "json", false, "print JSON: {streams: [...], sync_problem}")
	info.Flags().StringVar(&systemURL, "system-url", "", "a system-account connection for reading the servers' sync setting, e.g. nats://sys:password@host:4222 (default: --nats-url's server)")
	info.Flags().StringVar(&systemCreds, "system-creds", "", "credentials file of a system-account user, for the same")
	cmd.AddCommand(info)
	return refuseUnknown(cmd)
}

// streamRow is one stream in `lexigram streams info`.
type streamRow struct {
	Name       string         `json:"name"`
	Messages   uint64         `json:"messages"`
	Bytes      uint64         `json:"bytes"`
	Subjects   []string       `json:"subjects"`
	Replicas   int            `json:"replicas"`
	Storage    string         `json:"storage"`
	Durability durabilityJSON `json:"durability"`
}

// connectSystem opens the system-account connection for VARZ: systemURL,
// or the node's server with the credentials file.
func connectSystem(systemURL, creds string, nc *nats.Conn) (*nats.Conn, error) {
	url := systemURL
	if url == "" {
		url = nc.ConnectedUrl()
	}
	var opts []nats.Option
	if creds != "" {
		opts = append(opts, nats.UserCredentials(creds))
	}
	sys, err := nats.Connect(url, append(opts, nats.Name("lexigram streams (system)"))...)
	if err != nil {
		return nil, node.ExplainConnect(url, err, "check --system-url")
	}
	return sys, nil
}

// streamRows reads the streams (all, or those named, in name order) and
// the servers' sync settings, asked once for every server holding one.
func streamRows(ctx context.Context, js jetstream.JetStream, sys *nats.Conn, names []string) ([]streamRow, string, error) {
	var infos []*jetstream.StreamInfo
	lister := js.ListStreams(ctx)
	for info := range lister.Info() {
		if len(names) == 0 || slices.Contains(names, info.Config.Name) {
			infos = append(infos, info)
		}
	}
	if err := lister.Err(); err != nil {
		return nil, "", fmt.Errorf("list streams: %w", err)
	}
	for _, n := range names {
		if !slices.ContainsFunc(infos, func(i *jetstream.StreamInfo) bool { return i.Config.Name == n }) {
			return nil, "", fmt.Errorf("stream %q: no such stream in this account: run `lexigram streams info` to list them", n)
		}
	}
	slices.SortFunc(infos, func(a, b *jetstream.StreamInfo) int { return strings.Compare(a.Config.Name, b.Config.Name) })

	var servers []string
	files := false
	for _, i := range infos {
		if i.Config.Storage == jetstream.FileStorage {
			files = true
			if c := i.Cluster; c != nil && c.Leader != "" {
				servers = append(servers, c.Leader)
				for _, p := range c.Replicas {
					servers = append(servers, p.Name)
				}
			}
		}
	}
	var syncs lxjs.SyncSettings
	if files {
		syncs = lxjs.ReadSyncSettings(ctx, sys, servers...)
	}
	rows := make([]streamRow, len(infos))
	unknown := false
	for k, i := range infos {
		d := lxjs.StreamDurability(i, syncs)
		unknown = unknown || d.Sync == platform.SyncUnknown
		rows[k] = streamRow{
			Name: i.Config.Name, Messages: i.State.Msgs, Bytes: i.State.Bytes, Subjects: i.Config.Subjects,
			Replicas: d.Replicas, Storage: d.Storage, Durability: durabilityView(d),
		}
	}
	problem := ""
	if unknown {
		problem = syncs.Problem()
	}
	return rows, problem, nil
}

func printStreams(out io.Writer, rows []streamRow, problem string) error {
	if len(rows) == 0 {
		_, err := fmt.Fprintln(out, "no streams")
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STREAM\tMESSAGES\tBYTES\tSUBJECTS\tREPLICAS\tSTORAGE\tDURABILITY")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\t%s\t%s (%s)\n", r.Name, r.Messages, r.Bytes, strings.Join(r.Subjects, ","), r.Replicas, r.Storage, r.Durability.Text, r.Durability.Level)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if problem != "" {
		_, err := fmt.Fprintf(out, "\nThe servers' sync setting is unknown (%s): pass --system-url or --system-creds for a system-account user, or import $SYS.REQ.SERVER.PING.VARZ into this account; a node on the embedded server reports its own on /healthz.\n", problem)
		return err
	}
	return nil
}
