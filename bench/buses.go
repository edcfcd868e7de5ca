package bench

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/lexigram/events/handlers"
	"github.com/lexigram/events/platform"
)

// busCommand is the command of the bus figures: a Deposited's fields, so
// its msgpack body is about BodySize bytes.
type busCommand Deposited

const busCommandType = "bench.deposit"

// busJobs lists the figures of the command and query buses (issue 3).
func (r *runner) busJobs() []job {
	plain := envNoFsync
	if r.opts.NATSURL != "" {
		plain = envExternal
	}
	return []job{
		{names: []string{"bus.command.inprocess", "bus.command.inprocess.allocs"}, env: plain, run: r.busInProcess},
		{names: []string{"bus.command.remote.p50", "bus.command.remote.p99"}, env: plain, run: r.busRemote},
	}
}

// busOptions are the buses' options of the figures: the default
// middleware, metrics included, logging to a discarding handler (as a
// node logging at info does on success).
func busOptions() (handlers.Options, error) {
	reg := platform.NewRegistry()
	if err := platform.Register[busCommand](reg, busCommandType, 1); err != nil {
		return handlers.Options{}, err
	}
	return handlers.Options{Registry: reg, Logger: slog.New(slog.DiscardHandler), Metrics: handlers.NewMetrics(handlers.MetricsOptions{})}, nil
}

// busInProcess: a command dispatched through the default middleware to a
// handler in the same process, against calling that handler directly.
func (r *runner) busInProcess(ctx context.Context, _ *env) ([]Figure, error) {
	o, err := busOptions()
	if err != nil {
		return nil, err
	}
	bus := handlers.NewCommandBus(o)
	var handled int
	handle := func(_ context.Context, c busCommand) error {
		handled += int(c.Amount)
		return nil
	}
	if err := handlers.HandleCommand(bus, handle); err != nil {
		return nil, err
	}
	cmd := busCommand(deposit(accountID(0)))
	var boxed any = cmd // the caller's value, as an application holds it
	ours := func(ctx context.Context) error { _, err := bus.Dispatch(ctx, boxed); return err }
	raw := func(ctx context.Context) error { return handle(ctx, cmd) }

	var o1, w1 []float64
	for i := range r.plan.rounds {
		sides := []struct {
			f   op
			out *[]float64
		}{{ours, &o1}, {raw, &w1}}
		if i%2 == 1 {
			slices.Reverse(sides)
		}
		for _, s := range sides {
			ns, err := nsPerOp(ctx, r.plan.phase/2, s.f)
			if err != nil {
				return nil, err
			}
			*s.out = append(*s.out, ns)
		}
	}
	oa, ob, err := allocsPerOp(ctx, r.plan.allocOps*10, ours)
	if err != nil {
		return nil, err
	}
	ra, rb, err := allocsPerOp(ctx, r.plan.allocOps*10, raw)
	if err != nil {
		return nil, err
	}
	nsOurs := median(o1)
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	chain := "Tracing (no OpenTelemetry SDK installed: no spans) → Validation → Logging (discarded) → Metrics → Retry → CircuitBreaker → Transaction → Timeout (off) → Recovery"
	return []Figure{
		{Name: "bus.command.inprocess", Ours: nsOurs, Raw: median(w1), Unit: "ns/op",
			Note: fmt.Sprintf("Dispatch of a %d-byte command through the default middleware (%s) to a no-op handler, against calling the handler directly; target < 2000 ns/op: %s; medians of %d alternating rounds of %.1fs per side (ours %s–%s)",
				BodySize, chain, verdict(nsOurs < 2000), r.plan.rounds, (r.plan.phase / 2).Seconds(), num(slices.Min(o1)), num(slices.Max(o1)))},
		{Name: "bus.command.inprocess.allocs", Ours: oa, Raw: ra, Unit: "allocs/op",
			Note: fmt.Sprintf("whole-process heap allocations per dispatch over %d calls, the command's ID (a ULID) included; %.0f vs %.0f B/op; target < 10 allocs/op: %s",
				r.plan.allocOps*10, ob, rb, verdict(oa < 10))},
	}, nil
}

// nsPerOp calls f in a loop for about d and returns the nanoseconds per call.
func nsPerOp(ctx context.Context, d time.Duration, f op) (float64, error) {
	for range 1000 { // warm up
		if err := f(ctx); err != nil {
			return 0, err
		}
	}
	n := 0
	start := time.Now()
	for deadline := start.Add(d); ; {
		for range 1000 {
			if err := f(ctx); err != nil {
				return 0, err
			}
		}
		n += 1000
		if time.Now().After(deadline) {
			break
		}
	}
	return float64(time.Since(start).Nanoseconds()) / float64(n), nil
}

// busRemote: a command sent by a bus on one connection to a handler served
// by a bus on another, against a raw nats.go request/reply between two
// connections with the same request and reply sizes.
func (r *runner) busRemote(ctx context.Context, e *env) ([]Figure, error) {
	serverNC, err := r.busConn(e)
	if err != nil {
		return nil, err
	}
	defer serverNC.Close()
	o, err := busOptions()
	if err != nil {
		return nil, err
	}
	prefix := "lxbench." + r.runID
	serve, err := handlers.NewRemote(serverNC, handlers.RemoteOptions{Prefix: prefix, Service: "lexigram-bench", Logger: r.log})
	if err != nil {
		return nil, err
	}
	defer func() { _ = serve.Close() }()
	so := o
	so.Remote = serve
	if err := handlers.HandleCommand(handlers.NewCommandBus(so), func(context.Context, busCommand) error { return nil }); err != nil {
		return nil, err
	}
	send, err := handlers.NewRemote(e.nc, handlers.RemoteOptions{Prefix: prefix, Service: "lexigram-bench", Logger: r.log})
	if err != nil {
		return nil, err
	}
	defer func() { _ = send.Close() }()
	co := o
	co.Remote = send
	client := handlers.NewCommandBus(co)
	var boxed any = busCommand(deposit(accountID(0)))
	ours := func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err := client.Dispatch(ctx, boxed)
		return err
	}

	// The raw side: the same request body, a reply of our reply's size.
	body, err := platform.Msgpack.Marshal(boxed)
	if err != nil {
		return nil, err
	}
	// Our reply, taken from the served endpoint itself.
	probe := nats.NewMsg(serve.Subject(handlers.KindCommand, busCommandType))
	probe.Data = body
	probe.Header.Set(handlers.HeaderCodec, platform.Msgpack.Name())
	resp, err := e.nc.RequestMsg(probe, 10*time.Second)
	if err != nil {
		return nil, fmt.Errorf("probe the served endpoint: %w", err)
	}
	reply := resp.Data
	rawSubject := prefix + ".raw"
	sub, err := serverNC.QueueSubscribe(rawSubject, "raw", func(m *nats.Msg) { _ = m.Respond(reply) })
	if err != nil {
		return nil, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := serverNC.Flush(); err != nil {
		return nil, err
	}
	raw := func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err := e.nc.RequestWithContext(ctx, rawSubject, body)
		return err
	}

	oursS, rawS, err := alternateTimed(ctx, r, ours, raw)
	if err != nil {
		return nil, err
	}
	var p50s []float64
	for i := range oursS {
		op50 := percentile(slices.Sorted(slices.Values(oursS[i])), 50)
		rp50 := percentile(slices.Sorted(slices.Values(rawS[i])), 50)
		if rp50 > 0 {
			p50s = append(p50s, float64(op50)/float64(rp50))
		}
	}
	o50 := slices.Sorted(slices.Values(slices.Concat(oursS...)))
	w50 := slices.Sorted(slices.Values(slices.Concat(rawS...)))
	note := fmt.Sprintf("one client, sequential commands over %s between two connections, the default middleware in the serving process (the sending bus only encodes and sends), no-op handler; raw: nc.Request to a plain subscription replying, %d-byte request, %d-byte reply; %d ours and %d raw samples pooled from %d alternating rounds of %.1fs per side; lower is better",
		transport(r), len(body), len(reply), len(o50), len(w50), r.plan.rounds, r.plan.latencyPhase.Seconds())
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	return []Figure{
		{Name: "bus.command.remote.p50", Ours: us(percentile(o50, 50)), Raw: us(percentile(w50, 50)), Unit: "µs", Ratio: median(p50s), Target: "<= 1.20",
			Note: "ratio: median of the rounds' p50 ratios; " + note},
		{Name: "bus.command.remote.p99", Ours: us(percentile(o50, 99)), Raw: us(percentile(w50, 99)), Unit: "µs", Note: note},
	}, nil
}

func transport(r *runner) string {
	if r.opts.InProcess {
		return "in-process connections"
	}
	return "loopback TCP"
}

// busConn opens a second connection to the env's server: the serving process.
func (r *runner) busConn(e *env) (*nats.Conn, error) {
	if r.opts.InProcess && e.srv != nil {
		return e.srv.Connect()
	}
	url := r.opts.NATSURL
	if url == "" {
		url = e.nc.ConnectedUrl()
	}
	nc, err := nats.Connect(url, nats.Name("lexigram bench: bus server"))
	if err != nil {
		return nil, fmt.Errorf("connect the serving side to %s: %w", url, err)
	}
	return nc, nil
}
