package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lexigram/events/config"
	"github.com/lexigram/events/encryption"
	"github.com/lexigram/events/platform"
)

// keysCommand manages the data keys of payload encryption.
func keysCommand() *cobra.Command {
	var configPath, natsURL, keyFile, keyEnv, bucket string
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Manage the data keys of payload encryption: rewrap them after a master-key rotation",
	}
	cmd.PersistentFlags().StringVar(&configPath, "config", "", "YAML configuration file (default $"+config.ConfigFileEnv+")")
	cmd.PersistentFlags().StringVar(&natsURL, "nats-url", "", "NATS server to connect to (default: from the configuration)")
	cmd.PersistentFlags().StringVar(&keyFile, "key-file", "", "master key file: id:base64key lines, the current key first (default: --key-env)")
	cmd.PersistentFlags().StringVar(&keyEnv, "key-env", encryption.EnvVar, "environment variable holding the master keys, id:base64key comma-separated, the current first")
	cmd.PersistentFlags().StringVar(&bucket, "bucket", encryption.DefaultBucket, "KV bucket of the data keys")
	rewrap := &cobra.Command{
		Use:   "rewrap",
		Short: "Wrap every data key with the current master key, in place",
		Long: `Rotates the master key without rewriting any event: every data key in the
bucket that an older master key wraps is unwrapped and wrapped anew with the
current one (the first in the key file or variable), with compare-and-set.
Keep the older keys after the current one until this finishes; once no data
key uses a master key, its key check is removed and it may go from the file.
Give every process the new key as its current one first, so none keeps
wrapping new data keys with the old one. Safe to run again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRewrap(cmd.Context(), cmd.OutOrStdout(), configPath, natsURL, keyFile, keyEnv, bucket)
		},
	}
	cmd.AddCommand(rewrap)
	return refuseUnknown(cmd)
}

func masterKeys(keyFile, keyEnv string) (encryption.KeyProvider, error) {
	if keyFile != "" {
		return encryption.FileKeys(keyFile)
	}
	return encryption.EnvKeys(keyEnv)
}

func runRewrap(ctx context.Context, out io.Writer, configPath, natsURL, keyFile, keyEnv, bucket string) error {
	keys, err := masterKeys(keyFile, keyEnv)
	if err != nil {
		return err
	}
	js, _, closeNATS, err := openJetStream(ctx, configPath, natsURL, "lexigram keys")
	if err != nil {
		return err
	}
	defer closeNATS()
	// A registry of its own: the ring only rewraps here, it seals nothing.
	ring, err := encryption.Open(ctx, js, keys, encryption.Options{Bucket: bucket, Registry: platform.NewRegistry()})
	if err != nil {
		return err
	}
	defer func() { _ = ring.Close() }()
	fmt.Fprintf(out, "rewrap: data keys in bucket %s to master key %s\n", bucket, keys.KeyID())
	p, err := ring.Rewrap(ctx, func(p encryption.RewrapProgress) {
		fmt.Fprintf(out, "rewrap: %d/%d data keys: %d rewrapped, %d forgotten (left alone)\n", p.Done, p.Total, p.Rewrapped, p.Forgotten)
	})
	if err != nil {
		return fmt.Errorf("rewrap stopped after %d of %d data keys (run it again to go on): %w", p.Done, p.Total, err)
	}
	retired := "none"
	if len(p.Retired) > 0 {
		retired = strings.Join(p.Retired, ", ") + " (no data key uses them now: they may go from the key file)"
	}
	fmt.Fprintf(out, "rewrap: done: %d of %d data keys rewrapped to %s; master keys retired: %s\n", p.Rewrapped, p.Total, keys.KeyID(), retired)
	return nil
}
