package sagas_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lexigram/events/embedded"
	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/handlers/durable"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/sagas"
)

// The events the event-driven test sagas start and wait on.
type (
	OrderPlaced     struct{ Order string }
	PaymentReceived struct {
		Order  string
		Amount int
	}
	Shipped struct{ Order string }
)

// eventEnv is a server with an event store and a KV saga store, where
// managers run as separate "processes" (connections).
type eventEnv struct {
	srv    *embedded.Server
	events *lxjs.EventStore
	l      *ledger
}

func newEventEnv(t *testing.T) *eventEnv {
	t.Helper()
	srv := embeddedtest.Server(t)
	js, err := jetstream.New(embeddedtest.Conn(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	events, err := lxjs.New(context.Background(), js, lxjs.Options{Registry: eventRegistry(), Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return &eventEnv{srv: srv, events: events, l: &ledger{fail: map[string]int{}}}
}

func eventRegistry() *platform.Registry {
	reg := platform.NewRegistry()
	platform.MustRegister[OrderPlaced](reg, "order.placed", 1)
	platform.MustRegister[PaymentReceived](reg, "payment.received", 1)
	platform.MustRegister[Shipped](reg, "shipping.shipped", 1)
	return reg
}

// manager runs a manager on a connection of its own; stop ends its Run
// and closes the connection.
func (e *eventEnv) manager(t *testing.T, opts sagas.Options, defs ...sagas.SagaType) (m *sagas.Manager, stop func()) {
	t.Helper()
	nc, err := nats.Connect(e.srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	store, err := sagas.NewKVStore(ctx, js, sagas.KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	events, err := lxjs.New(ctx, js, lxjs.Options{Registry: eventRegistry(), Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	opts.Events = events
	opts.ListenFrom = &durable.FromBeginning
	if opts.Commands == nil {
		opts.Commands = bus(t, e.l)
	}
	if opts.Retry == (sagas.Retry{}) {
		opts.Retry = sagas.Retry{Initial: 20 * time.Millisecond}
	}
	if opts.AckWait == 0 {
		opts.AckWait = 2 * time.Second
	}
	opts.Logger = embeddedtest.Logger(t)
	m, err = sagas.NewManager(ctx, js, store, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range defs {
		if err := m.Register(d); err != nil {
			t.Fatal(err)
		}
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.Run(runCtx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("Run did not return within 30s of its context ending")
			}
			nc.Close()
		})
	}
	t.Cleanup(stop)
	return m, stop
}

func (e *eventEnv) raise(t *testing.T, aggregateType, id string, event any) platform.AppendResult {
	t.Helper()
	r, err := e.events.Append(platform.WithCorrelationID(context.Background(), "corr-"+id), platform.StreamID{Type: aggregateType, ID: id},
		platform.Any(), []platform.Envelope{{Event: event}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// checkout starts on OrderPlaced, reserves, waits for the payment (within
// wait, when not zero), then ships.
func checkout(name string, wait time.Duration, reserve sagas.StepFunc[order]) *sagas.Definition[order] {
	if reserve == nil {
		reserve = send(func(o string) Reserve { return Reserve{o} })
	}
	var opts []sagas.StepOption[order]
	if wait > 0 {
		opts = append(opts, sagas.Within[order](wait))
	}
	return sagas.Define[order](name).
		StartOn(sagas.When("order", func(e OrderPlaced, _ platform.Envelope) (string, order, bool) {
			return e.Order, order{Order: e.Order}, true
		})).
		Step("reserve", reserve, sagas.Compensation(send(func(o string) Release { return Release{o} }))).
		Wait("paid", sagas.On("payment", func(e PaymentReceived, _ platform.Envelope) string { return e.Order },
			func(_ context.Context, sc *sagas.Context[order], e PaymentReceived) error {
				sc.Data.Charged = e.Amount > 0
				return nil
			}), opts...).
		Step("ship", send(func(o string) Ship { return Ship{o} }))
}

// waitFor polls the instance of the type with the key until ok holds.
func waitFor(t *testing.T, m *sagas.Manager, sagaType, key string, what string, ok func(sagas.Instance) bool) sagas.Instance {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		in, err := m.Find(context.Background(), sagaType, key)
		if err == nil && ok(in) {
			return in
		}
		if time.Now().After(deadline) {
			t.Fatalf("saga %s/%s: want %s, have %+v (err %v)", sagaType, key, what, in, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func atStep(step int) func(sagas.Instance) bool {
	return func(in sagas.Instance) bool { return in.State == sagas.Running && in.Step == step }
}

// resting is an instance at the wait step, saved as resting (no lease).
func resting(step int) func(sagas.Instance) bool {
	return func(in sagas.Instance) bool { return in.State == sagas.Running && in.Step == step && in.Owner == "" }
}

func inState(states ...sagas.State) func(sagas.Instance) bool {
	return func(in sagas.Instance) bool { return slices.Contains(states, in.State) }
}

// An event starts the saga, correlated with it; the saga rests at its
// wait until the payment arrives, takes it into its data, and completes.
func TestSagaStartsOnAnEventAndWaitsForAnother(t *testing.T) {
	e := newEventEnv(t)
	m, _ := e.manager(t, sagas.Options{}, checkout("checkout", 0, nil))

	placed := e.raise(t, "order", "o-1", OrderPlaced{Order: "o-1"})
	in := waitFor(t, m, "checkout", "o-1", "resting at the wait", resting(1))
	if in.CorrelationID != "corr-o-1" {
		t.Errorf("correlation ID %q, want the starting event's, corr-o-1", in.CorrelationID)
	}
	if in.CausationID == "" || in.Owner != "" {
		t.Errorf("causation %q (want the starting event's ID), owner %q (want none while waiting)", in.CausationID, in.Owner)
	}
	// The event delivered twice (a second OrderPlaced for the key)
	// starts nothing new.
	e.raise(t, "order", "o-1", OrderPlaced{Order: "o-1"})

	paid := e.raise(t, "payment", "p-1", PaymentReceived{Order: "o-1", Amount: 12})
	in = waitFor(t, m, "checkout", "o-1", "completed", inState(sagas.Completed))
	if got := e.l.entries("o-1"); !slices.Equal(got, []string{"reserve", "ship"}) {
		t.Errorf("commands %v, want reserve then ship, once each", got)
	}
	if !slices.ContainsFunc(in.History, func(r sagas.StepRecord) bool { return r.Step == "paid" && r.Event == paid.FirstPosition }) {
		t.Errorf("history %+v: want the wait's record naming the payment at position %d", in.History, paid.FirstPosition)
	}
	if in.Data == nil || !jsonHas(in.Data, `"Charged":true`) {
		t.Errorf("data %s: the wait's handler should have set Charged", in.Data)
	}
	if len(in.Inbox) != 0 {
		t.Errorf("inbox %+v, want empty after the wait took its event", in.Inbox)
	}
	if placed.FirstPosition == 0 {
		t.Error("the start event has no position")
	}
}

// A reply that overtakes the step that asked for it is kept and taken
// when the instance reaches the wait.
func TestSagaKeepsAnEventThatComesBeforeItsWait(t *testing.T) {
	e := newEventEnv(t)
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	reserve := func(ctx context.Context, sc *sagas.Context[order]) error {
		select {
		case entered <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		_, err := sc.Send(ctx, Reserve{sc.Data.Order})
		return err
	}
	m, _ := e.manager(t, sagas.Options{}, checkout("early", 0, reserve))
	e.raise(t, "order", "o-2", OrderPlaced{Order: "o-2"})
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the saga did not start its first step within 20s of the event that starts it")
	}
	e.raise(t, "payment", "p-2", PaymentReceived{Order: "o-2", Amount: 5})
	waitFor(t, m, "early", "o-2", "the payment in the inbox", func(in sagas.Instance) bool { return len(in.Inbox) == 1 })
	close(release)
	waitFor(t, m, "early", "o-2", "completed", inState(sagas.Completed))
	if got := e.l.entries("o-2"); !slices.Equal(got, []string{"reserve", "ship"}) {
		t.Errorf("commands %v, want reserve then ship, once each", got)
	}
}

// A wait whose event does not come within its deadline times the saga
// out: TIMED_OUT, then the steps before compensate.
func TestSagaWaitTimesOut(t *testing.T) {
	e := newEventEnv(t)
	metrics := sagas.NewMetrics()
	m, _ := e.manager(t, sagas.Options{Metrics: metrics}, checkout("late", time.Second, nil))
	e.raise(t, "order", "o-3", OrderPlaced{Order: "o-3"})
	in := waitFor(t, m, "late", "o-3", "compensated", inState(sagas.Compensated))
	if got := e.l.entries("o-3"); !slices.Equal(got, []string{"reserve", "release"}) {
		t.Errorf("commands %v, want reserve, then its release once", got)
	}
	if !slices.ContainsFunc(in.History, func(r sagas.StepRecord) bool { return r.Step == "paid" && r.Outcome == "timed out" }) {
		t.Errorf("history %+v: want the wait's timed-out record", in.History)
	}
	if got := testutil.ToFloat64(metrics.InstancesCounter("late", "timed_out")); got != 1 {
		t.Errorf("timed_out counted %v times, want 1", got)
	}
	// A payment for the finished saga is not found: counted, ignored.
	e.raise(t, "payment", "p-3", PaymentReceived{Order: "o-3", Amount: 5})
	waitCount(t, func() float64 { return testutil.ToFloat64(metrics.EventsCounter("late", "not_found")) }, 1)
}

// A saga-wide deadline times a saga out at whichever step it is.
func TestSagaDeadline(t *testing.T) {
	e := newEventEnv(t)
	m, _ := e.manager(t, sagas.Options{}, checkout("hurry", 0, nil).Deadline(time.Second))
	e.raise(t, "order", "o-4", OrderPlaced{Order: "o-4"})
	in := waitFor(t, m, "hurry", "o-4", "compensated", inState(sagas.Compensated))
	if !strings.Contains(in.Error, "the saga, at step paid, timed out") {
		t.Errorf("error %q, want it to say the saga timed out at the wait", in.Error)
	}
}

// The timer is durable: a deadline that falls due while no manager runs
// fires when one starts again.
func TestSagaTimeoutFallsDueWhileStopped(t *testing.T) {
	e := newEventEnv(t)
	def := func() *sagas.Definition[order] { return checkout("durable", 2*time.Second, nil) }
	m, stop := e.manager(t, sagas.Options{}, def())
	e.raise(t, "order", "o-5", OrderPlaced{Order: "o-5"})
	in := waitFor(t, m, "durable", "o-5", "resting at the wait", resting(1))
	stop()
	for time.Now().Before(in.Due.Add(500 * time.Millisecond)) {
		time.Sleep(50 * time.Millisecond) // the deadline passes with no manager running
	}
	if got := e.l.entries("o-5"); slices.Contains(got, "release") {
		t.Fatalf("commands %v: nothing should compensate while no manager runs", got)
	}
	m2, _ := e.manager(t, sagas.Options{}, def())
	waitFor(t, m2, "durable", "o-5", "compensated", inState(sagas.Compensated))
	if got := e.l.entries("o-5"); !slices.Equal(got, []string{"reserve", "release"}) {
		t.Errorf("commands %v, want reserve, then its release once", got)
	}
}

// An event that comes just before the deadline wins; the timer, cancelled
// or fired late, does nothing.
func TestSagaCancelledTimerDoesNothing(t *testing.T) {
	e := newEventEnv(t)
	metrics := sagas.NewMetrics()
	m, _ := e.manager(t, sagas.Options{Metrics: metrics}, checkout("race", 2*time.Second, nil))
	e.raise(t, "order", "o-6", OrderPlaced{Order: "o-6"})
	in := waitFor(t, m, "race", "o-6", "resting at the wait", resting(1))
	for time.Until(in.Due) > 300*time.Millisecond {
		time.Sleep(10 * time.Millisecond)
	}
	e.raise(t, "payment", "p-6", PaymentReceived{Order: "o-6", Amount: 1})
	waitFor(t, m, "race", "o-6", "completed", inState(sagas.Completed))
	for time.Now().Before(in.Due.Add(1500 * time.Millisecond)) {
		time.Sleep(50 * time.Millisecond) // past when the timer would fire
	}
	in = waitFor(t, m, "race", "o-6", "completed", inState(sagas.Completed))
	if got := e.l.entries("o-6"); !slices.Equal(got, []string{"reserve", "ship"}) {
		t.Errorf("commands %v, want reserve and ship, no release", got)
	}
}

// A fire whose wait has ended (its cancel lost the race) is recognised
// by its generation, counted, and changes nothing.
func TestSagaStaleTimerFireIsIgnored(t *testing.T) {
	e := newEventEnv(t)
	metrics := sagas.NewMetrics()
	release := make(chan struct{})
	def := sagas.Define[order]("stale").
		StartOn(sagas.When("order", func(e OrderPlaced, _ platform.Envelope) (string, order, bool) {
			return e.Order, order{Order: e.Order}, true
		})).
		Wait("paid", sagas.On[order]("payment", func(e PaymentReceived, _ platform.Envelope) string { return e.Order }, nil), sagas.Within[order](time.Second)).
		Step("slow", func(ctx context.Context, _ *sagas.Context[order]) error {
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	m, _ := e.manager(t, sagas.Options{Metrics: metrics}, def)
	sagas.KeepTimersOnCancel(m)
	e.raise(t, "order", "o-7", OrderPlaced{Order: "o-7"})
	waitFor(t, m, "stale", "o-7", "at the wait", atStep(0))
	e.raise(t, "payment", "p-7", PaymentReceived{Order: "o-7"})
	waitFor(t, m, "stale", "o-7", "at the slow step", atStep(1))
	// The wait's timer was not cancelled: it fires after 1s, while the
	// instance runs its next step.
	waitCount(t, func() float64 { return testutil.ToFloat64(metrics.StaleFiresCounter("stale")) }, 1)
	close(release)
	in := waitFor(t, m, "stale", "o-7", "completed", inState(sagas.Completed))
	if slices.ContainsFunc(in.History, func(r sagas.StepRecord) bool { return r.Outcome == "timed out" }) {
		t.Errorf("history %+v: the stale fire timed the saga out", in.History)
	}
}

// Events that continue no instance follow the type's policy: counted and
// ignored, or dead-lettered; an event the instance no longer waits for
// is counted as unhandled.
func TestSagaNotFoundPolicy(t *testing.T) {
	e := newEventEnv(t)
	metrics := sagas.NewMetrics()
	strict := checkout("strict", 0, nil).IfNotFound(sagas.DeadLetterNotFound)
	m, _ := e.manager(t, sagas.Options{Metrics: metrics}, checkout("lenient", 0, nil), strict)

	pos := e.raise(t, "payment", "p-8", PaymentReceived{Order: "nobody"}).FirstPosition
	waitCount(t, func() float64 { return testutil.ToFloat64(metrics.EventsCounter("lenient", "not_found")) }, 1)
	waitCount(t, func() float64 { return testutil.ToFloat64(metrics.EventsCounter("strict", "not_found")) }, 1)
	js, err := jetstream.New(embeddedtest.Conn(t, e.srv))
	if err != nil {
		t.Fatal(err)
	}
	dlq, err := durable.OpenDLQ(context.Background(), js, e.events, durable.DLQOptions{})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		entry, err := dlq.Get(context.Background(), durable.ID{Handler: "saga-strict", Position: pos})
		if err == nil {
			if !strings.Contains(entry.Error, "LXE-022") || !strings.Contains(entry.Error, "continues no instance") {
				t.Errorf("DLQ entry error %q, want the saga-not-found error", entry.Error)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no DLQ entry for the strict type's event at %d: %v", pos, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := dlq.Get(context.Background(), durable.ID{Handler: "saga-lenient", Position: pos}); err == nil {
		t.Error("the lenient type dead-lettered the event; it should only count it")
	}

	// A second payment after the wait took the first: unhandled.
	e.raise(t, "order", "o-9", OrderPlaced{Order: "o-9"})
	waitFor(t, m, "lenient", "o-9", "at the wait", resting(1))
	e.raise(t, "payment", "p-9", PaymentReceived{Order: "o-9"})
	waitFor(t, m, "lenient", "o-9", "completed", inState(sagas.Completed))
	before := testutil.ToFloat64(metrics.EventsCounter("lenient", "not_found"))
	e.raise(t, "payment", "p-9b", PaymentReceived{Order: "o-9"})
	waitCount(t, func() float64 { return testutil.ToFloat64(metrics.EventsCounter("lenient", "not_found")) }, before+1)
}

// Events for one instance raised at once from several goroutines, with
// two processes running the manager, each handled once, in the order the
// waits ask for, whatever order they came in.
func TestSagaConcurrentEventsTwoProcesses(t *testing.T) {
	e := newEventEnv(t)
	type progress struct{ Order, Seen string }
	var def = func() *sagas.Definition[progress] {
		note := func(tag string) func(context.Context, *sagas.Context[progress], PaymentReceived) error {
			return func(_ context.Context, sc *sagas.Context[progress], ev PaymentReceived) error {
				sc.Data.Seen += fmt.Sprintf("%s%d ", tag, ev.Amount)
				return nil
			}
		}
		key := func(ev PaymentReceived, _ platform.Envelope) string { return ev.Order }
		return sagas.Define[progress]("multi").
			StartOn(sagas.When("order", func(ev OrderPlaced, _ platform.Envelope) (string, progress, bool) {
				return ev.Order, progress{Order: ev.Order}, true
			})).
			Wait("first", sagas.On("payment", key, note("a"))).
			Wait("second", sagas.On("payment", key, note("b"))).
			Wait("third", sagas.On("payment", key, note("c")))
	}
	m1, _ := e.manager(t, sagas.Options{}, def())
	e.manager(t, sagas.Options{}, def())
	const orders = 6
	for i := range orders {
		e.raise(t, "order", fmt.Sprint("c-", i), OrderPlaced{Order: fmt.Sprint("c-", i)})
	}
	var wg sync.WaitGroup
	for i := range orders {
		for n := 1; n <= 3; n++ {
			wg.Go(func() {
				e.raise(t, "payment", fmt.Sprintf("pay-%d-%d", i, n), PaymentReceived{Order: fmt.Sprint("c-", i), Amount: n})
			})
		}
	}
	wg.Wait()
	for i := range orders {
		in := waitFor(t, m1, "multi", fmt.Sprint("c-", i), "completed", inState(sagas.Completed))
		var taken []uint64
		for _, r := range in.History {
			if r.Event != 0 {
				taken = append(taken, r.Event)
			}
		}
		if len(taken) != 3 || !slices.IsSorted(taken) || taken[0] == taken[1] || taken[1] == taken[2] {
			t.Errorf("instance c-%d took the events at %v, want three distinct ones in stream order", i, taken)
		}
		if !jsonHas(in.Data, `"Seen":"a`) || len(in.Inbox) != 0 {
			t.Errorf("instance c-%d: data %s inbox %v", i, in.Data, in.Inbox)
		}
	}
}

func waitCount(t *testing.T, get func() float64, want float64) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for get() < want {
		if time.Now().After(deadline) {
			t.Fatalf("counter at %v, want %v", get(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func jsonHas(raw []byte, part string) bool { return strings.Contains(string(raw), part) }
