package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/lexigram/events/config"
	"github.com/lexigram/events/jetstream/eventio"
	"github.com/lexigram/events/kvsnapshot"
	"github.com/lexigram/events/node"
	"github.com/lexigram/events/platform"
)

// snapshotsCommand shows and deletes aggregates' snapshots.
func snapshotsCommand() *cobra.Command {
	var configPath, natsURL string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "snapshots",
		Short: "Show or delete an aggregate's snapshot",
		Long: `An aggregate's snapshot is its state at one version, kept in the key-value
bucket snapshots.bucket so that a load reads only the newer events. Deleting
one is always safe: the next load replays the aggregate's events (and the
repository takes a new snapshot as its policy says).`,
	}
	cmd.PersistentFlags().StringVar(&configPath, "config", "", "YAML configuration file (default $"+config.ConfigFileEnv+")")
	cmd.PersistentFlags().StringVar(&natsURL, "nats-url", "", "NATS server to connect to (default: from the configuration)")
	open := func(cmd *cobra.Command) (*kvsnapshot.SnapshotStore, func(), error) {
		ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
		defer cancel()
		js, cfg, done, err := openJetStream(ctx, configPath, natsURL, "lexigram snapshots")
		if err != nil {
			return nil, nil, err
		}
		s, err := kvsnapshot.NewSnapshotStore(ctx, js, kvsnapshot.SnapshotOptions{Bucket: cfg.Snapshots.Bucket, Replicas: cfg.Store.Replicas, Storage: node.Storage(cfg)})
		if err != nil {
			done()
			return nil, nil, err
		}
		return s, done, nil
	}
	get := &cobra.Command{
		Use:   "get TYPE ID",
		Short: "Print an aggregate's snapshot: its version, position, schema version, time and state",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, done, err := open(cmd)
			if err != nil {
				return err
			}
			defer done()
			id := platform.StreamID{Type: args[0], ID: args[1]}
			snap, ok, err := s.LoadSnapshot(cmd.Context(), id)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("%s has no snapshot (it loads from its events alone)", id)
			}
			state, derr := eventio.DecodePlain(snap.Codec, snap.State)
			if derr != nil {
				state = derr.Error()
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{"aggregate_type": id.Type, "aggregate_id": id.ID, "version": snap.Revision.Version,
					"position": snap.Revision.Position, "schema_version": snap.SchemaVersion, "codec": snap.Codec, "time": snap.Time, "state": state})
			}
			body, _ := json.MarshalIndent(state, "", "  ")
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "Aggregate:\t%s/%s\nVersion:\t%d\nPosition:\t%d\nSchema version:\t%d\nCodec:\t%s\nTaken:\t%s\n",
				id.Type, id.ID, snap.Revision.Version, snap.Revision.Position, snap.SchemaVersion, snap.Codec, snap.Time.Format(time.RFC3339))
			tw.Flush()
			fmt.Fprintf(cmd.OutOrStdout(), "State:\n%s\n", body)
			return nil
		},
	}
	get.Flags().BoolVar(&asJSON, "json", false, "one JSON object, the state decoded")
	del := &cobra.Command{
		Use:   "delete TYPE ID",
		Short: "Delete an aggregate's snapshot (the next load replays its events)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, done, err := open(cmd)
			if err != nil {
				return err
			}
			defer done()
			id := platform.StreamID{Type: args[0], ID: args[1]}
			if err := s.DeleteSnapshot(cmd.Context(), id); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted the snapshot of %s/%s\n", id.Type, id.ID)
			return nil
		},
	}
	cmd.AddCommand(get, del)
	return refuseUnknown(cmd)
}
