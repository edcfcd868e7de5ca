package sagas_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/embedded"
	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/handlers"
	"github.com/lexigram/events/sagas"
)

// process is one manager with its own connection, store client and
// command bus (with the idempotency middleware), as a process would have.
type process struct {
	nc *nats.Conn
	m  *sagas.Manager
}

func startProcess(t *testing.T, url string, l *ledger, services any, defs ...sagas.SagaType) *process {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	store, err := sagas.NewKVStore(ctx, js, sagas.KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kv, err := handlers.OpenIdempotencyBucket(ctx, js, handlers.IdempotencyBucketOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cmds := bus(t, l, handlers.Idempotency(kv, handlers.IdempotencyOptions{}))
	m := runManager(t, js, store, sagas.Options{Commands: cmds, Services: services, AckWait: time.Second,
		Retry: sagas.Retry{Initial: 20 * time.Millisecond}, Logger: embeddedtest.Logger(t)}, defs...)
	return &process{nc: nc, m: m}
}

// TestSagaResumesAfterAProcessDies: the first process dies (its
// connection closed) after a step's command was applied and before the
// step's result was saved. Another process resumes the instance after the
// ack wait, runs the step again, and the idempotency key keeps the
// command from being applied twice.
func TestSagaResumesAfterAProcessDies(t *testing.T) {
	s := embeddedtest.Server(t)
	l := &ledger{fail: map[string]int{}}
	var first *process
	crashed := make(chan struct{})
	def := sagas.Define[order]("crash").
		Step("reserve", func(ctx context.Context, sc *sagas.Context[order]) error {
			if _, err := sc.Send(ctx, Reserve{sc.Data.Order}); err != nil {
				return err
			}
			if sc.Services() == "first" {
				first.nc.Close() // dies with the command applied and the step's result unsaved
				close(crashed)
			}
			return nil
		}).
		Step("ship", send(func(o string) Ship { return Ship{o} }))

	first = startProcess(t, s.ClientURL(), l, "first", def)
	in, err := first.m.Start(context.Background(), "crash", "o-8", order{Order: "o-8"})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-crashed:
	case <-time.After(20 * time.Second):
		t.Fatal("the first process never ran the step")
	}
	second := startProcess(t, s.ClientURL(), l, "second", def)
	done := waitState(t, second.m, in.ID, sagas.Completed, sagas.Compensated, sagas.CompensationFailed, sagas.Parked)
	if done.State != sagas.Completed {
		t.Fatalf("%+v, want COMPLETED", done)
	}
	if n := l.count("reserve o-8"); n != 1 {
		t.Fatalf("the reservation was applied %d times: the step run again after the crash applied it again", n)
	}
	if n := l.count("ship o-8"); n != 1 {
		t.Fatalf("ship applied %d times", n)
	}
	attempts := 0
	for _, h := range done.History {
		if h.Step == "reserve" {
			attempts = h.Attempt
		}
	}
	if attempts != 2 {
		t.Fatalf("the reserve step's recorded attempt is %d, want 2 (one per process)", attempts)
	}
}

// TestSagaManyInstancesTwoProcesses: instances started from both
// processes, advanced by both, each step applied once per instance.
func TestSagaManyInstancesTwoProcesses(t *testing.T) {
	s := embeddedtest.Server(t)
	l := &ledger{fail: map[string]int{}}
	a := startProcess(t, s.ClientURL(), l, nil, fulfillment())
	b := startProcess(t, s.ClientURL(), l, nil, fulfillment())
	const n = 40
	ids := make([]string, n)
	for i := range n {
		m := a.m
		if i%2 == 1 {
			m = b.m
		}
		in, err := m.Start(context.Background(), "fulfillment", fmt.Sprint("many-", i), order{Order: fmt.Sprint("many-", i)})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = in.ID
	}
	for i, id := range ids {
		waitState(t, a.m, id, sagas.Completed)
		for _, c := range []string{"reserve", "charge", "ship"} {
			if got := l.count(fmt.Sprintf("%s many-%d", c, i)); got != 1 {
				t.Fatalf("%s of instance %d applied %d times", c, i, got)
			}
		}
	}
}

// TestSagaWorkSurvivesAServerRestart: the work stream is in memory, so
// a server restart empties it, and with it the message of an instance
// waiting for a retry. The manager, still running, finds the stream gone
// when its connection comes back, makes it again and moves the instance
// on long before its retry (a minute away) would have come.
func TestSagaWorkSurvivesAServerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a server")
	}
	ctx := context.Background()
	dir := t.TempDir()
	start := func(port int) *embedded.Server {
		t.Helper()
		s, err := embedded.Start(ctx, embedded.Options{Port: port, DataDir: dir, Logger: embeddedtest.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	srv := start(embedded.RandomPort)
	// Stopped after the manager (cleanups run last first), which drains
	// its consumers as it stops.
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	url := srv.ClientURL()
	port, err := strconv.Atoi(url[strings.LastIndexByte(url, ':')+1:])
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	store, err := sagas.NewKVStore(ctx, js, sagas.KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l := &ledger{fail: map[string]int{"charge": 1}}
	m := runManager(t, js, store, sagas.Options{Commands: bus(t, l), Retry: sagas.Retry{Initial: time.Minute},
		Logger: embeddedtest.Logger(t)}, fulfillment())
	sagas.WaitResumed(t, m) // a resume would run the retry at once
	in, err := m.Start(ctx, "fulfillment", "o-1", order{Order: "o-1"})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		got, err := store.Load(ctx, in.ID)
		if err == nil && len(got.History) > 0 && got.History[len(got.History)-1].Outcome == "retry" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the charge step did not fail once within 20s: %+v, %v", got, err)
		}
	}

	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(stopCtx); err != nil {
		t.Fatal(err)
	}
	srv = start(port)

	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got, err := store.Load(ctx, in.ID)
		if err == nil && got.State == sagas.Completed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the restart the instance is %s (%v), not completed within 20s; its retry was a minute away", got.State, err)
		}
	}
	if n := l.count("charge o-1"); n != 1 {
		t.Errorf("charge applied %d times, want 1", n)
	}
	if n := l.count("reserve o-1"); n != 1 {
		t.Errorf("reserve applied %d times, want 1", n)
	}
}

// Run returns at once when stopped with the NATS server gone (and the
// connection aware of it): its consumers are stopped, not drained.
func TestRunStopsWithNATSGone(t *testing.T) {
	srv := embeddedtest.Server(t)
	nc := embeddedtest.Conn(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	m, err := sagas.NewManager(t.Context(), js, sagas.NewMemoryStore(), sagas.Options{Commands: bus(t, &ledger{fail: map[string]int{}}), Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Register(fulfillment()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	sagas.WaitResumed(t, m)
	if err := srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for nc.IsConnected() {
		if time.Now().After(deadline) {
			t.Fatal("the connection did not notice the server is gone")
		}
		time.Sleep(5 * time.Millisecond)
	}
	began := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5s of its context ending with NATS gone")
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Fatalf("Run took %v to stop with NATS gone", took)
	}
}
