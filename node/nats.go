package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/lexigram/events/config"
	"github.com/lexigram/events/embedded"
)

// OpenNATS opens the NATS a node runs on: the embedded server when
// nats.urls is empty (server is then set), else a connection to the
// configured servers. On error nothing is left open.
func OpenNATS(ctx context.Context, cfg config.Config, log *slog.Logger) (server *embedded.Server, nc *nats.Conn, err error) {
	if !cfg.NATS.Embedded() {
		urls := strings.Join(cfg.NATS.URLs, ",")
		if nc, err = nats.Connect(urls, cfg.NATS.Options()...); err != nil {
			return nil, nil, ExplainConnect(urls, err, "check --nats-url or nats.urls, and that the server runs; leave both unset to run the embedded server")
		}
		log.Info("connected to NATS", "url", nc.ConnectedUrlRedacted(), "server", nc.ConnectedServerVersion())
		return nil, nc, nil
	}
	e := cfg.NATS.EmbeddedServer
	server, err = embedded.Start(ctx, embedded.Options{
		Host: e.Host, Port: e.Port, DontListen: e.DontListen, DataDir: e.DataDir,
		FsyncInterval: e.FsyncInterval, Logger: log,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("start the embedded NATS server with its data in %s: %w: set nats.embedded.data_dir to a directory this process can create and write, or connect to a running server with --nats-url", e.DataDir, err)
	}
	if nc, err = server.Connect(nats.Name(cfg.NATS.Name)); err != nil {
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = server.Shutdown(shutdownCtx)
		return nil, nil, fmt.Errorf("connect to the embedded NATS server: %w", err)
	}
	return server, nc, nil
}

// ExplainConnect turns a failed connect into an error that names where
// (without credentials) and what to do; unreachable says what to do when
// nothing answers.
func ExplainConnect(urls string, err error, unreachable string) error {
	where := RedactURLs(urls)
	switch {
	case errors.Is(err, nats.ErrAuthorization), strings.Contains(strings.ToLower(err.Error()), "authorization violation"):
		return fmt.Errorf("connect to NATS at %s: %w: the server refused the credentials: check nats.user and nats.password, nats.token, nats.creds_file or nats.nkey_file, or the user:password in the URL", where, err)
	case errors.Is(err, nats.ErrNoServers):
		return fmt.Errorf("connect to NATS at %s: %w: nothing answers there (%s)", where, err, unreachable)
	}
	return fmt.Errorf("connect to NATS at %s: %w", where, err)
}

// RedactURLs hides the user and password of each comma-separated URL.
func RedactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, u := range parts {
		scheme, rest, ok := strings.Cut(u, "://")
		if at := strings.LastIndex(rest, "@"); ok && at >= 0 {
			parts[i] = scheme + "://[redacted]" + rest[at:]
		}
	}
	return strings.Join(parts, ",")
}
