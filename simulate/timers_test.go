package simulate_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lexigram/events/handlers"
	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/sagas"
	"github.com/lexigram/events/simulate"
)

type (
	shipment struct{ Order string }
	paid     struct{ Order string }
	shipped  struct{ Order string }
)

// twoDeadlines reserves, waits for the payment within ten minutes, then
// for the shipment within ten more; a timeout releases the reservation.
func twoDeadlines() *sagas.Definition[shipment] {
	send := func(what string) sagas.StepFunc[shipment] {
		return func(ctx context.Context, sc *sagas.Context[shipment]) error {
			_, err := sc.Send(ctx, what+" "+sc.Data.Order)
			return err
		}
	}
	return sagas.Define[shipment]("two-deadlines").
		Step("reserve", send("reserve"), sagas.Compensation(send("release"))).
		Wait("paid", sagas.On[shipment]("payment", func(e paid, _ platform.Envelope) string { return e.Order }, nil), sagas.Within[shipment](10*time.Minute)).
		Wait("shipped", sagas.On[shipment]("shipping", func(e shipped, _ platform.Envelope) string { return e.Order }, nil), sagas.Within[shipment](10*time.Minute))
}

var epoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// TestTimerFaultsLeaveTheOutcomeAlone: whether a saga completes or times
// out depends on when its events came, never on how late its timers
// fire or on a cancelled timer firing: on every seed the outcome is the
// one the events' times give, and the reservation is released exactly
// once when it times out.
func TestTimerFaultsLeaveTheOutcomeAlone(t *testing.T) {
	faults := simulate.Faults{LateTimer: 0.5, FireCancelled: 0.5}
	lates, staleFires := 0, 0
	simulate.Check(t, simulate.Options{Seed: 1, Runs: 200, Faults: faults}, func(s *simulate.Sim) error {
		ctx := context.Background()
		stub := sagas.NewStub(sagas.StubOptions{Start: epoch, Timers: s, Reply: func(context.Context, sagas.SentCommand) (handlers.CommandResult, error) {
			return handlers.CommandResult{}, nil
		}})
		if err := stub.Register(twoDeadlines()); err != nil {
			return err
		}
		in, err := stub.Start(ctx, "two-deadlines", "o-1", shipment{Order: "o-1"})
		if err != nil {
			return err
		}
		toPay := s.Duration(15*time.Minute, "the payment comes after")
		toShip := s.Duration(15*time.Minute, "the shipment comes after")
		if err := stub.Advance(ctx, toPay); err != nil {
			return err
		}
		if err := stub.Deliver(ctx, platform.Envelope{Stream: platform.StreamID{Type: "payment", ID: "p-1"}, Type: "paid", Event: paid{"o-1"}}); err != nil {
			return err
		}
		if err := stub.Advance(ctx, toShip); err != nil {
			return err
		}
		if err := stub.Deliver(ctx, platform.Envelope{Stream: platform.StreamID{Type: "shipping", ID: "s-1"}, Type: "shipped", Event: shipped{"o-1"}}); err != nil {
			return err
		}
		if err := stub.Advance(ctx, time.Hour); err != nil { // every timer, late or stale, has fired
			return err
		}
		if len(stub.Timers()) != 0 {
			return fmt.Errorf("timers left after an hour: %+v", stub.Timers())
		}
		in, err = stub.Get(ctx, in.ID)
		if err != nil {
			return err
		}
		want := sagas.Compensated
		if toPay < 10*time.Minute && toShip < 10*time.Minute {
			want = sagas.Completed
		}
		if in.State != want {
			return fmt.Errorf("payment after %v, shipment %v later: %s (%s), want %s", toPay, toShip, in.State, in.Error, want)
		}
		releases, timeouts := 0, 0
		for _, c := range stub.Sent() {
			if c.Command == "release o-1" {
				releases++
			}
		}
		for _, h := range in.History {
			if h.Outcome == "timed out" {
				timeouts++
			}
		}
		if want == sagas.Compensated && (releases != 1 || timeouts != 1) || want == sagas.Completed && (releases != 0 || timeouts != 0) {
			return fmt.Errorf("%s with %d releases and %d timeouts: want exactly one of each when it timed out, none when it completed", in.State, releases, timeouts)
		}
		for _, line := range s.Trace() {
			lates += strings.Count(line, "late")
			staleFires += strings.Count(line, "fires anyway")
		}
		return nil
	})
	if lates == 0 || staleFires == 0 {
		t.Fatalf("over 200 seeds: %d late timers and %d cancelled ones fired: the faults did not happen", lates, staleFires)
	}
}
