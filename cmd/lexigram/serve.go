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
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/lexigram/events/config"
	"github.com/lexigram/events/node"
	"github.com/lexigram/events/node/dashboard"
	"github.com/lexigram/events/node/httpapi"
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

// serve runs the node until ctx ends, serving /healthz and /metrics
// while it runs and while it stops.
func serve(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	slog.SetDefault(log)
	n, err := node.Open(ctx, cfg, node.Options{Logger: log})
	if err != nil {
		return err
	}
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRun()
	ran := make(chan error, 1)
	go func() { ran <- n.Run(runCtx) }()
	stop := func() error { stopRun(); return <-ran }
	select {
	case <-n.Ready():
	case err := <-ran:
		return err
	}
	stream, err := n.JetStream().Stream(ctx, n.Store().StreamName())
	if err != nil {
		return errors.Join(err, stop())
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newStreamCollector(n.Store(), n.Conn()), newConsumerCollector(stream, n.DLQ()), n.Projections().Collector())
	stopScrub, err := startScrubber(ctx, cfg, n.JetStream(), n.Snapshots(), reg, log) // the background audit, if store.scrub_rate
	if err != nil {
		return errors.Join(err, stop())
	}
	defer stopScrub()
	stopNode := stop
	stop = func() error { stopScrub(); return stopNode() } // the audit ends before NATS closes
	h := nodeHealth{n: n}
	healthz := h.healthz
	if bs := n.Bridges(); bs != nil {
		reg.MustRegister(bs.Collectors()...)
		healthz = healthzWithBridges(healthz, bs)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", healthz)
	public := !httpapi.IsLoopback(cfg.HTTP.Addr)
	mux.Handle("/api/", httpapi.Handler(n, httpapi.Options{Token: cfg.HTTP.Token, Public: public, Logger: log}))
	ui, err := dashboard.New(n, dashboard.Options{Token: cfg.HTTP.Token, Public: public, Logger: log})
	if err != nil {
		return errors.Join(err, stop())
	}
	mux.Handle("/ui/", ui)
	mux.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusFound))

	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return errors.Join(fmt.Errorf("http.addr %s: %w: free the port or choose another with --http-addr", cfg.HTTP.Addr, err), stop())
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Info("serving health and metrics, the API and the dashboard", "url", "http://"+ln.Addr().String(), "paths", "/healthz /metrics /api/ /ui/",
		"durability", n.Store().Durability().String(), "durability_level", n.Store().Durability().Level())
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("stopping")
		runErr = stop() // health and metrics answer while the node finishes its work
	case err := <-serveErr:
		runErr = errors.Join(fmt.Errorf("http server: %w", err), stop())
	case err := <-ran:
		runErr = err
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("http shutdown", "err", err)
	}
	return runErr
}

// nodeHealth answers /healthz for a node.
type nodeHealth struct{ n *node.Node }

// healthz answers 200 when NATS is connected, JetStream answers and the
// stream's durability meets store.require_durability (writeHealth).
func (h nodeHealth) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if st := h.n.Conn().Status(); st != nats.CONNECTED {
		http.Error(w, "nats: "+st.String(), http.StatusServiceUnavailable)
		return
	}
	if _, err := h.n.JetStream().AccountInfo(ctx); err != nil {
		http.Error(w, "jetstream: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	writeHealth(ctx, w, r, h.n.Store())
}
