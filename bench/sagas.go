package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/handlers"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/sagas"
)

// sagaJobs lists the figures of sagas (issue 13). They run on the
// server a node gets by default, fsync before ack: a saga's cost is its
// writes.
func (r *runner) sagaJobs() []job {
	durable := envFsync
	if r.opts.NATSURL != "" {
		durable = envExternal
	}
	return []job{
		{names: []string{"saga.steps"}, env: durable, run: r.sagaSteps},
		{names: []string{"saga.timeout.lateness.p50", "saga.timeout.lateness.p99"}, env: durable, run: r.sagaTimeoutLateness},
		{names: []string{"saga.recovery"}, env: durable, run: r.sagaRecovery},
	}
}

// sagaData is the benchmark saga's data.
type sagaData struct {
	Account string
	Steps   int
}

// sagaBench is a manager on buckets and streams of this run.
type sagaBench struct {
	m     *sagas.Manager
	kv    jetstream.KeyValue
	opts  sagas.Options
	store *sagas.KVStore
	done  func()
}

// sagaManager makes a manager, its KV store and work stream, named for
// this run; done deletes them. mutate changes the options first.
func (r *runner) sagaManager(ctx context.Context, e *env, js jetstream.JetStream, seq int, mutate func(*sagas.Options), defs ...sagas.SagaType) (*sagaBench, error) {
	bucket := fmt.Sprintf("lxbench_sagas_%s_%d", r.runID, seq)
	store, err := sagas.NewKVStore(ctx, js, sagas.KVOptions{Bucket: bucket, Replicas: max(e.replicas, 1)})
	if err != nil {
		return nil, err
	}
	opts := sagas.Options{
		Stream: fmt.Sprintf("LXBENCH_SAGAS_%s_%d", r.runID, seq), SubjectPrefix: fmt.Sprintf("lxbench.%s.%d.sagas", r.runID, seq),
		TimerStream: fmt.Sprintf("LXBENCH_SAGA_TIMERS_%s_%d", r.runID, seq), TimerSubjectPrefix: fmt.Sprintf("lxbench.%s.%d.timers", r.runID, seq),
		Replicas: max(e.replicas, 1), Logger: r.log,
	}
	if mutate != nil {
		mutate(&opts)
	}
	m, err := sagas.NewManager(ctx, js, store, opts)
	if err != nil {
		return nil, err
	}
	for _, d := range defs {
		if err := m.Register(d); err != nil {
			return nil, err
		}
	}
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, err
	}
	return &sagaBench{m: m, kv: kv, opts: opts, store: store, done: func() {
		r.deleteStream(e, "KV_"+bucket)
		r.deleteStream(e, opts.Stream)
		r.deleteStream(e, opts.TimerStream)
	}}, nil
}

// run runs the manager until the returned stop is called.
func (b *sagaBench) run(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = b.m.Run(ctx)
	}()
	return func() { cancel(); <-done }
}

// sagaSteps: three-step sagas whose steps each dispatch an in-process
// command, against the raw work each step stands on, one command dispatch
// and one KV compare-and-set, at the same concurrency.
func (r *runner) sagaSteps(ctx context.Context, e *env) ([]Figure, error) {
	const concurrency = 16 // the manager's default
	n, rounds := 2000, 6
	if r.opts.Quick {
		n, rounds = 400, 2
	}
	o, err := busOptions()
	if err != nil {
		return nil, err
	}
	bus := handlers.NewCommandBus(o)
	var completed atomic.Int64
	finished := make(chan struct{}, 1)
	var target atomic.Int64
	if err := handlers.HandleCommand(bus, func(_ context.Context, c busCommand) error {
		if c.Amount == 3 && completed.Add(1) == target.Load() {
			finished <- struct{}{}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	step := func(ctx context.Context, sc *sagas.Context[sagaData]) error {
		sc.Data.Steps++
		cmd := busCommand(deposit(sc.Data.Account))
		cmd.Amount = int64(sc.Data.Steps)
		_, err := sc.Send(ctx, cmd)
		return err
	}
	def := sagas.Define[sagaData]("transfer").Step("debit", step).Step("credit", step).Step("notify", step)
	r.seq++
	b, err := r.sagaManager(ctx, e, e.js, r.seq, func(o *sagas.Options) { o.Commands = bus; o.Concurrency = concurrency }, def)
	if err != nil {
		return nil, err
	}
	defer b.done()
	stop := b.run(ctx)
	defer stop()

	// The raw side writes a record the size of a finished instance's.
	sample, _ := json.Marshal(sagas.Instance{ID: platform.NewEventID(), Type: "transfer", Key: accountID(0), State: sagas.Completed, Step: 3,
		Data: json.RawMessage(`{"Account":"` + accountID(0) + `","Steps":3}`), History: make([]sagas.StepRecord, 3), Created: time.Now(), Updated: time.Now()})
	ours := func(ctx context.Context, round int) (time.Duration, error) {
		completed.Store(0)
		target.Store(int64(n))
		began := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, concurrency)
		for g := range concurrency {
			wg.Go(func() {
				for i := g; i < n; i += concurrency {
					key := fmt.Sprintf("r%d-%s", round, accountID(i))
					if _, err := b.m.Start(ctx, "transfer", key, sagaData{Account: accountID(i)}); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		select {
		case err := <-errs:
			return 0, err
		default:
		}
		select {
		case <-finished:
			return time.Since(began), nil
		case <-time.After(2 * time.Minute):
			return 0, fmt.Errorf("%d of %d sagas completed in 2 minutes", completed.Load(), n)
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	raw := func(ctx context.Context, round int) (time.Duration, error) {
		ops := 3 * n
		var next atomic.Int64
		began := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, concurrency)
		for g := range concurrency {
			wg.Go(func() {
				key := fmt.Sprintf("raw.r%d.g%d", round, g)
				rev, err := b.kv.Create(ctx, key, sample)
				if err != nil {
					errs <- err
					return
				}
				cmd := busCommand(deposit(accountID(g)))
				for next.Add(1) <= int64(ops) {
					if _, err := bus.Dispatch(ctx, cmd); err != nil {
						errs <- err
						return
					}
					if rev, err = b.kv.Update(ctx, key, sample, rev); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		select {
		case err := <-errs:
			return 0, err
		default:
		}
		return time.Since(began), nil
	}
	var oursPerStep, rawPerStep, rates []float64
	for i := -1; i < rounds; i++ { // i == -1 warms up
		sides := []struct {
			name string
			f    func(context.Context, int) (time.Duration, error)
			out  *[]float64
		}{{"ours", ours, &oursPerStep}, {"raw", raw, &rawPerStep}}
		if i%2 != 0 {
			slices.Reverse(sides)
		}
		for _, s := range sides {
			took, err := s.f(ctx, i+1)
			if err != nil {
				return nil, fmt.Errorf("saga.steps %s, round %d: %w", s.name, i+1, err)
			}
			perStep := float64(took.Microseconds()) / float64(3*n)
			if i >= 0 {
				*s.out = append(*s.out, perStep)
				if s.name == "ours" {
					rates = append(rates, float64(n)/took.Seconds())
				}
				r.progress("saga.steps: round %d %s %.1f µs per step", i+1, s.name, perStep)
			}
		}
	}
	return []Figure{{
		Name: "saga.steps", Ours: median(oursPerStep), Raw: median(rawPerStep), Ratio: pairedRatio(oursPerStep, rawPerStep), Unit: "µs/step", Target: "<= 1.50",
		Note: fmt.Sprintf("%d three-step sagas per round started from %d goroutines (KV store, Concurrency %d), each step dispatching an in-process command through the default middleware (no Idempotency middleware): %.0f sagas/s; raw is %d goroutines each dispatching the command and then a KV compare-and-set of a %d-byte record; per step = round time / (3 × %d); median of %d alternating rounds",
			n, concurrency, concurrency, median(rates), concurrency, len(sample), n, rounds),
	}}, nil
}

// sagaTimeoutLateness: 200 waits whose deadlines fall due over 10 s, from
// due to timed out, against raw message schedules from due to receipt of
// the fire, over the same spread.
func (r *runner) sagaTimeoutLateness(ctx context.Context, e *env) ([]Figure, error) {
	if !lxjs.ServerAtLeast(e.nc.ConnectedServerVersion(), 2, 12) {
		return nil, fmt.Errorf("saga timers need nats-server 2.12 or newer; this server is %s", e.nc.ConnectedServerVersion())
	}
	const timers, spread = 200, 10 * time.Second
	def := sagas.Define[sagaData]("expiry").
		Wait("reply", sagas.On[sagaData]("never", func(Deposited, platform.Envelope) string { return "" }, nil), sagas.Within[sagaData](time.Hour))
	st, doneStore, err := r.newStore(ctx, e, jetstream.FileStorage)
	if err != nil {
		return nil, err
	}
	defer doneStore()
	r.seq++
	b, err := r.sagaManager(ctx, e, e.js, r.seq, func(o *sagas.Options) { o.Events = st }, def)
	if err != nil {
		return nil, err
	}
	defer b.done()
	stop := b.run(ctx)
	defer stop()

	// Ours: start the instances; each rests at its wait with a deadline an
	// hour out, which is then set to fall due over the spread.
	r.progress("saga.timeout.lateness: %d saga timers due over %v", timers, spread)
	ids := make([]string, timers)
	for i := range timers {
		in, err := b.m.Start(ctx, "expiry", fmt.Sprint("t", i), sagaData{})
		if err != nil {
			return nil, err
		}
		ids[i] = in.ID
	}
	resting := make([]sagas.Instance, timers)
	for i, id := range ids {
		if resting[i], err = waitResting(ctx, b.store, id); err != nil {
			return nil, err
		}
	}
	// Then move each one's deadline into the spread and wake it, so that
	// it schedules its new deadline. The first falls due after all are
	// moved.
	dues := make([]time.Time, timers)
	first := time.Now().Add(2 * time.Second)
	for i, in := range resting {
		dues[i] = first.Add(time.Duration(i) * spread / timers)
		in.Due, in.Updated = dues[i], time.Now().UTC()
		if _, err := b.store.Save(ctx, in); err != nil {
			return nil, err
		}
		if err := wake(ctx, e.js, b.opts, in.ID); err != nil {
			return nil, err
		}
	}
	if late := time.Since(first); late > 0 {
		return nil, fmt.Errorf("saga.timeout.lateness: moving the deadlines took until %v after the first was due: the figure would be wrong", late)
	}
	var ourLate []time.Duration
	deadline := first.Add(spread + 30*time.Second)
	for i, id := range ids {
		for {
			in, err := b.store.Load(ctx, id)
			if err != nil {
				return nil, err
			}
			if at, ok := timedOutAt(in); ok {
				ourLate = append(ourLate, at.Sub(dues[i]))
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("saga.timeout.lateness: instance %s did not time out by %v", id, deadline)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// Raw: one-shot schedules on a stream of their own, fired into it,
	// received by a consumer.
	rawLate, err := r.rawScheduleLateness(ctx, e, timers, spread)
	if err != nil {
		return nil, err
	}
	slices.Sort(ourLate)
	slices.Sort(rawLate)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	note := fmt.Sprintf("%d waits (Within) due %v apart over %v, from the due time to the instance timed out (its TIMED_OUT record); raw is %d one-shot @at schedules over the same spread, from the due time to the fired message's receipt by a consumer; both write @at with milliseconds (nats.go's WithScheduleAt writes whole seconds, which would add up to 1 s), and the server's schedule timer has a floor of about 250 ms",
		timers, spread/timers, spread, timers)
	return []Figure{
		{Name: "saga.timeout.lateness.p50", Ours: ms(percentile(ourLate, 50)), Raw: ms(percentile(rawLate, 50)), Unit: "ms", Note: note},
		{Name: "saga.timeout.lateness.p99", Ours: ms(percentile(ourLate, 99)), Raw: ms(percentile(rawLate, 99)), Unit: "ms", Note: "as p50"},
	}, nil
}

// waitResting waits for the instance to rest at its wait.
func waitResting(ctx context.Context, store sagas.Store, id string) (sagas.Instance, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		in, err := store.Load(ctx, id)
		if err == nil && in.State == sagas.Running && !in.Due.IsZero() && in.Owner == "" {
			return in, nil
		}
		if time.Now().After(deadline) {
			return in, fmt.Errorf("instance %s did not come to rest at its wait: %+v, %v", id, in, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// wake publishes the message that moves an instance on, as the managers do.
func wake(ctx context.Context, js jetstream.JetStream, o sagas.Options, id string) error {
	msg := nats.NewMsg(o.SubjectPrefix + ".run.expiry." + id)
	_, err := js.PublishMsg(ctx, msg)
	return err
}

func timedOutAt(in sagas.Instance) (time.Time, bool) {
	for _, h := range in.History {
		if h.Outcome == "timed out" {
			return h.Started, true
		}
	}
	return time.Time{}, false
}

func (r *runner) rawScheduleLateness(ctx context.Context, e *env, timers int, spread time.Duration) ([]time.Duration, error) {
	r.seq++
	name := fmt.Sprintf("LXBENCH_SCHED_%s_%d", r.runID, r.seq)
	prefix := fmt.Sprintf("lxbench.%s.%d.sched", r.runID, r.seq)
	s, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{prefix + ".>"}, AllowMsgSchedules: true, AllowMsgTTL: true, Replicas: max(e.replicas, 1)})
	if err != nil {
		return nil, err
	}
	defer r.deleteStream(e, name)
	cons, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{FilterSubject: prefix + ".fire.>", AckPolicy: jetstream.AckNonePolicy})
	if err != nil {
		return nil, err
	}
	dues := make([]time.Time, timers)
	first := time.Now().Add(2 * time.Second)
	var mu sync.Mutex
	late := make([]time.Duration, 0, timers)
	all := make(chan struct{})
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		now := time.Now()
		var i int
		if _, err := fmt.Sscanf(msg.Headers().Get("Lxbench-Timer"), "%d", &i); err != nil || i < 0 || i >= timers {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		late = append(late, now.Sub(dues[i]))
		if len(late) == timers {
			close(all)
		}
	})
	if err != nil {
		return nil, err
	}
	defer cc.Stop()
	for i := range timers {
		// Milliseconds, as the saga timers have them (nats.go's
		// WithScheduleAt would round to whole seconds).
		dues[i] = first.Add(time.Duration(i) * spread / time.Duration(timers)).Truncate(time.Millisecond)
		msg := nats.NewMsg(fmt.Sprintf("%s.at.%d", prefix, i))
		msg.Header.Set("Lxbench-Timer", fmt.Sprint(i))
		msg.Header.Set(jetstream.ScheduleHeader, "@at "+dues[i].UTC().Format("2006-01-02T15:04:05.000Z07:00"))
		if _, err := e.js.PublishMsg(ctx, msg, jetstream.WithScheduleTarget(fmt.Sprintf("%s.fire.%d", prefix, i))); err != nil {
			return nil, err
		}
	}
	select {
	case <-all:
	case <-time.After(spread + 30*time.Second):
		return nil, fmt.Errorf("raw schedules: %d of %d fired", len(late), timers)
	}
	mu.Lock()
	defer mu.Unlock()
	return slices.Clone(late), nil
}

// sagaRecovery: a manager process dies (its connection closes) while its
// instances are in a step; the figure is the time until another process
// has moved the last of them on, against the raw JetStream redelivery it
// stands on: a message held by a consumer that died, redelivered to
// another after the same ack wait.
func (r *runner) sagaRecovery(ctx context.Context, e *env) ([]Figure, error) {
	const instances, ackWait = 10, 5 * time.Second
	url := e.nc.ConnectedUrl()
	if e.srv != nil {
		url = e.srv.ClientURL() // the bench's own connection may be in process
	}
	entered := make(chan struct{}, instances)
	release := make(chan struct{})
	defer close(release)
	var died atomic.Bool
	moved := make(chan time.Time, instances)
	def := sagas.Define[sagaData]("recover").
		Step("work", func(ctx context.Context, _ *sagas.Context[sagaData]) error {
			if !died.Load() {
				entered <- struct{}{}
				<-release // the first process is in the step when it dies
				return errors.New("the process died")
			}
			moved <- time.Now()
			return nil
		})
	r.seq++
	seq := r.seq
	connect := func() (*nats.Conn, jetstream.JetStream, error) {
		nc, err := nats.Connect(url, nats.Name("lexigram bench saga process"), nats.MaxReconnects(0))
		if err != nil {
			return nil, nil, err
		}
		js, err := jetstream.New(nc)
		return nc, js, err
	}
	withAckWait := func(o *sagas.Options) { o.AckWait = ackWait }
	nc1, js1, err := connect()
	if err != nil {
		return nil, err
	}
	defer nc1.Close()
	quietly := func(o *sagas.Options) { withAckWait(o); o.Logger = slog.New(slog.DiscardHandler) } // it complains as it dies
	first, err := r.sagaManager(ctx, e, js1, seq, quietly, def)
	if err != nil {
		return nil, err
	}
	defer first.done()
	firstCtx, killFirst := context.WithCancel(ctx)
	defer killFirst()
	go func() { _ = first.m.Run(firstCtx) }()
	for i := range instances {
		if _, err := first.m.Start(ctx, "recover", fmt.Sprint("k", i), sagaData{}); err != nil {
			return nil, err
		}
	}
	// Instances share the manager's workers by a hash of their IDs, so
	// some wait behind another's step: the process dies once it has
	// taken what it can.
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		return nil, errors.New("saga.recovery: the first process took no instance in 30s")
	}
	for settled := false; !settled; {
		select {
		case <-entered:
		case <-time.After(500 * time.Millisecond):
			settled = true
		}
	}
	nc2, js2, err := connect()
	if err != nil {
		return nil, err
	}
	defer nc2.Close()
	second, err := r.sagaManager(ctx, e, js2, seq, withAckWait, def)
	if err != nil {
		return nil, err
	}
	stopSecond := second.run(ctx)
	defer stopSecond()
	died.Store(true)
	death := time.Now()
	nc1.Close() // the process's death: its heartbeats and its acks stop
	var last time.Time
	for range instances {
		select {
		case last = <-moved:
		case <-time.After(3 * ackWait):
			return nil, fmt.Errorf("saga.recovery: the second process had not moved every instance on %v after the first died", 3*ackWait)
		}
	}
	ours := last.Sub(death)

	raw, err := r.rawRedelivery(ctx, e, url, ackWait)
	if err != nil {
		return nil, err
	}
	return []Figure{{
		Name: "saga.recovery", Ours: ours.Seconds(), Raw: raw.Seconds(), Unit: "s", Ratio: ours.Seconds() / raw.Seconds(),
		Note: fmt.Sprintf("%d instances in a step when their process's connection closes, until another process has run the last of them; AckWait %v (the default is 30s: recovery takes between AckWait/2 and AckWait, plus at most the instance's lease); raw is a pull consumer's unacked message redelivered to a second connection after the same ack wait", instances, ackWait),
	}}, nil
}

// rawRedelivery is the time from a consumer's death (its connection
// closed, holding a message) to the message's redelivery to another.
func (r *runner) rawRedelivery(ctx context.Context, e *env, url string, ackWait time.Duration) (time.Duration, error) {
	r.seq++
	name := fmt.Sprintf("LXBENCH_REDELIVER_%s_%d", r.runID, r.seq)
	subject := fmt.Sprintf("lxbench.%s.%d.redeliver", r.runID, r.seq)
	s, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subject}, Retention: jetstream.WorkQueuePolicy, Replicas: max(e.replicas, 1)})
	if err != nil {
		return 0, err
	}
	defer r.deleteStream(e, name)
	if _, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "work", AckPolicy: jetstream.AckExplicitPolicy, AckWait: ackWait}); err != nil {
		return 0, err
	}
	if _, err := e.js.Publish(ctx, subject, nil); err != nil {
		return 0, err
	}
	nc1, err := nats.Connect(url, nats.MaxReconnects(0))
	if err != nil {
		return 0, err
	}
	js1, _ := jetstream.New(nc1)
	c1, err := js1.Consumer(ctx, name, "work")
	if err != nil {
		nc1.Close()
		return 0, err
	}
	if _, err := c1.Next(jetstream.FetchMaxWait(10 * time.Second)); err != nil {
		nc1.Close()
		return 0, err
	}
	death := time.Now()
	nc1.Close()
	c2, err := e.js.Consumer(ctx, name, "work")
	if err != nil {
		return 0, err
	}
	msg, err := c2.Next(jetstream.FetchMaxWait(3 * ackWait))
	if err != nil {
		return 0, err
	}
	took := time.Since(death)
	_ = msg.Ack()
	return took, nil
}
