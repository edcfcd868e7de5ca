package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/lexigram/events/config"
	"github.com/lexigram/events/embedded"
	"github.com/lexigram/events/handlers/durable"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/kvsnapshot"
	"github.com/lexigram/events/platform"
)

func serveCommand() *cobra.Command {
	var configPath, natsURL, httpAddr string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Start the node: NATS (embedded unless --nats-url), the event store, /healthz and /metrics",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configPath == "" {
				configPath = os.Getenv(config.ConfigFileEnv)
			}
			cfg, err := config.Load(configPath)
			if err != nil {
				return err
			}
			if natsURL != "" {
				cfg.NATS.URLs = []string{natsURL}
			}
			if httpAddr != "" {
				cfg.HTTP.Addr = httpAddr
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return serve(ctx, cfg, cfg.Logging.NewLogger(cmd.ErrOrStderr()))
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "YAML configuration file (default $"+config.ConfigFileEnv+")")
	cmd.Flags().StringVar(&natsURL, "nats-url", "", "connect to this NATS server instead of starting the embedded one")
	cmd.Flags().StringVar(&httpAddr, "http-addr", "", "listen address for /healthz and /metrics (default 127.0.0.1:8080)")
	return cmd
}

// serve runs the node until ctx ends, then stops it in reverse order.
func serve(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	slog.SetDefault(log)
	n, err := openNode(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer n.close(log)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newStreamCollector(n.store, n.nc), newConsumerCollector(n.stream, n.dlq))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", n.healthz)

	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("http.addr %s: %w: free the port or choose another with --http-addr", cfg.HTTP.Addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Info("serving health and metrics", "url", "http://"+ln.Addr().String(), "paths", "/healthz /metrics")
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case <-ctx.Done():
		log.Info("stopping")
	case err := <-serveErr:
		return fmt.Errorf("http server: %w", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("http shutdown", "err", err)
	}
	return nil
}

// node is what serve runs: the NATS connection (and the embedded server
// when there is one) and the stores on it.
type node struct {
	server      *embedded.Server // nil when connected to an external NATS
	nc          *nats.Conn
	js          jetstream.JetStream
	store       *lxjs.EventStore
	snapshots   *kvsnapshot.SnapshotStore
	checkpoints *kvsnapshot.CheckpointStore
	dlq         *durable.DLQ
	stream      jetstream.Stream
}

func openNode(ctx context.Context, cfg config.Config, log *slog.Logger) (_ *node, err error) {
	n := &node{} // not the result: a failed open returns nil, and this closes what it had opened
	defer func() {
		if err != nil {
			n.close(log)
		}
	}()
	if cfg.NATS.Embedded() {
		e := cfg.NATS.EmbeddedServer
		n.server, err = embedded.Start(ctx, embedded.Options{
			Host: e.Host, Port: e.Port, DontListen: e.DontListen, DataDir: e.DataDir,
			FsyncInterval: e.FsyncInterval, Logger: log,
		})
		if err != nil {
			return nil, fmt.Errorf("start the embedded NATS server with its data in %s: %w: set nats.embedded.data_dir to a directory this process can create and write, or connect to a running server with --nats-url", e.DataDir, err)
		}
		if n.nc, err = n.server.Connect(nats.Name(cfg.NATS.Name)); err != nil {
			return nil, fmt.Errorf("connect to the embedded NATS server: %w", err)
		}
	} else {
		urls := strings.Join(cfg.NATS.URLs, ",")
		if n.nc, err = nats.Connect(urls, cfg.NATS.Options()...); err != nil {
			return nil, explainConnect(urls, err, "check --nats-url or nats.urls, and that the server runs; leave both unset to run the embedded server")
		}
		log.Info("connected to NATS", "url", n.nc.ConnectedUrlRedacted(), "server", n.nc.ConnectedServerVersion())
	}
	if n.js, err = jetstream.New(n.nc); err != nil {
		return nil, err
	}
	if n.store, err = openStore(ctx, n.js, cfg, log); err != nil {
		return nil, err
	}
	storage := storageOf(cfg)
	if n.stream, err = n.js.Stream(ctx, n.store.StreamName()); err != nil {
		return nil, err
	}
	if n.dlq, err = durable.OpenDLQ(ctx, n.js, n.store, durable.DLQOptions{Replicas: cfg.Store.Replicas, Storage: storage}); err != nil {
		return nil, err
	}
	if n.snapshots, err = kvsnapshot.NewSnapshotStore(ctx, n.js, kvsnapshot.SnapshotOptions{
		Bucket: cfg.Snapshots.Bucket, Replicas: cfg.Store.Replicas, Storage: storage,
	}); err != nil {
		return nil, err
	}
	if n.checkpoints, err = kvsnapshot.NewCheckpointStore(ctx, n.js, kvsnapshot.CheckpointOptions{
		Bucket: cfg.Snapshots.CheckpointBucket, Replicas: cfg.Store.Replicas, Storage: storage,
	}); err != nil {
		return nil, err
	}
	return n, nil
}

// openStore opens the event store the configuration describes.
func openStore(ctx context.Context, js jetstream.JetStream, cfg config.Config, log *slog.Logger) (*lxjs.EventStore, error) {
	codec, err := platform.CodecByName(cfg.Store.Codec)
	if err != nil {
		return nil, err
	}
	return lxjs.New(ctx, js, lxjs.Options{
		Stream: cfg.Store.Stream, SubjectPrefix: cfg.Store.SubjectPrefix, Replicas: cfg.Store.Replicas,
		Storage: storageOf(cfg), MaxAge: cfg.Store.MaxAge, MaxBytes: max(cfg.Store.MaxBytes, 0),
		DuplicateWindow: cfg.Store.DuplicateWindow, Codec: codec, Logger: log,
		GroupCommit: lxjs.GroupCommit{Enabled: cfg.GroupCommit()},
	})
}

func storageOf(cfg config.Config) jetstream.StorageType {
	if cfg.Store.Storage == "memory" {
		return jetstream.MemoryStorage
	}
	return jetstream.FileStorage
}

func (n *node) close(log *slog.Logger) {
	if n.nc != nil {
		if err := n.nc.Drain(); err != nil {
			n.nc.Close()
		}
	}
	if n.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.server.Shutdown(ctx); err != nil {
			log.Warn("embedded NATS shutdown", "err", err)
		}
	}
}

// healthz answers 200 when NATS is connected and JetStream answers.
func (n *node) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if st := n.nc.Status(); st != nats.CONNECTED {
		http.Error(w, "nats: "+st.String(), http.StatusServiceUnavailable)
		return
	}
	if _, err := n.js.AccountInfo(ctx); err != nil {
		http.Error(w, "jetstream: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}
