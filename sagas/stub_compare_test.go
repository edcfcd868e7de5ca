package sagas_test

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lexigram/events/sagas"
)

// outcome is what a saga run left: the instance's state, history, data
// and error, and the commands the bus applied.
type outcome struct {
	state    sagas.State
	history  string
	data     string
	err      string
	commands string
}

// messageID is a command's ID in an error: new on every dispatch.
var messageID = regexp.MustCompile(`\([0-9A-Z]{26}\)`)

func outcomeOf(in sagas.Instance, l *ledger, key string) outcome {
	return outcome{state: in.State, history: outcomes(in), data: string(in.Data), err: messageID.ReplaceAllString(in.Error, "(ID)"),
		commands: strings.Join(l.entries(key), ",")}
}

// TestStubMatchesTheManager runs the same sagas, with the same failures,
// through the real manager on a server and through the stub: they must
// end alike, so a test on the stub says what production does.
func TestStubMatchesTheManager(t *testing.T) {
	cases := []struct {
		name string
		fail map[string]int
	}{
		{"completes", nil},
		{"retries then completes", map[string]int{"charge": 2}},
		{"fails for good and compensates", map[string]int{"ship": -1}},
		{"charge fails on its third attempt", map[string]int{"charge": 3}},
	}
	e := newEnv(t, sagas.Options{})
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key := "cmp-" + string(rune('a'+i))
			e.l.mu.Lock()
			for k, v := range c.fail {
				e.l.fail[k] = v
			}
			e.l.mu.Unlock()
			in, err := e.m.Start(context.Background(), "fulfillment", key, order{Order: key})
			if err != nil {
				t.Fatal(err)
			}
			real := outcomeOf(waitState(t, e.m, in.ID, sagas.Completed, sagas.Compensated, sagas.CompensationFailed, sagas.Parked), e.l, key)
			e.l.mu.Lock()
			clear(e.l.fail)
			e.l.mu.Unlock()

			l := &ledger{fail: map[string]int{}}
			for k, v := range c.fail {
				l.fail[k] = v
			}
			s := newStub(t, l, sagas.StubOptions{Retry: sagas.Retry{Initial: 20 * time.Millisecond}}, fulfillment())
			ctx := context.Background()
			if _, err := s.Start(ctx, "fulfillment", key, order{Order: key}); err != nil {
				t.Fatal(err)
			}
			if err := s.Advance(ctx, time.Minute); err != nil {
				t.Fatal(err)
			}
			sin, err := s.Get(ctx, in.ID)
			if err != nil {
				t.Fatal(err)
			}
			if stub := outcomeOf(sin, l, key); stub != real {
				t.Fatalf("the stub and the manager differ:\nstub:    %+v\nmanager: %+v", stub, real)
			}
		})
	}
}

// TestStubMatchesTheManagerOnEvents: a saga started by an event, whose
// payment comes while its reserve retries, ends alike in both.
func TestStubMatchesTheManagerOnEvents(t *testing.T) {
	e := newEventEnv(t)
	e.l.fail["reserve"] = 1
	m, _ := e.manager(t, sagas.Options{}, checkout("checkout", time.Minute, nil))
	e.raise(t, "order", "o-9", OrderPlaced{Order: "o-9"})
	waitFor(t, m, "checkout", "o-9", "started", func(sagas.Instance) bool { return true })
	e.raise(t, "payment", "p-9", PaymentReceived{Order: "o-9", Amount: 3})
	real := outcomeOf(waitFor(t, m, "checkout", "o-9", "finished", inState(sagas.Completed, sagas.Compensated)), e.l, "o-9")

	l := &ledger{fail: map[string]int{"reserve": 1}}
	s := newStub(t, l, sagas.StubOptions{Retry: sagas.Retry{Initial: 20 * time.Millisecond}}, checkout("checkout", time.Minute, nil))
	ctx := context.Background()
	if err := s.Deliver(ctx, event("order", "o-9", "order.placed", OrderPlaced{Order: "o-9"})); err != nil {
		t.Fatal(err)
	}
	if err := s.Deliver(ctx, event("payment", "p-9", "payment.received", PaymentReceived{Order: "o-9", Amount: 3})); err != nil {
		t.Fatal(err)
	}
	if err := s.Advance(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	in, err := s.Find(ctx, "checkout", "o-9")
	if err != nil {
		t.Fatal(err)
	}
	if stub := outcomeOf(in, l, "o-9"); stub != real {
		t.Fatalf("the stub and the manager differ:\nstub:    %+v\nmanager: %+v", stub, real)
	}
}
