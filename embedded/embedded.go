package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

const (
	// DefaultPort is the standard NATS client port, tried when Options.Port is 0.
	DefaultPort = 4222
	// RandomPort as Options.Port lets the operating system pick a free port.
	RandomPort = -1

	defaultHost         = "127.0.0.1"
	defaultDataDir      = "./data"
	defaultStartTimeout = 10 * time.Second
)

// Options configures the embedded server. The zero value is usable: it
// listens on 127.0.0.1:4222 (or a free port if 4222 is taken), stores
// JetStream data in ./data and fsyncs every write before acknowledging it.
type Options struct {
	// Host is the client listen address. Default "127.0.0.1".
	Host string
	// Port is the client port. 0 means DefaultPort, falling back to a free
	// port (and logging the URL) if DefaultPort is taken. A positive port
	// is a deliberate choice: if it is taken, Start fails. RandomPort (-1)
	// always picks a free port.
	Port int
	// DontListen disables the TCP listener: only in-process connections made
	// with Server.Connect can reach the server.
	DontListen bool

	// DataDir is the JetStream store directory. Default "./data".
	DataDir string
	// FsyncInterval 0 (the default) fsyncs every write before JetStream
	// acknowledges it. A positive value fsyncs in the background at that
	// interval instead: much faster, but writes acknowledged within the last
	// interval can be lost if the OS crashes or the machine loses power. A
	// crash of this process alone loses nothing, the data is already in the
	// OS page cache.
	FsyncInterval time.Duration

	// ServerName names the server in logs and in a cluster. Default: the
	// generated server ID.
	ServerName string
	// MaxPayload is the maximum message size in bytes. 0 means the server
	// default (1 MB).
	MaxPayload int32

	// Logger receives this package's messages. Default slog.Default().
	Logger *slog.Logger
	// ServerLogs forwards the nats-server's own log lines to Logger.
	ServerLogs bool

	// ServerOptions, if set, is called with the server options just before
	// the server is created. It is an escape hatch for settings this package
	// does not expose, such as clustering (see embeddedtest.Cluster).
	ServerOptions func(*server.Options)

	// defaultPort replaces DefaultPort in tests, where 4222 may or may not
	// be taken.
	defaultPort int
}

// Server is a running embedded NATS server.
type Server struct {
	ns         *server.Server
	url        string
	durability string
	log        *slog.Logger
}

// errAddrInUse is what start returns when the client port is taken; Start
// decides whether that means falling back or failing.
var errAddrInUse = errors.New("address in use")

// Start starts the server and waits until it accepts connections. The wait
// is bounded by ctx, or by 10 seconds if ctx has no deadline.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultStartTimeout)
		defer cancel()
	}
	if opts.Host == "" {
		opts.Host = defaultHost
	}
	if opts.DataDir == "" {
		opts.DataDir = defaultDataDir
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.defaultPort == 0 {
		opts.defaultPort = DefaultPort
	}

	port := opts.Port
	if port == 0 {
		port = opts.defaultPort
	}
	s, err := start(ctx, opts, port)
	if errors.Is(err, errAddrInUse) {
		if opts.Port != 0 {
			return nil, fmt.Errorf("embedded: port %d on %s is in use: stop the other process or choose another port (config nats.embedded.port / --port)", port, opts.Host)
		}
		s, err = start(ctx, opts, RandomPort)
		if err == nil {
			opts.Logger.Warn("embedded: default NATS port is in use, listening on a free port instead",
				"port", port, "url", s.url)
		}
	}
	if err != nil {
		return nil, err
	}

	url := s.url
	if opts.DontListen {
		url = "in-process only"
	}
	dataDir, _ := filepath.Abs(opts.DataDir)
	opts.Logger.Info("embedded NATS server started",
		"url", url, "data_dir", dataDir, "durability", s.durability)
	return s, nil
}

func start(ctx context.Context, opts Options, port int) (*Server, error) {
	sopts := &server.Options{
		ServerName: opts.ServerName,
		Host:       opts.Host,
		Port:       port,
		DontListen: opts.DontListen,
		JetStream:  true,
		StoreDir:   opts.DataDir,
		SyncAlways: opts.FsyncInterval <= 0,
		MaxPayload: opts.MaxPayload,
		NoLog:      true,
		NoSigs:     true,
	}
	if opts.FsyncInterval > 0 {
		sopts.SyncInterval = opts.FsyncInterval
	}
	if opts.ServerOptions != nil {
		opts.ServerOptions(sopts)
	}

	ns, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("embedded: invalid server options: %w", err)
	}
	// NewServer applied the server defaults; read the result before Start,
	// after which the server owns sopts.
	durability := durabilityText(sopts)

	logger := &serverLogger{}
	if opts.ServerLogs {
		logger.log = opts.Logger
	}
	ns.SetLogger(logger, false, false)

	// Start runs synchronously up to opening the client listener, which
	// includes recovering JetStream data, so it gets bounded by ctx too.
	started := make(chan struct{})
	go func() {
		ns.Start()
		close(started)
	}()
	select {
	case <-started:
	case <-ctx.Done():
		go ns.Shutdown()
		return nil, fmt.Errorf("embedded: NATS server did not start: %w", ctx.Err())
	}

	if err := logger.fatal(); err != nil {
		stop(ns)
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, errAddrInUse
		}
		return nil, fmt.Errorf("embedded: NATS server failed to start: %w", err)
	}

	deadline, _ := ctx.Deadline()
	if !ns.ReadyForConnections(time.Until(deadline)) {
		stop(ns)
		return nil, fmt.Errorf("embedded: NATS server not ready for connections: %w", context.DeadlineExceeded)
	}

	s := &Server{ns: ns, durability: durability, log: opts.Logger}
	if !opts.DontListen {
		// Addr has the resolved port when a random one was asked for.
		addr := ns.Addr().(*net.TCPAddr)
		s.url = "nats://" + net.JoinHostPort(opts.Host, strconv.Itoa(addr.Port))
	}
	return s, nil
}

func stop(ns *server.Server) {
	ns.Shutdown()
	ns.WaitForShutdown()
}

func durabilityText(o *server.Options) string {
	if o.SyncAlways {
		return "fsync before ack"
	}
	return fmt.Sprintf("fsync every %s (acknowledged writes can be lost on power failure)", o.SyncInterval)
}

// ClientURL is the nats:// URL for clients in other processes, or "" when
// the server was started with DontListen.
func (s *Server) ClientURL() string { return s.url }

// Connect opens an in-process connection: no socket, no port, works with
// DontListen.
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	return nats.Connect("", append([]nats.Option{nats.InProcessServer(s.ns)}, opts...)...)
}

// Durability describes the fsync policy in words, as logged by Start.
func (s *Server) Durability() string { return s.durability }

// Shutdown stops the server and waits until it has closed its store, or
// until ctx is done.
func (s *Server) Shutdown(ctx context.Context) error {
	// Only the call that actually stops the server logs it; test cleanups
	// may shut down servers that were already stopped.
	wasRunning := s.ns.Running()
	done := make(chan struct{})
	go func() {
		stop(s.ns)
		close(done)
	}()
	select {
	case <-done:
		if wasRunning {
			s.log.Info("embedded NATS server stopped")
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("embedded: NATS server shutdown: %w", ctx.Err())
	}
}

// NATS returns the underlying server, for tests and settings this package
// does not wrap.
func (s *Server) NATS() *server.Server { return s.ns }
