package sagas_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lexigram/events/handlers"
	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/sagas"
)

// epoch is the stub clock's start in these tests.
var epoch = time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)

func newStub(t *testing.T, l *ledger, opts sagas.StubOptions, defs ...sagas.SagaType) *sagas.Stub {
	t.Helper()
	if opts.Commands == nil && opts.Reply == nil {
		opts.Commands = bus(t, l)
	}
	if opts.Start.IsZero() {
		opts.Start = epoch
	}
	s := sagas.NewStub(opts)
	for _, d := range defs {
		if err := s.Register(d); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// event is an envelope of aggregateType/id carrying e, as a listener
// gets it from the store.
func event(aggregateType, id, typ string, e any) platform.Envelope {
	return platform.Envelope{Stream: platform.StreamID{Type: aggregateType, ID: id}, Type: typ, Event: e}
}

// outcomes is a history as "step:outcome", compensations marked "undo".
func outcomes(in sagas.Instance) string {
	var out []string
	for _, h := range in.History {
		s := h.Step + ":" + h.Outcome
		if h.Compensation {
			s = "undo " + s
		}
		out = append(out, s)
	}
	return strings.Join(out, ",")
}

func TestStubCompletesAndRecordsCommands(t *testing.T) {
	l := &ledger{fail: map[string]int{}}
	s := newStub(t, l, sagas.StubOptions{}, fulfillment())
	in, err := s.Start(context.Background(), "fulfillment", "o-1", order{Order: "o-1"})
	if err != nil {
		t.Fatal(err)
	}
	if in.State != sagas.Completed {
		t.Fatalf("Start returned %s, want COMPLETED: the stub moves the instance on until it rests", in.State)
	}
	if got := strings.Join(l.entries("o-1"), ","); got != "reserve,charge,ship" {
		t.Fatalf("the bus ran %s, want reserve,charge,ship", got)
	}
	sent := s.Sent()
	if len(sent) != 3 {
		t.Fatalf("Sent has %d commands, want 3: %+v", len(sent), sent)
	}
	for i, step := range []string{"reserve", "charge", "ship"} {
		want := "saga." + in.ID + "." + step + ".do.1"
		if sent[i].Step != step || sent[i].IdempotencyKey != want || sent[i].Err != nil || sent[i].Compensation {
			t.Errorf("sent[%d] = %+v, want step %s with key %s", i, sent[i], step, want)
		}
	}
	if _, ok := sent[1].Command.(Charge); !ok {
		t.Errorf("sent[1].Command is %T, want Charge", sent[1].Command)
	}
	if !strings.Contains(string(in.Data), `"Charged":true`) {
		t.Errorf("data %s: the charge step's change was not kept", in.Data)
	}
}

func TestStubCompensatesInReverse(t *testing.T) {
	l := &ledger{fail: map[string]int{"ship": -1}}
	s := newStub(t, l, sagas.StubOptions{}, fulfillment())
	in, err := s.Start(context.Background(), "fulfillment", "o-3", order{Order: "o-3"})
	if err != nil {
		t.Fatal(err)
	}
	if in.State != sagas.Compensated {
		t.Fatalf("%s (%s), want COMPENSATED", in.State, in.Error)
	}
	if got := strings.Join(l.entries("o-3"), ","); got != "reserve,charge,refund,release" {
		t.Fatalf("commands %s, want reserve,charge,refund,release", got)
	}
	if got, want := outcomes(in), "reserve:ok,charge:ok,ship:failed,undo charge:ok,undo reserve:ok"; got != want {
		t.Fatalf("history %s, want %s", got, want)
	}
	sent := s.Sent()
	if len(sent) != 5 || !sent[3].Compensation || !sent[4].Compensation || sent[2].Err == nil {
		t.Fatalf("sent %+v: want the failed ship, then two compensations", sent)
	}
}

// A retryable failure waits for its delay on the stub's clock.
func TestStubRetriesOnItsClock(t *testing.T) {
	ctx := context.Background()
	l := &ledger{fail: map[string]int{"charge": 1}}
	s := newStub(t, l, sagas.StubOptions{Retry: sagas.Retry{Initial: time.Second}}, fulfillment())
	in, err := s.Start(ctx, "fulfillment", "o-4", order{Order: "o-4"})
	if err != nil {
		t.Fatal(err)
	}
	if in.State != sagas.Running || in.Step != 1 || in.Owner != "" {
		t.Fatalf("after a retryable failure: %s at step %d owned by %q, want RUNNING at step 1, resting", in.State, in.Step, in.Owner)
	}
	if err := s.Advance(ctx, 900*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if in, _ = s.Get(ctx, in.ID); in.State != sagas.Running || l.count("charge o-4") != 0 {
		t.Fatalf("before the retry's delay: %s, charges %d; want still RUNNING and no charge", in.State, l.count("charge o-4"))
	}
	if err := s.Advance(ctx, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if in, _ = s.Get(ctx, in.ID); in.State != sagas.Completed {
		t.Fatalf("after the delay: %s, want COMPLETED", in.State)
	}
	if got, want := outcomes(in), "reserve:ok,charge:retry,charge:ok,ship:ok"; got != want {
		t.Fatalf("history %s, want %s", got, want)
	}
	if got := in.History[2].Started; !got.Equal(epoch.Add(time.Second)) {
		t.Errorf("the retry ran at %v, want the stub's clock at epoch+1s", got)
	}
}

func TestStubWaitTimesOut(t *testing.T) {
	ctx := context.Background()
	l := &ledger{fail: map[string]int{}}
	s := newStub(t, l, sagas.StubOptions{}, checkout("checkout", time.Minute, nil))
	if err := s.Deliver(ctx, event("order", "o-1", "order.placed", OrderPlaced{Order: "o-1"})); err != nil {
		t.Fatal(err)
	}
	in, err := s.Find(ctx, "checkout", "o-1")
	if err != nil {
		t.Fatal(err)
	}
	if in.State != sagas.Running || in.Step != 1 {
		t.Fatalf("%s at step %d, want resting at the wait (step 1)", in.State, in.Step)
	}
	timers := s.Timers()
	if len(timers) != 1 || !timers[0].Due.Equal(epoch.Add(time.Minute)) || !timers[0].At.Equal(timers[0].Due) {
		t.Fatalf("timers %+v, want one due and firing at epoch+1m", timers)
	}
	if err := s.Advance(ctx, 59*time.Second); err != nil {
		t.Fatal(err)
	}
	if in, _ = s.Get(ctx, in.ID); in.State != sagas.Running {
		t.Fatalf("before the deadline: %s, want RUNNING", in.State)
	}
	if err := s.Advance(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	if in, _ = s.Get(ctx, in.ID); in.State != sagas.Compensated {
		t.Fatalf("at the deadline: %s, want COMPENSATED", in.State)
	}
	if got, want := outcomes(in), "reserve:ok,paid:timed out,undo reserve:ok"; got != want {
		t.Fatalf("history %s, want %s", got, want)
	}
	if len(s.Timers()) != 0 {
		t.Fatalf("timers left: %+v", s.Timers())
	}
}

// An event that comes before its wait is kept and taken there; the same
// event delivered again is taken once. (Its delivery wakes the instance,
// as on the work stream, so the reserve's retry runs then too: it fails
// twice to stay before the wait.)
func TestStubKeepsAnEarlyEventAndTakesItOnce(t *testing.T) {
	ctx := context.Background()
	l := &ledger{fail: map[string]int{"reserve": 2}}
	s := newStub(t, l, sagas.StubOptions{Retry: sagas.Retry{Initial: time.Second}}, checkout("checkout", 0, nil))
	if err := s.Deliver(ctx, event("order", "o-2", "order.placed", OrderPlaced{Order: "o-2"})); err != nil {
		t.Fatal(err)
	}
	paid := event("payment", "p-2", "payment.received", PaymentReceived{Order: "o-2", Amount: 5})
	paid.Position = 10
	if err := s.Deliver(ctx, paid, paid); err != nil {
		t.Fatal(err)
	}
	in, err := s.Find(ctx, "checkout", "o-2")
	if err != nil {
		t.Fatal(err)
	}
	if in.Step != 0 || len(in.Inbox) != 1 {
		t.Fatalf("at step %d with %d events in the inbox, want step 0 (reserve retrying) and the payment kept once", in.Step, len(in.Inbox))
	}
	if err := s.Advance(ctx, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if in, _ = s.Get(ctx, in.ID); in.State != sagas.Completed {
		t.Fatalf("%s, want COMPLETED", in.State)
	}
	if got := strings.Join(l.entries("o-2"), ","); got != "reserve,ship" {
		t.Fatalf("commands %s, want reserve,ship", got)
	}
	if !strings.Contains(string(in.Data), `"Charged":true`) {
		t.Errorf("data %s: the wait did not take the payment into it", in.Data)
	}
}

// lateTimers fire every timer late by a fixed time, and cancelled ones
// anyway when fireCancelled.
type lateTimers struct {
	late          time.Duration
	fireCancelled bool
}

func (f lateTimers) LateTimer(string, time.Time) time.Duration { return f.late }
func (f lateTimers) FireCancelled(string, time.Time) bool      { return f.fireCancelled }

func TestStubLateTimerTimesOutWhenItComes(t *testing.T) {
	ctx := context.Background()
	l := &ledger{fail: map[string]int{}}
	s := newStub(t, l, sagas.StubOptions{Timers: lateTimers{late: 30 * time.Second}}, checkout("checkout", time.Minute, nil))
	if err := s.Deliver(ctx, event("order", "o-5", "order.placed", OrderPlaced{Order: "o-5"})); err != nil {
		t.Fatal(err)
	}
	if err := s.Advance(ctx, time.Minute+29*time.Second); err != nil {
		t.Fatal(err)
	}
	in, _ := s.Find(ctx, "checkout", "o-5")
	if in.State != sagas.Running {
		t.Fatalf("past the deadline but before the late fire: %s, want RUNNING (nothing wakes the instance)", in.State)
	}
	if err := s.Advance(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	if in, _ = s.Get(ctx, in.ID); in.State != sagas.Compensated {
		t.Fatalf("after the late fire: %s, want COMPENSATED", in.State)
	}
	if h := in.History[1]; h.Outcome != "timed out" || !h.Started.Equal(epoch.Add(90*time.Second)) {
		t.Fatalf("the timeout %+v, want timed out when the late fire came, at epoch+90s", h)
	}
}

// twoWaits waits for the payment within a minute, then for the shipment
// within ten.
func twoWaits() *sagas.Definition[order] {
	return sagas.Define[order]("two-waits").
		StartOn(sagas.When("order", func(e OrderPlaced, _ platform.Envelope) (string, order, bool) {
			return e.Order, order{Order: e.Order}, true
		})).
		Step("reserve", send(func(o string) Reserve { return Reserve{o} }), sagas.Compensation(send(func(o string) Release { return Release{o} }))).
		Wait("paid", sagas.On[order]("payment", func(e PaymentReceived, _ platform.Envelope) string { return e.Order }, nil), sagas.Within[order](time.Minute)).
		Wait("shipped", sagas.On[order]("shipping", func(e Shipped, _ platform.Envelope) string { return e.Order }, nil), sagas.Within[order](10*time.Minute))
}

// The payment's timer, cancelled when the payment came, fires anyway
// while the instance rests at its next wait: the engine must see that it
// belongs to the ended wait (its generation) and not time the saga out.
func TestStubStaleTimerIsIgnored(t *testing.T) {
	ctx := context.Background()
	l := &ledger{fail: map[string]int{}}
	metrics := sagas.NewMetrics()
	s := newStub(t, l, sagas.StubOptions{Timers: lateTimers{fireCancelled: true}, Metrics: metrics}, twoWaits())
	if err := s.Deliver(ctx, event("order", "o-6", "order.placed", OrderPlaced{Order: "o-6"})); err != nil {
		t.Fatal(err)
	}
	if err := s.Advance(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := s.Deliver(ctx, event("payment", "p-6", "payment.received", PaymentReceived{Order: "o-6"})); err != nil {
		t.Fatal(err)
	}
	timers := s.Timers()
	if len(timers) != 2 || !timers[0].Cancelled || !timers[0].Due.Equal(epoch.Add(time.Minute)) || timers[1].Cancelled {
		t.Fatalf("timers %+v, want the payment's, cancelled but to fire at epoch+1m, and the shipment's", timers)
	}
	if err := s.Advance(ctx, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	in, _ := s.Find(ctx, "two-waits", "o-6")
	if in.State != sagas.Running || in.Step != 2 {
		t.Fatalf("after the stale fire: %s at step %d (%s), want RUNNING at the shipment's wait", in.State, in.Step, in.Error)
	}
	if n := testutil.ToFloat64(metrics.StaleFiresCounter("two-waits")); n != 1 {
		t.Fatalf("stale fires counted: %v, want 1", n)
	}
	if err := s.Deliver(ctx, event("shipping", "s-6", "shipping.shipped", Shipped{Order: "o-6"})); err != nil {
		t.Fatal(err)
	}
	if in, _ = s.Get(ctx, in.ID); in.State != sagas.Completed {
		t.Fatalf("%s, want COMPLETED", in.State)
	}
	if got, want := outcomes(in), "reserve:ok,paid:ok,shipped:ok"; got != want {
		t.Fatalf("history %s, want %s", got, want)
	}
}

// Replies script the commands' answers without a bus.
func TestStubReply(t *testing.T) {
	s := sagas.NewStub(sagas.StubOptions{Reply: func(_ context.Context, c sagas.SentCommand) (handlers.CommandResult, error) {
		if _, ok := c.Command.(Ship); ok {
			return handlers.CommandResult{}, fmt.Errorf("no courier")
		}
		return handlers.CommandResult{}, nil
	}})
	if err := s.Register(fulfillment()); err != nil {
		t.Fatal(err)
	}
	in, err := s.Start(context.Background(), "fulfillment", "o-7", order{Order: "o-7"})
	if err != nil {
		t.Fatal(err)
	}
	if in.State != sagas.Compensated || !strings.Contains(in.Error, "no courier") {
		t.Fatalf("%s (%s), want COMPENSATED because of the ship reply", in.State, in.Error)
	}
	var names []string
	for _, c := range s.Sent() {
		names = append(names, fmt.Sprintf("%T", c.Command))
	}
	if got, want := strings.Join(names, ","), "sagas_test.Reserve,sagas_test.Charge,sagas_test.Ship,sagas_test.Refund,sagas_test.Release"; got != want {
		t.Fatalf("sent %s, want %s", got, want)
	}
}

func TestStubRefusesWhatTheManagerRefuses(t *testing.T) {
	s := sagas.NewStub(sagas.StubOptions{})
	if err := s.Register(sagas.Define[order]("no-steps")); err == nil {
		t.Fatal("a type without steps was registered")
	}
	if _, err := s.Start(context.Background(), "unknown", "k", order{}); err == nil {
		t.Fatal("an unregistered type started")
	}
	if err := s.Advance(context.Background(), -time.Second); err == nil {
		t.Fatal("the clock went back")
	}
}

// ExampleStub unit-tests a saga with no NATS: the stub runs the steps
// the manager runs, records the commands, and times the wait out when
// its clock is moved past the deadline.
func ExampleStub() {
	type Order struct{ ID string }
	type Reserve struct{ ID string }
	type Release struct{ ID string }
	type Paid struct{ ID string }
	def := sagas.Define[Order]("checkout").
		Step("reserve", func(ctx context.Context, sc *sagas.Context[Order]) error {
			_, err := sc.Send(ctx, Reserve{sc.Data.ID})
			return err
		}, sagas.Compensation(func(ctx context.Context, sc *sagas.Context[Order]) error {
			_, err := sc.Send(ctx, Release{sc.Data.ID})
			return err
		})).
		Wait("paid", sagas.On[Order]("payment", func(e Paid, _ platform.Envelope) string { return e.ID }, nil),
			sagas.Within[Order](15*time.Minute))

	ctx := context.Background()
	s := sagas.NewStub(sagas.StubOptions{}) // every command succeeds; none has a handler
	if err := s.Register(def); err != nil {
		fmt.Println(err)
		return
	}
	in, _ := s.Start(ctx, "checkout", "o-1", Order{ID: "o-1"})
	fmt.Println("started:", in.State, "at step", in.Step)

	_ = s.Advance(ctx, 15*time.Minute) // no payment came
	in, _ = s.Get(ctx, in.ID)
	fmt.Println("15 minutes later:", in.State)
	for _, c := range s.Sent() {
		fmt.Printf("sent %T by %s (compensation %v)\n", c.Command, c.Step, c.Compensation)
	}
	// Output:
	// started: RUNNING at step 1
	// 15 minutes later: COMPENSATED
	// sent sagas_test.Reserve by reserve (compensation false)
	// sent sagas_test.Release by reserve (compensation true)
}

// An event that comes after the wait's deadline, while its timer is
// late, times the saga out as an on-time timer would have: the outcome
// does not depend on the timer's lateness.
func TestStubEventAfterTheDeadlineTimesOut(t *testing.T) {
	ctx := context.Background()
	l := &ledger{fail: map[string]int{}}
	s := newStub(t, l, sagas.StubOptions{Timers: lateTimers{late: time.Minute}}, checkout("checkout", time.Minute, nil))
	if err := s.Deliver(ctx, event("order", "o-8", "order.placed", OrderPlaced{Order: "o-8"})); err != nil {
		t.Fatal(err)
	}
	if err := s.Advance(ctx, time.Minute+time.Second); err != nil {
		t.Fatal(err)
	}
	if err := s.Deliver(ctx, event("payment", "p-8", "payment.received", PaymentReceived{Order: "o-8", Amount: 1})); err != nil {
		t.Fatal(err)
	}
	in, _ := s.Find(ctx, "checkout", "o-8")
	if in.State != sagas.Compensated || l.count("ship o-8") != 0 {
		t.Fatalf("a payment 1s past the deadline: %s, shipped %d times; want COMPENSATED and not shipped", in.State, l.count("ship o-8"))
	}
	if got, want := outcomes(in), "reserve:ok,paid:timed out,undo reserve:ok"; got != want {
		t.Fatalf("history %s, want %s", got, want)
	}
}
