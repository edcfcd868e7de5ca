package orders

import (
	"context"
	"errors"
	"fmt"

	"github.com/lexigram/events/handlers"
	"github.com/lexigram/events/platform"
)

// The order commands. Their JSON (HTTP bodies, NATS requests) uses the
// tags' names.
type (
	// PlaceOrder opens order ID for a customer.
	PlaceOrder struct {
		ID       string `json:"id"`
		Customer string `json:"customer"`
	}
	// AddItem adds Quantity units of SKU at PriceCents each.
	AddItem struct {
		ID         string `json:"id"`
		SKU        string `json:"sku"`
		Quantity   int    `json:"quantity"`
		PriceCents int64  `json:"price_cents"`
	}
	// RemoveItem removes every unit of SKU.
	RemoveItem struct {
		ID  string `json:"id"`
		SKU string `json:"sku"`
	}
	// ConfirmOrder closes the order to changes and starts its fulfilment.
	ConfirmOrder struct {
		ID string `json:"id"`
	}
	// CancelOrder cancels an order that has not shipped.
	CancelOrder struct {
		ID     string `json:"id"`
		Reason string `json:"reason,omitempty"`
	}
	// ShipOrder marks a confirmed order shipped; the fulfilment saga
	// sends it.
	ShipOrder struct {
		ID        string `json:"id"`
		PaymentID string `json:"payment_id,omitempty"`
	}
)

// maxSKU bounds a SKU's length.
const maxSKU = 64

func validID(id string) error {
	if id == "" {
		return platform.Errorf(platform.CodeInvalidArgument, "id is empty: name the order, e.g. \"order-1\"")
	}
	if err := (platform.StreamID{Type: AggregateType, ID: id}).Validate(); err != nil {
		return platform.Errorf(platform.CodeInvalidArgument, "id %q: %w", id, err)
	}
	return nil
}

func validSKU(sku string) error {
	if sku == "" || len(sku) > maxSKU {
		return platform.Errorf(platform.CodeInvalidArgument, "sku %q: give 1 to %d characters", sku, maxSKU)
	}
	return nil
}

// Validate is run by the bus's Validation middleware before the handler.
func (c PlaceOrder) Validate() error {
	if err := validID(c.ID); err != nil {
		return err
	}
	if c.Customer == "" {
		return platform.Errorf(platform.CodeInvalidArgument, "customer is empty: name the customer placing order %q", c.ID)
	}
	return nil
}

func (c AddItem) Validate() error {
	if err := validID(c.ID); err != nil {
		return err
	}
	if err := validSKU(c.SKU); err != nil {
		return err
	}
	if c.Quantity < 1 || c.Quantity > MaxQuantity {
		return platform.Errorf(platform.CodeInvalidArgument, "quantity %d: give 1 to %d", c.Quantity, MaxQuantity)
	}
	if c.PriceCents < 0 || c.PriceCents > MaxPriceCents {
		return platform.Errorf(platform.CodeInvalidArgument, "price_cents %d: give 0 to %d (the unit price in cents)", c.PriceCents, MaxPriceCents)
	}
	return nil
}

func (c RemoveItem) Validate() error {
	if err := validID(c.ID); err != nil {
		return err
	}
	return validSKU(c.SKU)
}

func (c ConfirmOrder) Validate() error { return validID(c.ID) }
func (c CancelOrder) Validate() error  { return validID(c.ID) }
func (c ShipOrder) Validate() error    { return validID(c.ID) }

// handleCommands registers the order commands' handlers on cmds (the
// node's bus; a test's own in simulate_test.go).
func (d *domain) handleCommands(cmds *handlers.CommandBus) error {
	return errors.Join(
		handlers.HandleCommand(cmds, d.place),
		handlers.HandleCommand(cmds, func(ctx context.Context, c AddItem) error {
			return d.change(ctx, c.ID, func(o *Order) error { return o.AddItem(c.SKU, c.Quantity, c.PriceCents) })
		}),
		handlers.HandleCommand(cmds, func(ctx context.Context, c RemoveItem) error {
			return d.change(ctx, c.ID, func(o *Order) error { return o.RemoveItem(c.SKU) })
		}),
		handlers.HandleCommand(cmds, func(ctx context.Context, c ConfirmOrder) error {
			return d.change(ctx, c.ID, (*Order).Confirm)
		}),
		handlers.HandleCommand(cmds, func(ctx context.Context, c CancelOrder) error {
			return d.change(ctx, c.ID, func(o *Order) error { return o.Cancel(c.Reason) })
		}),
		handlers.HandleCommand(cmds, func(ctx context.Context, c ShipOrder) error {
			return d.change(ctx, c.ID, func(o *Order) error { return o.Ship(c.PaymentID) })
		}),
	)
}

// place opens a new order. Two places of one ID at once: the second's
// append conflicts, the Retry middleware runs it again, and it finds the
// order placed.
func (d *domain) place(ctx context.Context, c PlaceOrder) error {
	existing, err := d.orders.Load(ctx, c.ID)
	switch {
	case err == nil:
		return existing.Place(c.Customer) // refused: already placed
	case !errors.Is(err, platform.ErrStreamNotFound):
		return err
	}
	o := &Order{}
	o.SetID(c.ID)
	if err := o.Place(c.Customer); err != nil {
		return err
	}
	return handlers.Track(ctx, d.orders, o)
}

// change loads order id into the command's unit of work and changes it;
// the Transaction middleware saves it.
func (d *domain) change(ctx context.Context, id string, fn func(*Order) error) error {
	o, err := handlers.Load(ctx, d.orders, id)
	if errors.Is(err, platform.ErrStreamNotFound) {
		return platform.Errorf(platform.CodeStreamNotFound, "order %q is not placed: %w: place it first (order.place)", id, err)
	}
	if err != nil {
		return fmt.Errorf("load order %q: %w", id, err)
	}
	return fn(o)
}
