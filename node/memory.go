package node

import (
	"context"
	"os"

	"github.com/lexigram/events/config"
)

// OpenInMemory opens a node for examples and tests of a whole
// application: the default configuration with an embedded server that
// listens on no port and keeps everything in memory, in a temporary
// directory that Close (or the end of Run) removes.
func OpenInMemory(ctx context.Context, opts Options) (*Node, error) {
	dir, err := os.MkdirTemp("", "lexigram-node-")
	if err != nil {
		return nil, err
	}
	cfg := config.Default()
	cfg.NATS.EmbeddedServer.DataDir = dir
	cfg.NATS.EmbeddedServer.DontListen = true
	cfg.Store.Storage = "memory"
	n, err := Open(ctx, cfg, opts)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	n.tempDir = dir
	return n, nil
}
