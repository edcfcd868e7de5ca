package orders

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/handlers"
	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/projections"
)

// SummaryProjection is the name of the OrderSummaryProjection kept in a
// key-value bucket: its checkpoint, its lease and what wait-for waits on.
const SummaryProjection = "order_summary"

// DefaultSummaryBucket is the key-value bucket of the summaries.
const DefaultSummaryBucket = "ORDER_SUMMARY"

// orderEventTypes are the event types the summaries read.
var orderEventTypes = []string{"order.placed", "order.item-added", "order.item-removed", "order.confirmed", "order.shipped", "order.cancelled"}

// OrderSummary is the read model of one order, the answer of
// GetOrderSummary.
type OrderSummary struct {
	ID           string    `json:"id"`
	Customer     string    `json:"customer"`
	Status       Status    `json:"status"`
	Items        []Line    `json:"items"`
	Units        int       `json:"units"`
	TotalCents   int64     `json:"total_cents"`
	CancelReason string    `json:"cancel_reason,omitempty"`
	Version      uint64    `json:"version"`  // the order's last event applied
	Position     uint64    `json:"position"` // its global position
	UpdatedAt    time.Time `json:"updated_at"`
}

// GetOrderSummary asks for an order's summary. With After (a command
// result's position), the answer waits until the projection has applied
// it: read-your-writes from any client. Over HTTP the wait-for
// parameter does the same.
type GetOrderSummary struct {
	ID    string `json:"id"`
	After uint64 `json:"after,omitempty"`
}

// ReadAfter names the projection the query reads (handlers.ConsistentQuery),
// so HTTP's wait-for waits for this one only.
func (q GetOrderSummary) ReadAfter() (string, uint64) { return SummaryProjection, q.After }

func (q GetOrderSummary) Validate() error { return validID(q.ID) }

// apply moves the summary on by one event.
func (s *OrderSummary) apply(e platform.Envelope) {
	switch ev := e.Event.(type) {
	case OrderPlaced:
		s.Customer, s.Status, s.Items = ev.Customer, StatusOpen, []Line{}
	case ItemAdded:
		found := false
		for i := range s.Items {
			if s.Items[i].SKU == ev.SKU {
				s.Items[i].Quantity += ev.Quantity
				found = true
			}
		}
		if !found {
			s.Items = append(s.Items, Line(ev))
		}
	case ItemRemoved:
		kept := s.Items[:0]
		for _, l := range s.Items {
			if l.SKU != ev.SKU {
				kept = append(kept, l)
			}
		}
		s.Items = kept
	case OrderConfirmed:
		s.Status = StatusConfirmed
	case OrderShipped:
		s.Status = StatusShipped
	case OrderCancelled:
		s.Status, s.CancelReason = StatusCancelled, ev.Reason
	}
	s.Units, s.TotalCents = 0, 0
	for _, l := range s.Items {
		s.Units += l.Quantity
		s.TotalCents += int64(l.Quantity) * l.PriceCents
	}
	s.ID, s.Version, s.Position, s.UpdatedAt = e.Stream.ID, e.Version, e.Position, e.Time
}

// kvSummaries keeps the summaries in a key-value bucket, one JSON value
// per order (readable with `nats kv get ORDER_SUMMARY <id>`).
type kvSummaries struct {
	kv jetstream.KeyValue
}

// summaryKey is an order ID as a key: as it is when it has only
// letters, digits, '-', '_' and '=', else base64url behind "b64.", which
// no ID kept as it is can be (it has a dot).
func summaryKey(id string) string {
	for _, c := range []byte(id) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '=') {
			return "b64." + base64.RawURLEncoding.EncodeToString([]byte(id))
		}
	}
	return id
}

func (k *kvSummaries) get(ctx context.Context, id string) (OrderSummary, bool, error) {
	entry, err := k.kv.Get(ctx, summaryKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return OrderSummary{}, false, nil
	}
	if err != nil {
		return OrderSummary{}, false, fmt.Errorf("read the summary of order %q: %w", id, err)
	}
	var s OrderSummary
	if err := json.Unmarshal(entry.Value(), &s); err != nil {
		return OrderSummary{}, false, platform.Errorf(platform.CodeCorruptEvent, "the summary of order %q in bucket %s does not decode: %w: rebuild projection %s",
			id, k.kv.Bucket(), err, SummaryProjection)
	}
	return s, true, nil
}

// Handle applies one event. It is idempotent: an event at or before the
// summary's position, delivered again after a crash, changes nothing.
func (k *kvSummaries) Handle(ctx context.Context, _ projections.Generation, e platform.Envelope) error {
	s, _, err := k.get(ctx, e.Stream.ID)
	if err != nil {
		return err
	}
	if s.Position >= e.Position {
		return nil
	}
	s.apply(e)
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if _, err := k.kv.Put(ctx, summaryKey(e.Stream.ID), b); err != nil {
		return fmt.Errorf("write the summary of order %q: %w", e.Stream.ID, err)
	}
	return nil
}

// handleSummaryQuery serves GetOrderSummary from the bucket.
func (d *domain) handleSummaryQuery() error {
	return handlers.HandleQuery(d.n.Queries(), func(ctx context.Context, q GetOrderSummary) (OrderSummary, error) {
		if q.After > 0 {
			if err := d.n.Projections().WaitFor(ctx, SummaryProjection, q.After); err != nil {
				return OrderSummary{}, fmt.Errorf("wait for projection %s to reach position %d: %w", SummaryProjection, q.After, err)
			}
		}
		s, ok, err := d.summaries.get(ctx, q.ID)
		if err != nil {
			return OrderSummary{}, err
		}
		if !ok {
			return OrderSummary{}, platform.Errorf(platform.CodeStreamNotFound,
				"order %q has no summary: place it first; right after a command, pass its result's position (wait-for over HTTP, after over NATS)", q.ID)
		}
		return s, nil
	})
}
