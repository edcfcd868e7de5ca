// Command lexigram runs a lexigram events node and its tools.
//
//	lexigram serve     start the node: NATS (embedded or external), the event store, /healthz and /metrics
//	lexigram bridge    run the configured bridges on their own, with /healthz and /metrics
//	lexigram dlq       list, replay and discard the dead letters of durable event handlers
//	lexigram sagas     list and show saga instances; retry, abort them or fire their timers
//	lexigram streams   list the streams with their size, replicas, storage and durability
//	lexigram keys      rewrap the data keys of payload encryption after a master-key rotation
//	lexigram audit     check the event stream's integrity: hash chains, versions, global order
//	lexigram bench     measure the store against the raw NATS calls it stands on
//	lexigram version   print the version
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

func main() {
	if err := rootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "lexigram:", err)
		os.Exit(1)
	}
}

// rootCommand is the whole CLI.
func rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "lexigram",
		Short:         "lexigram events: event sourcing and CQRS on NATS JetStream",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&natsContext, "context", "", "connect with the nats CLI context `NAME` (nats context ls lists them); --nats-url goes first")
	root.PersistentFlags().StringVar(&natsCreds, "creds", "", "connect with this NATS credentials `FILE` (JWT and seed) instead of the configured authentication")
	root.AddCommand(serveCommand(), bridgeCommand(), dlqCommand(), eventsCommand(), projectionsCommand(), sagasCommand(), snapshotsCommand(), streamsCommand(), keysCommand(), auditCommand(), benchCommand(), benchServerCommand(), versionCommand())
	root.AddCommand(schemaCommand())
	return root
}

// refuseUnknown makes a command that only groups subcommands refuse an
// argument it does not know (cobra would print the help and exit 0),
// naming the subcommands it has, and print its help when given none.
func refuseUnknown(cmd *cobra.Command) *cobra.Command {
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cmd.Help()
		}
		var names []string
		for _, c := range cmd.Commands() {
			if c.IsAvailableCommand() {
				names = append(names, c.Name())
			}
		}
		return fmt.Errorf("unknown command %q for %q: use one of %s (see %s --help)", args[0], cmd.CommandPath(), strings.Join(names, ", "), cmd.CommandPath())
	}
	return cmd
}
