package tenancy_test

import (
	"testing"
	"time"

	"github.com/lexigram/events/platform"
)

// The saga and encryption tests' domain, beside placed and PlaceOrder.
type (
	paid    struct{ Order string }
	Reserve struct{ Order string }
	Release struct{ Order string }
	// signedUp names its data subject, a customer, whose key seals the
	// e-mail address.
	signedUp struct {
		Customer string `lexigram:"subject"`
		Email    string `lexigram:"personal"`
	}
)

// register registers the whole test domain in reg.
func register(reg *platform.Registry) error {
	for _, err := range []error{
		platform.Register[placed](reg, "order.placed", 1),
		platform.Register[PlaceOrder](reg, "order.place", 1),
		platform.Register[paid](reg, "payment.captured", 1),
		platform.Register[Reserve](reg, "stock.reserve", 1),
		platform.Register[Release](reg, "stock.release", 1),
		platform.Register[signedUp](reg, "customer.signed-up", 1),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

func domain(t testing.TB) *platform.Registry {
	reg := platform.NewRegistry()
	if err := register(reg); err != nil {
		t.Fatal(err)
	}
	return reg
}

// eventually polls cond every 10ms until it holds, failing the test with
// what cond last said after 60s (generous: the tests run with the
// machine busy).
func eventually(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 60s; last: %s", what, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
