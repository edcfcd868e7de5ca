package node_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/lexigram/events/config"
	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/handlers"
	"github.com/lexigram/events/handlers/durable"
	"github.com/lexigram/events/node"
	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/sagas"
)

type Deposit struct {
	Account string
	Amount  int
}

type Deposited struct{ Amount int }

type Welcome struct{ Account string }

func registry() *platform.Registry {
	r := platform.NewRegistry()
	platform.MustRegister[Deposit](r, "test.deposit", 1)
	platform.MustRegister[Deposited](r, "test.deposited", 1)
	platform.MustRegister[Welcome](r, "test.welcome", 1)
	return r
}

func testConfig(dir string) config.Config {
	cfg := config.Default()
	cfg.NATS.EmbeddedServer.DataDir = dir
	cfg.NATS.EmbeddedServer.DontListen = true
	return cfg
}

// ledger records what a durable handler saw, by position.
type ledger struct {
	mu   sync.Mutex
	seen map[uint64]int
}

func (l *ledger) add(pos uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen[pos]++
}

func (l *ledger) count() (distinct, total int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, n := range l.seen {
		distinct, total = distinct+1, total+n
	}
	return distinct, total
}

// open opens a node with a command handler that appends one event per
// deposit, a durable handler that records each event (and holds the one
// at position hold until release is closed), and a saga that sends a
// deposit when started.
func open(t *testing.T, dir string, l *ledger, hold uint64, holding, release chan struct{}) *node.Node {
	t.Helper()
	ctx := t.Context()
	n, err := node.Open(ctx, testConfig(dir), node.Options{Registry: registry(), Logger: embeddedtest.Logger(t), ShutdownTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := handlers.HandleCommand(n.Commands(), func(ctx context.Context, c Deposit) error {
		_, err := n.Store().Append(ctx, platform.StreamID{Type: "account", ID: c.Account}, platform.Any(), []platform.Envelope{{Event: Deposited{c.Amount}}})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := n.Handle("ledger", func(ctx context.Context, e platform.Envelope) error {
		if e.Position == hold {
			close(holding)
			<-release
		}
		l.add(e.Position)
		return nil
	}, durable.Options{Start: durable.FromBeginning}); err != nil {
		t.Fatal(err)
	}
	welcome := sagas.Define[Welcome]("welcome").Step("bonus", func(ctx context.Context, sc *sagas.Context[Welcome]) error {
		_, err := sc.Send(ctx, Deposit{Account: sc.Data.Account, Amount: 5})
		return err
	})
	if err := n.AddSaga(ctx, welcome); err != nil {
		t.Fatal(err)
	}
	return n
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20s", what)
		}
	}
}

// TestNodeLifecycle: commands, a saga and a durable handler run on one
// node; a shutdown while the handler holds an event lets it finish and
// acknowledge it, so the node opened again on the same data delivers
// nothing twice and loses nothing.
func TestNodeLifecycle(t *testing.T) {
	dir := t.TempDir()
	l := &ledger{seen: map[uint64]int{}}
	const deposits, held = 10, 11 // the saga's deposit is the eleventh event
	holding, release := make(chan struct{}), make(chan struct{})
	n := open(t, dir, l, held, holding, release)
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- n.Run(ctx) }()

	for i := range deposits {
		if _, err := n.Commands().Dispatch(ctx, Deposit{Account: "a-1", Amount: i}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := n.Sagas().Start(ctx, "welcome", "a-2", Welcome{Account: "a-2"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-holding:
	case <-time.After(20 * time.Second):
		d, _ := l.count()
		t.Fatalf("the durable handler did not reach the saga's deposit within 20s (it saw %d events)", d)
	}
	stop()
	select {
	case err := <-ran:
		t.Fatalf("Run returned (%v) while a handler held an event", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	select {
	case err := <-ran:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30s of its context ending")
	}
	if d, total := l.count(); d != held || total != held {
		t.Fatalf("before the restart the handler saw %d events (%d deliveries), want %d once each", d, total, held)
	}

	// Opened again: nothing new is delivered, nothing is delivered twice.
	again := open(t, dir, l, 0, make(chan struct{}), make(chan struct{}))
	ctx2, stop2 := context.WithCancel(context.Background())
	ran2 := make(chan error, 1)
	go func() { ran2 <- again.Run(ctx2) }()
	if _, err := again.Commands().Dispatch(ctx2, Deposit{Account: "a-3", Amount: 1}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deposit after the restart reaches the handler", func() bool { d, _ := l.count(); return d == held+1 })
	stop2()
	if err := <-ran2; err != nil {
		t.Fatalf("Run after the restart: %v", err)
	}
	if d, total := l.count(); d != held+1 || total != held+1 {
		t.Fatalf("after the restart the handler saw %d events (%d deliveries), want %d once each", d, total, held+1)
	}
}

// TestNodeOpenFailsClean: a configuration that cannot boot gives an
// error naming the fix, and leaves nothing open.
func TestNodeOpenFailsClean(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.NATS.URLs = []string{"nats://127.0.0.1:1"}
	_, err := node.Open(t.Context(), cfg, node.Options{Logger: embeddedtest.Logger(t)})
	if err == nil {
		t.Fatal("opened a node on a port where nothing listens")
	}
	t.Log(err)
}

// ExampleOpenInMemory: a whole application on a node that needs nothing
// installed and leaves nothing behind.
func ExampleOpenInMemory() {
	ctx := context.Background()
	n, err := node.OpenInMemory(ctx, node.Options{Registry: registry(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	if err := handlers.HandleCommand(n.Commands(), func(ctx context.Context, c Deposit) error {
		_, err := n.Store().Append(ctx, platform.StreamID{Type: "account", ID: c.Account}, platform.Any(), []platform.Envelope{{Event: Deposited{c.Amount}}})
		return err
	}); err != nil {
		panic(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- n.Run(runCtx) }()
	if _, err := n.Commands().Dispatch(ctx, Deposit{Account: "a-1", Amount: 10}); err != nil {
		panic(err)
	}
	st, err := n.Store().State(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("events stored:", st.Events)
	stop()
	if err := <-done; err != nil {
		panic(err)
	}
	// Output: events stored: 1
}
