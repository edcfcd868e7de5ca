package sagas_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

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
