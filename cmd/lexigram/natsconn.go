package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/config"
	"github.com/lexigram/events/embedded"
)

// connectNode connects to the NATS of a running node: natsURL, or the
// configuration's (nats.urls, else the embedded server's host and port).
func connectNode(ctx context.Context, configPath, natsURL, clientName string) (*nats.Conn, config.Config, error) {
	if configPath == "" {
		configPath = os.Getenv(config.ConfigFileEnv)
	}
	cfg, err := config.Load(configPath)
	if err != nil {
		return nil, cfg, err
	}
	url, opts := strings.Join(cfg.NATS.URLs, ","), cfg.NATS.Options()
	if natsURL != "" {
		url = natsURL
	} else if cfg.NATS.Embedded() {
		e := cfg.NATS.EmbeddedServer
		port := e.Port
		switch {
		case port == 0:
			port = embedded.DefaultPort
		case port < 0:
			return nil, cfg, fmt.Errorf("nats.embedded.port is %d (random): the node's port cannot be known, pass --nats-url", port)
		}
		url = fmt.Sprintf("nats://%s:%d", e.Host, port)
	}
	nc, err := nats.Connect(url, append(opts, nats.Name(clientName))...)
	if err != nil {
		return nil, cfg, explainConnect(url, err, "is the node running? start it with `lexigram serve`, or pass --nats-url")
	}
	return nc, cfg, nil
}

// openJetStream connects to a running node's NATS (see connectNode) and
// returns its JetStream and a func that closes the connection.
func openJetStream(ctx context.Context, configPath, natsURL, clientName string) (jetstream.JetStream, config.Config, func(), error) {
	nc, cfg, err := connectNode(ctx, configPath, natsURL, clientName)
	if err != nil {
		return nil, cfg, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, cfg, nil, err
	}
	return js, cfg, nc.Close, nil
}

// explainConnect turns a failed connect into an error that names where
// (without credentials) and what to do; unreachable says what to do when
// nothing answers.
func explainConnect(urls string, err error, unreachable string) error {
	where := redactURLs(urls)
	switch {
	case errors.Is(err, nats.ErrAuthorization), strings.Contains(strings.ToLower(err.Error()), "authorization violation"):
		return fmt.Errorf("connect to NATS at %s: %w: the server refused the credentials: check nats.user and nats.password, nats.token, nats.creds_file or nats.nkey_file, or the user:password in the URL", where, err)
	case errors.Is(err, nats.ErrNoServers):
		return fmt.Errorf("connect to NATS at %s: %w: nothing answers there (%s)", where, err, unreachable)
	}
	return fmt.Errorf("connect to NATS at %s: %w", where, err)
}

// redactURLs hides the user and password of each comma-separated URL.
func redactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, u := range parts {
		scheme, rest, ok := strings.Cut(u, "://")
		if at := strings.LastIndex(rest, "@"); ok && at >= 0 {
			parts[i] = scheme + "://[redacted]" + rest[at:]
		}
	}
	return strings.Join(parts, ",")
}

// openNATS opens the NATS a node runs on, as serve and bridge do: the
// embedded server when no URLs are configured (server is then set), else
// a connection to the configured servers. On error nothing is left open.
func openNATS(ctx context.Context, cfg config.Config, log *slog.Logger) (server *embedded.Server, nc *nats.Conn, err error) {
	if !cfg.NATS.Embedded() {
		urls := strings.Join(cfg.NATS.URLs, ",")
		if nc, err = nats.Connect(urls, cfg.NATS.Options()...); err != nil {
			return nil, nil, explainConnect(urls, err, "check --nats-url or nats.urls, and that the server runs; leave both unset to run the embedded server")
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
