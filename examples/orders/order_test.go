package orders

import (
	"errors"
	"strings"
	"testing"

	"github.com/lexigram/events/platform"
)

func placed(t *testing.T) *Order {
	t.Helper()
	o := &Order{}
	o.SetID("o-1")
	if err := o.Place("ada"); err != nil {
		t.Fatal(err)
	}
	return o
}

// TestOrderRules: each rule refuses with ErrInvalidArgument, the rule's
// sentinel where it has one, and a message naming the order and the fix.
func TestOrderRules(t *testing.T) {
	cases := []struct {
		name     string
		do       func(o *Order) error
		sentinel error
		mentions string
	}{
		{"place twice", func(o *Order) error { return o.Place("bob") }, ErrAlreadyPlaced, "another id"},
		{"confirm empty", (*Order).Confirm, ErrEmpty, "add an item"},
		{"remove missing", func(o *Order) error { return o.RemoveItem("pen") }, ErrNoSuchItem, "it has none"},
		{"change price", func(o *Order) error {
			_ = o.AddItem("book", 1, 100)
			return o.AddItem("book", 1, 200)
		}, nil, "remove the item first"},
		{"too many units", func(o *Order) error {
			_ = o.AddItem("book", MaxQuantity, 100)
			return o.AddItem("book", 1, 100)
		}, nil, "at most 0 more"},
		{"add after confirm", func(o *Order) error {
			_ = o.AddItem("book", 1, 100)
			_ = o.Confirm()
			return o.AddItem("pen", 1, 100)
		}, ErrNotOpen, "place a new order"},
		{"cancel shipped", func(o *Order) error {
			_ = o.AddItem("book", 1, 100)
			_ = o.Confirm()
			_ = o.Ship("pay-1")
			return o.Cancel("changed my mind")
		}, ErrNotOpen, "return the goods"},
		{"ship open", func(o *Order) error { return o.Ship("pay-1") }, nil, "only a confirmed order ships"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.do(placed(t))
			if !errors.Is(err, platform.ErrInvalidArgument) {
				t.Fatalf("got %v, want an LXE-001 error", err)
			}
			if c.sentinel != nil && !errors.Is(err, c.sentinel) {
				t.Errorf("got %v, want it to wrap %v", err, c.sentinel)
			}
			if msg := err.Error(); !strings.Contains(msg, `"o-1"`) || !strings.Contains(msg, c.mentions) {
				t.Errorf("%q does not name the order and %q", msg, c.mentions)
			}
		})
	}
}

// TestOrderState: the events add up to the lines and the total; repeated
// cancels and ships change nothing.
func TestOrderState(t *testing.T) {
	o := placed(t)
	for _, err := range []error{o.AddItem("book", 2, 1250), o.AddItem("pen", 3, 199), o.AddItem("book", 1, 1250), o.RemoveItem("pen"), o.Confirm()} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := o.State.TotalCents(); got != 3*1250 {
		t.Errorf("total %d, want %d", got, 3*1250)
	}
	if len(o.State.Lines) != 1 || o.State.Lines[0] != (Line{SKU: "book", Quantity: 3, PriceCents: 1250}) {
		t.Errorf("lines %+v, want 3 books", o.State.Lines)
	}
	_ = o.Ship("pay-1")
	before := len(o.Pending())
	if err := o.Ship("pay-1"); err != nil || len(o.Pending()) != before {
		t.Errorf("a second ship: %v, %d events raised", err, len(o.Pending())-before)
	}
	last := o.Pending()[len(o.Pending())-1].Event
	if _, ok := last.(OrderShipped); !ok || o.State.Status != StatusShipped {
		t.Errorf("last event %T, status %s; want OrderShipped, shipped", last, o.State.Status)
	}
}

// TestCommandValidation: bad fields are refused before the handler runs,
// naming the field and the value.
func TestCommandValidation(t *testing.T) {
	cases := []struct {
		cmd      interface{ Validate() error }
		mentions string
	}{
		{PlaceOrder{Customer: "ada"}, "id is empty"},
		{PlaceOrder{ID: strings.Repeat("x", platform.MaxAggregateIDLen+1), Customer: "ada"}, "bytes: use at most"},
		{PlaceOrder{ID: "o-1"}, "customer is empty"},
		{AddItem{ID: "o-1", SKU: "book", Quantity: 0}, "quantity 0"},
		{AddItem{ID: "o-1", SKU: "", Quantity: 1}, `sku ""`},
		{AddItem{ID: "o-1", SKU: "book", Quantity: 1, PriceCents: -1}, "price_cents -1"},
		{GetOrderSummary{}, "id is empty"},
	}
	for _, c := range cases {
		err := c.cmd.Validate()
		if !errors.Is(err, platform.ErrInvalidArgument) || !strings.Contains(err.Error(), c.mentions) {
			t.Errorf("%#v: got %v, want LXE-001 mentioning %q", c.cmd, err, c.mentions)
		}
	}
	if err := (AddItem{ID: "o-1", SKU: "book", Quantity: 1, PriceCents: 0}).Validate(); err != nil {
		t.Errorf("a free item is refused: %v", err)
	}
}
