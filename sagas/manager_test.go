package sagas_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/handlers"
	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/sagas"
)

// The commands the test sagas send.
type (
	Reserve struct{ Order string }
	Release struct{ Order string }
	Charge  struct{ Order string }
	Refund  struct{ Order string }
	Ship    struct{ Order string }
)

// order is the test sagas' data.
type order struct {
	Order       string
	Reservation string
	Charged     bool
}

// ledger counts what the command handlers did, per command and order, in
// the order they did it.
type ledger struct {
	mu   sync.Mutex
	done []string
	// fail makes a command type fail: n > 0 times with a retryable error,
	// n < 0 for good.
	fail map[string]int
}

func (l *ledger) record(what, order string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := l.fail[what]; n != 0 {
		if n > 0 {
			l.fail[what] = n - 1
		}
		return fmt.Errorf("%s %s refused (test)", what, order)
	}
	l.done = append(l.done, what+" "+order)
	return nil
}

func (l *ledger) count(entry string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, d := range l.done {
		if d == entry {
			n++
		}
	}
	return n
}

func (l *ledger) entries(order string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, d := range l.done {
		if strings.HasSuffix(d, " "+order) {
			out = append(out, strings.TrimSuffix(d, " "+order))
		}
	}
	return out
}

// bus is a command bus whose handlers write to the ledger; the step
// functions below send these commands and fail as the command does.
func bus(t *testing.T, l *ledger, mw ...handlers.Middleware) *handlers.CommandBus {
	t.Helper()
	reg := platform.NewRegistry()
	platform.MustRegister[Reserve](reg, "test.reserve", 1)
	platform.MustRegister[Release](reg, "test.release", 1)
	platform.MustRegister[Charge](reg, "test.charge", 1)
	platform.MustRegister[Refund](reg, "test.refund", 1)
	platform.MustRegister[Ship](reg, "test.ship", 1)
	if mw == nil {
		mw = []handlers.Middleware{}
	}
	b := handlers.NewCommandBus(handlers.Options{Registry: reg, Middleware: mw})
	register := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	register(handlers.HandleCommand(b, func(_ context.Context, c Reserve) error { return l.record("reserve", c.Order) }))
	register(handlers.HandleCommand(b, func(_ context.Context, c Release) error { return l.record("release", c.Order) }))
	register(handlers.HandleCommand(b, func(_ context.Context, c Charge) error { return l.record("charge", c.Order) }))
	register(handlers.HandleCommand(b, func(_ context.Context, c Refund) error { return l.record("refund", c.Order) }))
	register(handlers.HandleCommand(b, func(_ context.Context, c Ship) error { return l.record("ship", c.Order) }))
	return b
}

// send returns a step function that sends the command cmd(order); a
// command that keeps failing fails the step for good when final is set.
func send[C any](cmd func(string) C) sagas.StepFunc[order] {
	return func(ctx context.Context, sc *sagas.Context[order]) error {
		_, err := sc.Send(ctx, cmd(sc.Data.Order))
		return err
	}
}

func fulfillment() *sagas.Definition[order] {
	return sagas.Define[order]("fulfillment").
		Step("reserve", func(ctx context.Context, sc *sagas.Context[order]) error {
			if _, err := sc.Send(ctx, Reserve{sc.Data.Order}); err != nil {
				return err
			}
			sc.Data.Reservation = "r-" + sc.Data.Order
			return nil
		}, sagas.Compensation(send(func(o string) Release { return Release{o} }))).
		Step("charge", func(ctx context.Context, sc *sagas.Context[order]) error {
			if _, err := sc.Send(ctx, Charge{sc.Data.Order}); err != nil {
				if sc.Attempt() >= 3 {
					return sagas.Fail(err)
				}
				return err
			}
			sc.Data.Charged = true
			return nil
		}, sagas.Compensation(send(func(o string) Refund { return Refund{o} }))).
		Step("ship", func(ctx context.Context, sc *sagas.Context[order]) error {
			_, err := sc.Send(ctx, Ship{sc.Data.Order})
			if err != nil {
				return sagas.Fail(err)
			}
			return nil
		})
}

type env struct {
	js    jetstream.JetStream
	store sagas.Store
	l     *ledger
	m     *sagas.Manager
}

// newEnv runs a manager of the fulfillment saga on a fresh server.
func newEnv(t *testing.T, opts sagas.Options) *env {
	t.Helper()
	s := embeddedtest.Server(t)
	js, err := jetstream.New(embeddedtest.Conn(t, s))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{js: js, store: sagas.NewMemoryStore(), l: &ledger{fail: map[string]int{}}}
	if opts.Commands == nil {
		opts.Commands = bus(t, e.l)
	}
	if opts.Retry == (sagas.Retry{}) {
		opts.Retry = sagas.Retry{Initial: 20 * time.Millisecond}
	}
	opts.Logger = embeddedtest.Logger(t)
	e.m = runManager(t, js, e.store, opts, fulfillment())
	return e
}

func runManager(t *testing.T, js jetstream.JetStream, store sagas.Store, opts sagas.Options, defs ...sagas.SagaType) *sagas.Manager {
	t.Helper()
	m, err := sagas.NewManager(context.Background(), js, store, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range defs {
		if err := m.Register(d); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return within 30s of its context ending")
		}
	})
	return m
}

// waitState waits until the instance is in one of the states.
func waitState(t *testing.T, m *sagas.Manager, id string, states ...sagas.State) sagas.Instance {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		in, err := m.Get(context.Background(), id)
		if err == nil {
			for _, s := range states {
				if in.State == s {
					return in
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance %s: %+v (err %v), want one of %v", id, in, err, states)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSagaCompletes(t *testing.T) {
	e := newEnv(t, sagas.Options{})
	in, err := e.m.Start(context.Background(), "fulfillment", "o-1", order{Order: "o-1"})
	if err != nil {
		t.Fatal(err)
	}
	done := waitState(t, e.m, in.ID, sagas.Completed, sagas.Compensated, sagas.CompensationFailed, sagas.Parked)
	if done.State != sagas.Completed {
		t.Fatalf("%+v, want COMPLETED", done)
	}
	if got := strings.Join(e.l.entries("o-1"), ","); got != "reserve,charge,ship" {
		t.Fatalf("commands %s, want reserve,charge,ship once each", got)
	}
	if len(done.History) != 3 || done.History[0].Step != "reserve" || done.History[2].Outcome != "ok" {
		t.Fatalf("history %+v", done.History)
	}
	if !strings.Contains(string(done.Data), `"Reservation":"r-o-1"`) || !strings.Contains(string(done.Data), `"Charged":true`) {
		t.Fatalf("the steps' changes to the data were not kept: %s", done.Data)
	}
	if done.Owner != "" {
		t.Fatalf("a finished instance still has an owner: %q", done.Owner)
	}
}

func TestSagaStartIsIdempotentPerKey(t *testing.T) {
	e := newEnv(t, sagas.Options{})
	ctx := context.Background()
	first, err := e.m.Start(ctx, "fulfillment", "o-2", order{Order: "o-2"})
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.m.Start(ctx, "fulfillment", "o-2", order{Order: "other"})
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != first.ID {
		t.Fatalf("second start made instance %s, the first %s", again.ID, first.ID)
	}
	waitState(t, e.m, first.ID, sagas.Completed)
	if _, err := e.m.Start(ctx, "fulfillment", "o-2", order{Order: "o-2"}); err != nil {
		t.Fatal(err)
	}
	if n := e.l.count("reserve o-2"); n != 1 {
		t.Fatalf("reserve ran %d times for one key", n)
	}
	if n := e.l.count("reserve other"); n != 0 {
		t.Fatal("the second start's data ran")
	}
}

// TestSagaCompensatesInReverse: a final failure at the last step undoes
// the two before it, newest first, once each.
func TestSagaCompensatesInReverse(t *testing.T) {
	e := newEnv(t, sagas.Options{})
	e.l.fail["ship"] = -1
	in, err := e.m.Start(context.Background(), "fulfillment", "o-3", order{Order: "o-3"})
	if err != nil {
		t.Fatal(err)
	}
	done := waitState(t, e.m, in.ID, sagas.Compensated, sagas.Completed, sagas.CompensationFailed)
	if done.State != sagas.Compensated {
		t.Fatalf("%+v, want COMPENSATED", done)
	}
	if got := strings.Join(e.l.entries("o-3"), ","); got != "reserve,charge,refund,release" {
		t.Fatalf("commands %s, want reserve,charge,refund,release", got)
	}
	if !strings.Contains(done.Error, "step ship failed") {
		t.Fatalf("the compensated instance's error is %q: want why it compensated, the ship step's failure", done.Error)
	}
}

// TestSagaRetriesThenFails: the charge fails twice with retryable errors
// and then succeeds; another order's charge keeps failing, and the step
// fails for good on its third attempt, undoing only the reservation.
func TestSagaRetriesThenFails(t *testing.T) {
	e := newEnv(t, sagas.Options{})
	e.l.fail["charge"] = 2
	ok, err := e.m.Start(context.Background(), "fulfillment", "o-4", order{Order: "o-4"})
	if err != nil {
		t.Fatal(err)
	}
	done := waitState(t, e.m, ok.ID, sagas.Completed, sagas.Compensated, sagas.CompensationFailed)
	if done.State != sagas.Completed {
		t.Fatalf("%+v, want COMPLETED after two retries", done)
	}
	var charges []string
	for _, h := range done.History {
		if h.Step == "charge" {
			charges = append(charges, h.Outcome)
		}
	}
	if strings.Join(charges, ",") != "retry,retry,ok" {
		t.Fatalf("charge outcomes %v, want retry,retry,ok", charges)
	}

	e.l.mu.Lock()
	e.l.fail["charge"] = 100
	e.l.mu.Unlock()
	bad, err := e.m.Start(context.Background(), "fulfillment", "o-5", order{Order: "o-5"})
	if err != nil {
		t.Fatal(err)
	}
	done = waitState(t, e.m, bad.ID, sagas.Compensated, sagas.Completed, sagas.CompensationFailed)
	if done.State != sagas.Compensated || !strings.Contains(done.Error, "charge") {
		t.Fatalf("%+v, want COMPENSATED naming the charge", done)
	}
	if got := strings.Join(e.l.entries("o-5"), ","); got != "reserve,release" {
		t.Fatalf("commands %s, want reserve,release: the failed charge has nothing to refund", got)
	}
}

// TestSagaCompensationFailureParks: a compensation that keeps failing
// leaves the instance COMPENSATION_FAILED, with the error, for an operator.
func TestSagaCompensationFailureParks(t *testing.T) {
	e := newEnv(t, sagas.Options{Retry: sagas.Retry{Attempts: 3, Initial: 10 * time.Millisecond}})
	e.l.fail["ship"] = -1
	e.l.fail["release"] = -1
	in, err := e.m.Start(context.Background(), "fulfillment", "o-6", order{Order: "o-6"})
	if err != nil {
		t.Fatal(err)
	}
	done := waitState(t, e.m, in.ID, sagas.CompensationFailed, sagas.Compensated, sagas.Completed)
	if done.State != sagas.CompensationFailed || !strings.Contains(done.Error, "compensation of step reserve") {
		t.Fatalf("%+v, want COMPENSATION_FAILED naming the reserve step's compensation", done)
	}
	if got := strings.Join(e.l.entries("o-6"), ","); got != "reserve,charge,refund" {
		t.Fatalf("commands %s, want reserve,charge,refund", got)
	}
	releases := 0
	for _, h := range done.History {
		if h.Step == "reserve" && h.Compensation {
			releases++
		}
	}
	if releases != 3 {
		t.Fatalf("%d runs of the failing compensation, want the 3 of the retry policy", releases)
	}
}

func TestSagaRegistrationRefusesBadDefinitions(t *testing.T) {
	s := embeddedtest.Server(t)
	js, _ := jetstream.New(embeddedtest.Conn(t, s))
	m, err := sagas.NewManager(context.Background(), js, sagas.NewMemoryStore(), sagas.Options{})
	if err != nil {
		t.Fatal(err)
	}
	noop := func(context.Context, *sagas.Context[order]) error { return nil }
	for _, tc := range []struct {
		name string
		def  sagas.SagaType
		want string
	}{
		{"no steps", sagas.Define[order]("empty"), "no steps"},
		{"two steps of one name", sagas.Define[order]("dup").Step("a", noop).Step("a", noop), `two steps are named "a"`},
		{"nil action", sagas.Define[order]("nil").Step("a", nil), `step "a" has a nil action`},
		{"bad name", sagas.Define[order]("has.dot").Step("a", noop), `"has.dot" is not a subject token`},
		{"bad step name", sagas.Define[order]("ok").Step("a b", noop), `"a b" is not a token`},
	} {
		err := m.Register(tc.def)
		if !errors.Is(err, platform.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an invalid-argument error saying %q", tc.name, err, tc.want)
		}
	}
	if err := m.Register(fulfillment()); err != nil {
		t.Fatal(err)
	}
	if err := m.Register(fulfillment()); !errors.Is(err, platform.ErrDuplicateHandler) {
		t.Fatalf("a second registration of one type: %v", err)
	}
	if _, err := m.Start(context.Background(), "fulfillment", "k", "not an order"); !errors.Is(err, platform.ErrInvalidArgument) {
		t.Fatalf("start with data of the wrong type: %v", err)
	}
	if _, err := m.Start(context.Background(), "nope", "k", order{}); !errors.Is(err, platform.ErrInvalidArgument) {
		t.Fatalf("start of an unknown type: %v", err)
	}
}

// TestSagaCorruptDataParksOneInstance: an instance whose data no longer
// decodes is parked with an error naming it; the others run on.
func TestSagaCorruptDataParksOneInstance(t *testing.T) {
	e := newEnv(t, sagas.Options{})
	ctx := context.Background()
	now := time.Now().UTC()
	bad, _, err := e.store.Create(ctx, sagas.Instance{ID: sagas.InstanceID("fulfillment", "bad"), Type: "fulfillment", Key: "bad", State: sagas.Running,
		Data: []byte(`{"Order": 42}`), Created: now, Updated: now})
	if err != nil {
		t.Fatal(err)
	}
	// Nothing moves it until a manager starts and resumes what is
	// unfinished; meanwhile a good instance runs.
	good, err := e.m.Start(ctx, "fulfillment", "o-7", order{Order: "o-7"})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, e.m, good.ID, sagas.Completed)
	restarted := runManager(t, e.js, e.store, sagas.Options{Commands: bus(t, e.l), Logger: embeddedtest.Logger(t)}, fulfillment())
	parked := waitState(t, restarted, bad.ID, sagas.Parked)
	if !strings.Contains(parked.Error, bad.ID) || !strings.Contains(parked.Error, "does not decode") {
		t.Fatalf("parked with %q: want the instance named and the decoding error", parked.Error)
	}
}

// countingStore counts the saves of the store it wraps.
type countingStore struct {
	sagas.Store
	mu    sync.Mutex
	saves int
	loads int
}

func (c *countingStore) Save(ctx context.Context, in sagas.Instance) (uint64, error) {
	c.mu.Lock()
	c.saves++
	c.mu.Unlock()
	return c.Store.Save(ctx, in)
}

func (c *countingStore) Load(ctx context.Context, id string) (sagas.Instance, error) {
	c.mu.Lock()
	c.loads++
	c.mu.Unlock()
	return c.Store.Load(ctx, id)
}

// TestSagaSavesOncePerStep: the instance is created with its first run
// counted, and the save of a step's result also counts the next step's
// run, so a saga of n steps costs one create and n compare-and-sets; the
// start message holds the instance, so nothing is read back.
func TestSagaSavesOncePerStep(t *testing.T) {
	s := embeddedtest.Server(t)
	js, _ := jetstream.New(embeddedtest.Conn(t, s))
	l := &ledger{fail: map[string]int{}}
	store := &countingStore{Store: sagas.NewMemoryStore()}
	m := runManager(t, js, store, sagas.Options{Commands: bus(t, l), Logger: embeddedtest.Logger(t)}, fulfillment())
	// Not among what Run resumes at its start, which reads it once.
	sagas.WaitResumed(t, m)
	in, err := m.Start(context.Background(), "fulfillment", "o-9", order{Order: "o-9"})
	if err != nil {
		t.Fatal(err)
	}
	// Polled past the counting, so that only the manager's reads count.
	for deadline := time.Now().Add(20 * time.Second); ; {
		got, err := store.Store.Load(context.Background(), in.ID)
		if err == nil && got.State == sagas.Completed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the instance is %s (%v), not completed after 20s", got.State, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	if store.saves != 3 || store.loads != 0 {
		t.Fatalf("%d saves and %d loads for three steps, want 3 saves and no load", store.saves, store.loads)
	}
}
