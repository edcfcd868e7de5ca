package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/lexigram/events/embedded"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// Options configure Run.
type Options struct {
	Quick   bool      // a smaller run: under a minute on two cores
	NATSURL string    // "": start embedded servers in temp dirs
	Out     io.Writer // progress lines; nil: none
	Filter  string    // run only figures whose name contains it
	// InProcess connects to the embedded servers without sockets, as the
	// node's own components do. The default connects over loopback TCP, as
	// applications do; in-process calls are cheaper, so the store's fixed
	// cost per call is a larger share of them.
	InProcess bool
	// Replicas is the replicas of the event streams made on the server of
	// NATSURL, so that a cluster is measured with the streams it will run.
	// 0 means 1. Only with NATSURL.
	Replicas int
	// Storage, when set, is the storage of every event stream made:
	// "file" or "memory". Empty: each figure's own (file but where a name
	// says /mem).
	Storage string
	// ServerCommand starts each embedded server as a child process: the
	// command with "--data-dir DIR --fsync-interval D" appended, which
	// prints "URL <client url>" on stdout. A server in its own process
	// keeps its heap out of the client's garbage collection, as a real
	// server does. Empty: the servers run inside this process.
	ServerCommand []string
}

// Figure is one measurement of ours against raw.
type Figure struct {
	Name   string  `json:"name"`
	Ours   float64 `json:"ours"`
	Raw    float64 `json:"raw"`
	Unit   string  `json:"unit"`
	Ratio  float64 `json:"ratio"`            // ours/raw (for alternating rounds, the median of the rounds' ratios); see Target for which way is better
	Target string  `json:"target,omitempty"` // ">= 0.90" (higher is better) or "<= 1.15" (lower is better)
	Note   string  `json:"note,omitempty"`
}

// plan sizes a run.
type plan struct {
	rounds        int           // alternating ours/raw rounds of the append figures
	phase         time.Duration // how long one side of one round appends
	latencyPhase  time.Duration // the same for the latency figures
	loads         int           // repetitions of each load
	readAllN      int           // events preloaded for readall
	readAllRounds int
	allocOps      int
}

var (
	quickPlan = plan{rounds: 3, phase: 600 * time.Millisecond, latencyPhase: 500 * time.Millisecond,
		loads: 10, readAllN: 100_000, readAllRounds: 2, allocOps: 2000}
	// Many short rounds rather than a few long ones: other load on the
	// machine then hits ours and raw alike.
	fullPlan = plan{rounds: 8, phase: 2 * time.Second, latencyPhase: 1500 * time.Millisecond,
		loads: 50, readAllN: 1_000_000, readAllRounds: 3, allocOps: 20_000}
)

// Run measures the figures that match opts.Filter and returns them in
// order. On an error it returns the figures measured so far with it.
func Run(ctx context.Context, opts Options) ([]Figure, error) {
	r, err := newRunner(opts)
	if err != nil {
		return nil, err
	}
	defer r.close()

	var figs []Figure
	for _, j := range r.jobs() {
		if !j.matches(opts.Filter) {
			continue
		}
		names := strings.Join(j.names, ", ")
		r.progress("start  %s", names)
		began := time.Now()
		e, err := r.env(ctx, j.env)
		if err != nil {
			return figs, err
		}
		got, err := j.run(ctx, e)
		if err != nil {
			return figs, fmt.Errorf("bench %s: %w", names, err)
		}
		for _, f := range got {
			if opts.Filter != "" && !strings.Contains(f.Name, opts.Filter) {
				continue
			}
			if f.Ratio == 0 && f.Raw != 0 {
				f.Ratio = f.Ours / f.Raw
			}
			figs = append(figs, f)
			r.progress("done   %-32s ours %s  raw %s  %s  ratio %.2f%s", f.Name, num(f.Ours), num(f.Raw), f.Unit, f.Ratio, verdict(f))
		}
		r.progress("       (%s took %.1fs)", names, time.Since(began).Seconds())
	}
	return figs, nil
}

func verdict(f Figure) string {
	met, ok := f.Met()
	switch {
	case !ok:
		return ""
	case met:
		return "  target " + f.Target + " met"
	}
	return "  target " + f.Target + " MISSED"
}

// job measures one or more figures that share their setup.
type job struct {
	names []string // the figures it yields
	// optIn jobs run only when the filter names them: they take many
	// minutes (cardinality).
	optIn bool
	env   string // the server it runs on: envFsync, envNoFsync or envExternal
	run   func(ctx context.Context, e *env) ([]Figure, error)
}

func (j job) matches(filter string) bool {
	if j.optIn && filter == "" {
		return false
	}
	for _, n := range j.names {
		if strings.Contains(n, filter) {
			return true
		}
	}
	return false
}

const (
	envFsync    = "fsync"
	envNoFsync  = "nofsync"
	envExternal = "as-configured"
	envR3       = "r3" // three servers in this process, fsync before ack, streams with three replicas
)

// jobs lists every figure in the order they run.
func (r *runner) jobs() []job {
	durability := []string{envFsync, envNoFsync}
	plain := envNoFsync // where figures that do not depend on fsync run
	if r.opts.NATSURL != "" {
		durability, plain = []string{envExternal}, envExternal
	}
	var jobs []job
	for _, v := range durability {
		jobs = append(jobs, job{
			names: []string{"append.concurrent/" + v}, env: v,
			run: func(ctx context.Context, e *env) ([]Figure, error) { return r.appendConcurrent(ctx, e, "/"+v) },
		})
	}
	for _, v := range durability {
		jobs = append(jobs, job{
			names: []string{"append.latency.p50/" + v, "append.latency.p99/" + v}, env: v,
			run: func(ctx context.Context, e *env) ([]Figure, error) { return r.appendLatency(ctx, e, "/"+v) },
		})
	}
	for _, v := range durability {
		jobs = append(jobs, job{
			names: []string{"append.batch10/" + v}, env: v,
			run: func(ctx context.Context, e *env) ([]Figure, error) {
				return r.appendBatch10(ctx, e, "/"+v, jetstream.FileStorage)
			},
		})
	}
	jobs = append(jobs,
		job{names: []string{"append.batch10/mem"}, env: plain,
			run: func(ctx context.Context, e *env) ([]Figure, error) {
				return r.appendBatch10(ctx, e, "/mem", jetstream.MemoryStorage)
			}},
		job{names: []string{"load.1000", "load.1000.snapshot"}, env: plain, run: r.load},
		job{names: []string{r.readAllName()}, env: plain, run: r.readAll},
		job{names: []string{r.auditName()}, env: plain, run: r.auditRate},
		job{names: []string{r.schemaCheckName()}, env: plain, run: r.schemaCheckRate},
		job{names: []string{"append.allocs"}, env: plain, run: r.allocs},
		job{names: []string{"codec.upcast"}, env: plain, run: r.upcastLoad},
	)
	jobs = append(jobs, r.groupCommitJobs()...)
	jobs = append(jobs, r.busJobs()...)
	jobs = append(jobs, r.httpJobs()...)
	jobs = append(jobs, r.durableJobs()...)
	jobs = append(jobs, r.projectionJobs()...)
	jobs = append(jobs, r.sagaJobs()...)
	jobs = append(jobs, r.bridgeJobs()...)
	jobs = append(jobs, r.bridgeE2EJobs()...)
	jobs = append(jobs, r.webhookJobs()...)
	jobs = append(jobs, r.importJobs()...)
	jobs = append(jobs, r.wsJobs()...)
	jobs = append(jobs, r.cardinalityJobs()...)
	jobs = append(jobs, r.dashboardJobs()...)
	jobs = append(jobs, r.encryptionJobs()...)
	jobs = append(jobs, r.tenancyJobs()...)
	return jobs
}

// runner holds what the figures share: the servers, the registry and
// the names of the streams it creates.
type runner struct {
	opts  Options
	plan  plan
	out   io.Writer
	log   *slog.Logger
	reg   *platform.Registry
	runID string
	seq   int // numbers the streams and buckets of this run
	body  []byte
	envs  map[string]*env
}

func newRunner(opts Options) (*runner, error) {
	switch {
	case opts.Replicas < 0 || opts.Replicas > 5:
		return nil, fmt.Errorf("bench: --replicas %d: use 1 to 5", opts.Replicas)
	case opts.Replicas > 1 && opts.NATSURL == "":
		return nil, fmt.Errorf("bench: --replicas %d needs --nats-url: the embedded servers are single nodes (the /r3 figures start their own three-node cluster)", opts.Replicas)
	case opts.Storage != "" && opts.Storage != "file" && opts.Storage != "memory":
		return nil, fmt.Errorf("bench: --storage %q: use file or memory", opts.Storage)
	}
	r := &runner{
		opts:  opts,
		plan:  fullPlan,
		out:   opts.Out,
		log:   slog.New(slog.DiscardHandler),
		reg:   platform.NewRegistry(),
		runID: strings.ToLower(nuid.Next()[:10]),
		envs:  map[string]*env{},
	}
	if opts.Quick {
		r.plan = quickPlan
	}
	if opts.Out != nil {
		r.out = &lockedWriter{w: opts.Out}
		// Warnings of the embedded servers and the store say why a step
		// failed (a server's "stream create failed" names the cause its
		// API answer leaves out), so they go with the progress lines.
		r.log = slog.New(slog.NewTextHandler(r.out, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if r.out == nil {
		r.out = io.Discard
	}
	if err := platform.Register[Deposited](r.reg, depositedType, 1); err != nil {
		return nil, fmt.Errorf("bench: register the event type: %w", err)
	}
	var err error
	if r.body, err = platform.Msgpack.Marshal(deposit(accountID(0))); err != nil {
		return nil, fmt.Errorf("bench: encode the event body: %w", err)
	}
	if len(r.body) != BodySize {
		return nil, fmt.Errorf("bench: the event body is %d bytes, not %d: adjust Deposited", len(r.body), BodySize)
	}
	return r, nil
}

// lockedWriter lets the progress lines and the servers' log share Out.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (r *runner) progress(format string, args ...any) {
	fmt.Fprintf(r.out, "bench: "+format+"\n", args...)
}

// env is one server and a connection to it.
type env struct {
	label    string
	srv      *embedded.Server   // nil for an external server or a child process
	peers    []*embedded.Server // the other nodes of a cluster
	replicas int                // of the streams made here; 0 means 1
	child    *exec.Cmd          // the server's process, with ServerCommand
	dir      string
	nc       *nats.Conn
	js       jetstream.JetStream
}

// env returns the server of a kind, starting it on first use.
func (r *runner) env(ctx context.Context, kind string) (*env, error) {
	if e, ok := r.envs[kind]; ok {
		return e, nil
	}
	e := &env{label: kind}
	var err error
	switch kind {
	case envExternal:
		if e.nc, err = nats.Connect(r.opts.NATSURL, nats.Name("lexigram bench")); err != nil {
			return nil, fmt.Errorf("bench: connect to %s: %w", r.opts.NATSURL, err)
		}
		e.replicas = r.opts.Replicas
	case envR3:
		if err := r.startCluster(ctx, e); err != nil {
			e.close()
			return nil, fmt.Errorf("bench: start the three-node cluster: %w", err)
		}
	default:
		if e.dir, err = os.MkdirTemp("", "lexigram-bench-"+kind+"-"); err != nil {
			return nil, fmt.Errorf("bench: temp dir for the %s server: %w", kind, err)
		}
		fsync := time.Duration(0)
		if kind == envNoFsync {
			fsync = 2 * time.Minute
		}
		var url, durability string
		if len(r.opts.ServerCommand) > 0 && !r.opts.InProcess {
			url, err = e.startChild(ctx, r.opts.ServerCommand, fsync)
			durability = "fsync before ack"
			if fsync > 0 {
				durability = "fsync every " + fsync.String()
			}
		} else {
			e.srv, err = embedded.Start(ctx, embedded.Options{Port: embedded.RandomPort, DontListen: r.opts.InProcess, DataDir: e.dir, FsyncInterval: fsync, Logger: r.log})
			if err == nil {
				url, durability = e.srv.ClientURL(), e.srv.Durability()
			}
		}
		if err != nil {
			e.close()
			return nil, fmt.Errorf("bench: start the %s server: %w", kind, err)
		}
		if r.opts.InProcess {
			e.nc, err = e.srv.Connect()
		} else {
			e.nc, err = nats.Connect(url, nats.Name("lexigram bench"))
		}
		if err != nil {
			e.close()
			return nil, fmt.Errorf("bench: connect to the %s server: %w", kind, err)
		}
		r.progress("started an embedded server (%s) in %s", durability, e.dir)
	}
	if e.js, err = jetstream.New(e.nc); err != nil {
		e.close()
		return nil, fmt.Errorf("bench: JetStream context on the %s server: %w", kind, err)
	}
	r.envs[kind] = e
	return e, nil
}

// startChild runs the server command and returns the URL it prints.
func (e *env) startChild(ctx context.Context, command []string, fsync time.Duration) (string, error) {
	args := append(slices.Clone(command[1:]), "--data-dir", e.dir, "--fsync-interval", fsync.String())
	e.child = exec.Command(command[0], args...)
	out, err := e.child.StdoutPipe()
	if err != nil {
		return "", err
	}
	e.child.Stderr = os.Stderr
	if err := e.child.Start(); err != nil {
		return "", err
	}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if url, ok := strings.CutPrefix(sc.Text(), "URL "); ok {
				urls <- url
			}
		}
		close(urls)
	}()
	select {
	case url, ok := <-urls:
		if !ok {
			return "", fmt.Errorf("%s exited without printing its URL", command[0])
		}
		return url, nil
	case <-time.After(30 * time.Second):
		return "", fmt.Errorf("%s printed no URL within 30s", command[0])
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func (e *env) close() {
	if e.nc != nil {
		e.nc.Close()
	}
	if e.child != nil && e.child.Process != nil {
		_ = e.child.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = e.child.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = e.child.Process.Kill()
		}
	}
	for _, s := range append([]*embedded.Server{e.srv}, e.peers...) {
		if s != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_ = s.Shutdown(ctx)
			cancel()
		}
	}
	if e.dir != "" {
		_ = os.RemoveAll(e.dir)
	}
}

func (r *runner) close() {
	for _, e := range r.envs {
		e.close()
	}
}

// newStore creates an event store on a fresh stream of this run. done
// deletes the stream.
func (r *runner) newStore(ctx context.Context, e *env, storage jetstream.StorageType, opts ...func(*lxjs.Options)) (st *lxjs.EventStore, done func(), err error) {
	r.seq++
	name := fmt.Sprintf("LXBENCH_%s_%d", r.runID, r.seq)
	switch r.opts.Storage {
	case "file":
		storage = jetstream.FileStorage
	case "memory":
		storage = jetstream.MemoryStorage
	}
	o := lxjs.Options{
		Stream:        name,
		SubjectPrefix: fmt.Sprintf("lxbench.%s.%d", r.runID, r.seq),
		Replicas:      max(e.replicas, 1),
		Storage:       storage,
		Registry:      r.reg,
		Logger:        r.log,
	}
	for _, f := range opts {
		f(&o)
	}
	st, err = lxjs.New(ctx, e.js, o)
	if err != nil {
		return nil, nil, fmt.Errorf("create stream %s on the %s server: %w", name, e.label, err)
	}
	return st, func() { r.deleteStream(e, name) }, nil
}

// deleteStream removes a stream the bench made. Failing to is reported,
// not returned: the figures are still good.
func (r *runner) deleteStream(e *env, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		r.progress("could not delete stream %s on the %s server: %v (delete it with `nats stream rm %s`)", name, e.label, err, name)
	}
}

// startCluster starts three servers in this process, clustered over
// loopback, and connects to the first. A replicated stream's leader
// acknowledges after a quorum has the write, and relaxes fsync before ack
// to fsync on flush, as the Raft log is synced.
func (r *runner) startCluster(ctx context.Context, e *env) error {
	var err error
	if e.dir, err = os.MkdirTemp("", "lexigram-bench-r3-"); err != nil {
		return err
	}
	routePorts, err := freePorts(3)
	if err != nil {
		return err
	}
	var routes []string
	for _, p := range routePorts {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	var servers []*embedded.Server
	for i, rp := range routePorts {
		dir := filepath.Join(e.dir, fmt.Sprint("n", i))
		s, err := embedded.Start(ctx, embedded.Options{
			Port: embedded.RandomPort, DataDir: dir, ServerName: fmt.Sprint("n", i), Logger: r.log,
			ServerOptions: func(o *server.Options) {
				o.Cluster = server.ClusterOpts{Name: "lexigram-bench", Host: "127.0.0.1", Port: rp}
				o.Routes = server.RoutesFromStr(strings.Join(routes, ","))
			},
		})
		if err != nil {
			for _, s := range servers {
				_ = s.Shutdown(ctx)
			}
			return err
		}
		servers = append(servers, s)
	}
	e.srv, e.peers, e.replicas = servers[0], servers[1:], 3
	deadline := time.Now().Add(60 * time.Second)
	for !clusterReady(servers) {
		if time.Now().After(deadline) {
			return errors.New("the cluster elected no JetStream meta leader within 60s")
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if e.nc, err = nats.Connect(servers[0].ClientURL(), nats.Name("lexigram bench")); err != nil {
		return err
	}
	r.progress("started a three-node cluster (fsync before ack; replicated streams sync on flush) in %s", e.dir)
	return nil
}

func clusterReady(servers []*embedded.Server) bool {
	for _, s := range servers {
		if s.NATS().JetStreamIsLeader() {
			return len(s.NATS().JetStreamClusterPeers()) == len(servers)
		}
	}
	return false
}

// freePorts finds n distinct free ports, holding each until all are found.
func freePorts(n int) ([]int, error) {
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}
