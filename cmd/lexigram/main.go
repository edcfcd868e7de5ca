// Command lexigram runs a lexigram events node and its tools.
//
//	lexigram serve     start the node: NATS (embedded or external), the event store, /healthz and /metrics
//	lexigram dlq       list, replay and discard the dead letters of durable event handlers
//	lexigram sagas     list and show saga instances; retry, abort them or fire their timers
//	lexigram bench     measure the store against the raw NATS calls it stands on
//	lexigram version   print the version
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	root := &cobra.Command{
		Use:           "lexigram",
		Short:         "lexigram events: event sourcing and CQRS on NATS JetStream",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(serveCommand(), dlqCommand(), sagasCommand(), benchCommand(), benchServerCommand(), versionCommand())
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "lexigram:", err)
		os.Exit(1)
	}
}
