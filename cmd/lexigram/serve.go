package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/lexigram/events/config"
	"github.com/lexigram/events/examples/orders"
	"github.com/lexigram/events/node"
	"github.com/lexigram/events/node/dashboard"
	"github.com/lexigram/events/node/httpapi"
	"github.com/lexigram/events/platform"
)

func serveCommand() *cobra.Command {
	var configPath, natsURL, httpAddr, example, postgres, postgresSchema string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Start the node: NATS (embedded unless --nats-url), the event store, the example Orders domain, the HTTP API, /healthz and /metrics",
		Args:  cobra.NoArgs,
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
			flags := cmd.Flags()
			if flags.Changed("example") {
				if err := checkExample(example); err != nil {
					return err
				}
				cfg.Example.Name = example
			}
			if flags.Changed("postgres") {
				cfg.Example.PostgresURL = postgres
			}
			if flags.Changed("postgres-schema") {
				cfg.Example.PostgresSchema = postgresSchema
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return serveWith(ctx, cfg, cfg.Logging.NewLogger(cmd.ErrOrStderr()),
				serveOptions{Example: cfg.Example.Name, Postgres: cfg.Example.PostgresURL, PostgresSchema: cfg.Example.PostgresSchema, Banner: cmd.ErrOrStderr()})
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "YAML configuration file (default $"+config.ConfigFileEnv+")")
	cmd.Flags().StringVar(&natsURL, "nats-url", "", "connect to this NATS server instead of starting the embedded one")
	cmd.Flags().StringVar(&httpAddr, "http-addr", "", "listen address for /healthz and /metrics (default 127.0.0.1:8080)")
	cmd.Flags().StringVar(&example, "example", exampleOrders, `the example domain to install: "orders" (orders, their summary, fulfilment saga and audit log) or "none" (config example.name)`)
	cmd.Flags().StringVar(&postgres, "postgres", "", "also keep the example's order summaries in this PostgreSQL database (postgres://user@host:5432/db; config example.postgres_url)")
	cmd.Flags().StringVar(&postgresSchema, "postgres-schema", "public", "the schema of the example's order_summary and order_line views, with --postgres (config example.postgres_schema)")
	return cmd
}

// The example domains `serve --example` installs.
const (
	exampleOrders = config.ExampleOrders
	exampleNone   = config.ExampleNone
)

func checkExample(name string) error {
	if name != exampleOrders && name != exampleNone {
		return fmt.Errorf("--example %q is not an example: use %q (the default) or %q", name, exampleOrders, exampleNone)
	}
	return nil
}

// serveOptions are what serve takes beyond the configuration. The zero
// value is a node without an example domain that prints no banner.
type serveOptions struct {
	Example        string    // exampleOrders, or "" / exampleNone for none
	Postgres       string    // a PostgreSQL URL for the example's read model; "": none
	PostgresSchema string    // its readers' schema; "": public
	Banner         io.Writer // where the node says where it listens, once it does; nil: nowhere
}

// serve runs the node until ctx ends, serving /healthz and /metrics
// while it runs and while it stops.
func serve(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	return serveWith(ctx, cfg, log, serveOptions{})
}

// serveWith is serve with an example domain and a banner.
func serveWith(ctx context.Context, cfg config.Config, log *slog.Logger, so serveOptions) error {
	slog.SetDefault(log)
	if err := checkExample(cmp.Or(so.Example, exampleNone)); err != nil {
		return err
	}
	var pg *pgxpool.Pool
	if so.Postgres != "" {
		if so.Example != exampleOrders {
			return fmt.Errorf("--postgres (example.postgres_url) is for the example's read model, and --example (example.name) is %q: drop --postgres, or use --example=%s", so.Example, exampleOrders)
		}
		var err error
		if pg, err = openPostgres(ctx, so.Postgres); err != nil {
			return err
		}
		defer pg.Close() // after the node has stopped, projections included
	}
	n, err := node.Open(ctx, cfg, node.Options{Logger: log})
	if err != nil {
		return err
	}
	if so.Example == exampleOrders {
		opts := orders.Options{PostgresSchema: so.PostgresSchema}
		if pg != nil { // a nil *Pool would make a non-nil interface
			opts.Postgres = pg
		}
		if err := orders.Install(ctx, n, opts); err != nil {
			return errors.Join(err, n.Close())
		}
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
	wrongTokens := httpapi.NewWrongTokens(0, 0) // one count for the API and the dashboard
	apiOpts := httpapi.Options{Token: cfg.HTTP.Token, Public: public, Logger: log, WrongTokens: wrongTokens}
	if so.Example == exampleOrders {
		apiOpts.Commands, apiOpts.Queries = orders.HTTPTypes()
	}
	mux.Handle("/api/", httpapi.Handler(n, apiOpts))
	ui, err := dashboard.New(n, dashboard.Options{Token: cfg.HTTP.Token, Public: public, Logger: log, WrongTokens: wrongTokens})
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
	if so.Banner != nil {
		printBanner(ctx, so.Banner, n, "http://"+ln.Addr().String(), so.Example == exampleOrders, cfg.HTTP.Token != "")
	}
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

// openPostgres connects to the example's read-model database, failing
// fast with the URL (its password hidden) and what to check.
func openPostgres(ctx context.Context, rawURL string) (*pgxpool.Pool, error) {
	shown := rawURL
	if u, err := url.Parse(rawURL); err == nil {
		shown = u.Redacted()
	}
	pool, err := pgxpool.New(ctx, rawURL)
	if err != nil {
		return nil, fmt.Errorf("--postgres (example.postgres_url) %s: %w: give a URL such as postgres://user@127.0.0.1:5432/db", shown, err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("--postgres (example.postgres_url) %s: %w: check that PostgreSQL runs there and takes this user, or drop --postgres and example.postgres_url", shown, err)
	}
	return pool, nil
}

// printBanner says, in one block, where the node listens and what to try
// first. The token itself is never printed.
func printBanner(ctx context.Context, w io.Writer, n *node.Node, base string, example, token bool) {
	natsURL, natsKind := "", "embedded"
	if srv := n.Server(); srv != nil {
		natsURL = srv.ClientURL()
		if natsURL == "" {
			natsURL = "(no listener: in-process only)"
		}
	} else {
		natsURL, natsKind = n.Conn().ConnectedUrlRedacted(), "external, "+n.Conn().ConnectedServerVersion()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nlexigram node running\n")
	fmt.Fprintf(&b, "  NATS       %s (%s)\n", natsURL, natsKind)
	fmt.Fprintf(&b, "  HTTP       %s\n", base)
	fmt.Fprintf(&b, "  API        %s/api/  (described at %s/api/openapi.json)\n", base, base)
	fmt.Fprintf(&b, "  dashboard  %s/ui/\n", base)
	fmt.Fprintf(&b, "  health     %s/healthz\n", base)
	fmt.Fprintf(&b, "  metrics    %s/metrics\n", base)
	auth := ""
	if token {
		auth = ` -H "Authorization: Bearer $LEXIGRAM_HTTP_TOKEN"`
	}
	if example {
		id := freeOrderID(ctx, n)
		fmt.Fprintf(&b, "  example    orders: commands order.place, order.add-item, order.remove-item, order.confirm, order.cancel; query order.summary\n")
		fmt.Fprintf(&b, "Try it, placing an order:\n")
		fmt.Fprintf(&b, "  curl -sS%s -H 'Content-Type: application/json' -d '{\"id\":\"%s\",\"customer\":\"ada\"}' %s/api/commands/order.place\n", auth, id, base)
	} else {
		fmt.Fprintf(&b, "  example    none (--example=none)\n")
		fmt.Fprintf(&b, "Try it:\n  curl -sS%s %s/api/openapi.json\n", auth, base)
	}
	_, _ = io.WriteString(w, b.String()+"\n")
}

// freeOrderID is the first of order-1, order-2, ... that has no events,
// so the banner's curl works on a node that already ran it.
func freeOrderID(ctx context.Context, n *node.Node) string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for i := 1; i <= 100; i++ {
		id := "order-" + strconv.Itoa(i)
		used := false
		for _, err := range n.Store().Read(ctx, platform.StreamID{Type: orders.AggregateType, ID: id}, platform.Revision{}) {
			used = err == nil || !errors.Is(err, platform.ErrStreamNotFound)
			break
		}
		if !used {
			return id
		}
	}
	return "order-" + strconv.FormatInt(time.Now().UnixMilli(), 36)
}
