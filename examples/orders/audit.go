package orders

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/lexigram/events/handlers/durable"
	"github.com/lexigram/events/platform"
)

// AuditHandler is the durable handler's name: its consumer's, shared by
// every node that installs the example.
const AuditHandler = "orders-audit"

// auditRecord is one line of the audit log.
type auditRecord struct {
	Position    uint64 `json:"position"`
	Time        string `json:"time"`
	Aggregate   string `json:"aggregate"`
	ID          string `json:"id"`
	Version     uint64 `json:"version"`
	Type        string `json:"type"`
	Correlation string `json:"correlation_id,omitempty"`
	Event       any    `json:"event"`
}

// auditLog writes every event of the domain's aggregates, once each, in
// the store's order: to w as JSON lines, or to the node's log.
type auditLog struct {
	mu  sync.Mutex
	w   io.Writer
	log *slog.Logger
}

func (a *auditLog) handle(ctx context.Context, e platform.Envelope) error {
	if a.w == nil {
		a.log.InfoContext(ctx, "audit", "position", e.Position, "aggregate", e.Stream.Type, "id", e.Stream.ID,
			"version", e.Version, "type", e.Type, "correlation_id", e.CorrelationID)
		return nil
	}
	b, err := json.Marshal(auditRecord{Position: e.Position, Time: e.Time.UTC().Format("2006-01-02T15:04:05.000Z07:00"), Aggregate: e.Stream.Type,
		ID: e.Stream.ID, Version: e.Version, Type: e.Type, Correlation: e.CorrelationID, Event: e.Event})
	if err != nil {
		return platform.Errorf(platform.CodeInvalidArgument, "audit: event %s at position %d does not encode as JSON: %w", e.Type, e.Position, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, err := a.w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("audit: write event at position %d: %w", e.Position, err) // retried, then dead-lettered
	}
	return nil
}

// auditOptions are the durable handler's: the order, stock and payment
// aggregates, one event after another in the store's order.
func auditOptions() durable.Options {
	return durable.Options{AggregateTypes: []string{AggregateType, "stock", "payment"}, Start: durable.FromBeginning}
}
