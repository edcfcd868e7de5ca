package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/natscontext"

	"github.com/lexigram/events/config"
	"github.com/lexigram/events/embedded"
	"github.com/lexigram/events/node"
)

// natsContext is --context: a nats CLI context to connect with.
var natsContext string

// natsCreds is --creds: a credentials file (JWT and seed) to connect
// with, in place of the configuration's way to authenticate.
var natsCreds string

// applyCreds puts --creds in cfg, as the only way to authenticate.
func applyCreds(cfg *config.Config) error {
	if natsCreds == "" {
		return nil
	}
	if _, err := os.Stat(natsCreds); err != nil {
		return fmt.Errorf("--creds %s: %w: give the credentials file of a NATS user (nsc generate creds, or the nats CLI's context)", natsCreds, err)
	}
	n := &cfg.NATS
	n.CredsFile, n.NKeyFile, n.User, n.Password, n.Token = natsCreds, "", "", "", ""
	return nil
}

// connectNode connects to the NATS of a running node: natsURL, else the
// nats CLI context named by --context, else the configuration's
// (nats.urls, else the embedded server's host and port). It returns the
// JetStream domain the context names, if any.
func connectNode(ctx context.Context, configPath, natsURL, clientName string) (*nats.Conn, config.Config, string, error) {
	if configPath == "" {
		configPath = os.Getenv(config.ConfigFileEnv)
	}
	cfg, err := config.Load(configPath)
	if err != nil {
		return nil, cfg, "", err
	}
	if err := applyCreds(&cfg); err != nil {
		return nil, cfg, "", err
	}
	if natsURL == "" && natsContext != "" {
		nc, settings, err := natscontext.Connect(natsContext, nats.Name(clientName))
		if err != nil {
			return nil, cfg, "", fmt.Errorf("--context %s: %w (the nats CLI lists its contexts with `nats context ls`)", natsContext, err)
		}
		return nc, cfg, settings.JSDomain, nil
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
			return nil, cfg, "", fmt.Errorf("nats.embedded.port is %d (random): the node's port cannot be known, pass --nats-url", port)
		}
		url = fmt.Sprintf("nats://%s:%d", e.Host, port)
	}
	nc, err := nats.Connect(url, append(opts, nats.Name(clientName))...)
	if err != nil {
		return nil, cfg, "", node.ExplainConnect(url, err, "is the node running? start it with `lexigram serve`, or pass --nats-url")
	}
	return nc, cfg, "", nil
}

// openJetStream connects to a running node's NATS (see connectNode) and
// returns its JetStream and a func that closes the connection.
func openJetStream(ctx context.Context, configPath, natsURL, clientName string) (jetstream.JetStream, config.Config, func(), error) {
	nc, cfg, domain, err := connectNode(ctx, configPath, natsURL, clientName)
	if err != nil {
		return nil, cfg, nil, err
	}
	var js jetstream.JetStream
	if domain != "" {
		js, err = jetstream.NewWithDomain(nc, domain)
	} else {
		js, err = jetstream.New(nc)
	}
	if err != nil {
		nc.Close()
		return nil, cfg, nil, err
	}
	return js, cfg, nc.Close, nil
}
