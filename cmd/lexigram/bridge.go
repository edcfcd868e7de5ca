package main

import (
	"bytes"
	"context"
	"encoding/json"
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
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/lexigram/events/bridges/bridgeconfig"
	"github.com/lexigram/events/config"
	"github.com/lexigram/events/embedded"
	"github.com/lexigram/events/node"
)

func bridgeCommand() *cobra.Command {
	var configPath, natsURL, httpAddr string
	cmd := &cobra.Command{
		Use:   "bridge",
		Short: "Run the configured bridges on their own: NATS (embedded unless --nats-url), /healthz and /metrics",
		Long: `Run the bridges of the configuration's bridges section (see examples/bridges/)
on their own, against the embedded NATS server or --nats-url. /healthz lists
each bridge and answers 503 while a broker or NATS is disconnected; /metrics
has the bridges' counters and lag. SIGINT or SIGTERM stops taking messages,
finishes those in flight (each bridge's stop_timeout) and exits.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configPath == "" {
				configPath = os.Getenv(config.ConfigFileEnv)
			}
			cfg, err := config.Load(configPath)
			if err != nil {
				return err
			}
			if err := applyCreds(&cfg); err != nil {
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
			if len(cfg.Bridges) == 0 {
				where := "no configuration file was given (--config or $" + config.ConfigFileEnv + ")"
				if configPath != "" {
					where = configPath + " has no bridges section"
				}
				return fmt.Errorf("no bridges to run: %s: list them under bridges:, e.g. as in examples/bridges/rabbitmq.yaml", where)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			context.AfterFunc(ctx, stop) // a second signal ends the process at once
			return runBridges(ctx, cfg, cfg.Logging.NewLogger(cmd.ErrOrStderr()))
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "YAML configuration file with a bridges section (default $"+config.ConfigFileEnv+")")
	cmd.Flags().StringVar(&natsURL, "nats-url", "", "connect to this NATS server instead of starting the embedded one")
	cmd.Flags().StringVar(&httpAddr, "http-addr", "", "listen address for /healthz and /metrics (default 127.0.0.1:8080)")
	return cmd
}

// runBridges runs cfg's bridges until ctx ends, then stops them, finishing
// the messages in flight, and closes NATS. It returns an error when the
// bridges do not start, or do not all finish within their stop_timeout.
func runBridges(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	slog.SetDefault(log)
	if err := bridgeconfig.Check(cfg.Bridges); err != nil {
		return err // before anything is opened
	}
	server, nc, err := node.OpenNATS(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeNATS(server, nc, log)
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	opts := bridgeconfig.Options{Store: cfg.Store, Logger: log}
	for _, b := range cfg.Bridges {
		if b.Direction == config.BridgeOutbound && b.ReadsEventStore(cfg.Store) || b.LandsAsEvents() {
			// As serve does: the stream exists, with the store's settings.
			store, err := node.OpenStore(ctx, js, cfg, log, node.Durability(cfg, server))
			if err != nil {
				return err
			}
			opts.Events = store
			break
		}
	}
	set, err := bridgeconfig.Start(ctx, js, cfg.Bridges, opts)
	if err != nil {
		return err
	}
	stopBridges := func() error {
		log.Info("stopping the bridges: finishing the messages in flight", "bridges", set.Len())
		return set.Stop(context.Background())
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), natsConnected(nc))
	reg.MustRegister(set.Collectors()...)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("GET /healthz", bridgeHealth{nc: nc, js: js, set: set})
	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return errors.Join(fmt.Errorf("http.addr %s: %w: free the port or choose another with --http-addr", cfg.HTTP.Addr, err), stopBridges())
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Info("serving health and metrics", "url", "http://"+ln.Addr().String(), "paths", "/healthz /metrics")
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		runErr = fmt.Errorf("http server: %w", err)
	}
	// Health and metrics answer while the bridges finish.
	stopErr := stopBridges()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("http shutdown", "err", err)
	}
	if err := errors.Join(runErr, stopErr); err != nil {
		return err
	}
	log.Info("bridges stopped")
	return nil
}

// natsConnected is 1 while the NATS connection is up.
func natsConnected(nc *nats.Conn) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "lexigram_nats_connected", Help: "1 when the NATS connection is up."},
		func() float64 {
			if nc.IsConnected() {
				return 1
			}
			return 0
		})
}

// bridgeHealth is the bridge process's /healthz: 200 while NATS, JetStream
// and every bridge's broker answer, 503 otherwise, with a JSON body that
// says which.
type bridgeHealth struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	set *bridgeconfig.Set
}

type bridgeHealthBody struct {
	Status    string                `json:"status"` // "ok" or "unavailable"
	NATS      string                `json:"nats"`
	JetStream string                `json:"jetstream"`
	Bridges   []bridgeconfig.Status `json:"bridges"`
}

func (h bridgeHealth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	body := bridgeHealthBody{Status: "ok", NATS: h.nc.Status().String(), JetStream: "ok", Bridges: h.set.Status()}
	if _, err := h.js.AccountInfo(ctx); err != nil {
		body.JetStream = err.Error()
	}
	healthy := h.nc.Status() == nats.CONNECTED && body.JetStream == "ok"
	for _, b := range body.Bridges {
		healthy = healthy && b.Connected
	}
	code := http.StatusOK
	if !healthy {
		body.Status, code = "unavailable", http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}

// healthzWithBridges adds the bridges to serve's /healthz: their status
// after the node's answer (a "bridges" key in a JSON object, else one line
// each), and 503 while one is disconnected. With no bridges it is next.
func healthzWithBridges(next http.HandlerFunc, set *bridgeconfig.Set) http.HandlerFunc {
	if set.Len() == 0 {
		return next
	}
	return func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{header: http.Header{}, code: http.StatusOK}
		next(rec, r)
		status := set.Status()
		code := rec.code
		for _, b := range status {
			if !b.Connected {
				code = http.StatusServiceUnavailable
			}
		}
		body := rec.body.Bytes()
		var obj map[string]any
		if json.Unmarshal(body, &obj) == nil && obj != nil {
			obj["bridges"] = status
			body, _ = json.Marshal(obj)
			body = append(body, '\n')
		} else {
			for _, b := range status {
				state := "connected"
				if !b.Connected {
					state = "disconnected"
				}
				body = fmt.Appendf(body, "bridge %s (%s, %s): %s\n", b.Name, b.Direction, b.Broker, state)
			}
		}
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(code)
		_, _ = w.Write(body)
	}
}

// recorder keeps a handler's answer so that healthzWithBridges can add
// to it.
type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(code int)        { r.code = code }

// closeNATS drains the connection, so the last acks reach the server,
// then stops the embedded server, if there is one.
func closeNATS(server *embedded.Server, nc *nats.Conn, log *slog.Logger) {
	if err := nc.Drain(); err != nil {
		nc.Close()
	}
	if server == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := server.Shutdown(ctx); err != nil {
		log.Warn("embedded NATS shutdown", "err", err)
	}
}
