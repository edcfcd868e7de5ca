package orders

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/node"
	"github.com/lexigram/events/node/httpapi"
	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/projections"
	"github.com/lexigram/events/projections/pgmodel"
	"github.com/lexigram/events/sagas"
)

// Options configure Install. The zero value works: the summaries in the
// key-value bucket only, the audit log in the node's log.
type Options struct {
	// SummaryBucket is the key-value bucket of the summaries. "":
	// DefaultSummaryBucket.
	SummaryBucket string
	// Postgres, when set, also keeps the summaries in PostgreSQL (a
	// *pgxpool.Pool), as projection SummaryPostgresProjection.
	Postgres pgmodel.DB
	// PostgresSchema is where readers find the order_summary and
	// order_line views. "": "public".
	PostgresSchema string
	// AuditLog receives the audit log as JSON lines. nil: the node's log.
	AuditLog io.Writer
}

// domain is what the handlers share.
type domain struct {
	n            *node.Node
	log          *slog.Logger
	orders       *platform.Repository[*Order]
	reservations *platform.Repository[*Reservation]
	payments     *platform.Repository[*Payment]
	summaries    *kvSummaries
}

// Install registers the example domain on n, before n.Run: its types in
// the node's registry, the command and query handlers on its buses, the
// summary projections, the fulfilment saga (left out, with one log line,
// on a server older than 2.12) and the audit-log durable handler.
func Install(ctx context.Context, n *node.Node, opts Options) error {
	if n == nil {
		return platform.Errorf(platform.CodeInvalidArgument, "orders.Install: the node is nil: pass one from node.Open")
	}
	if opts.SummaryBucket == "" {
		opts.SummaryBucket = DefaultSummaryBucket
	}
	if err := registerTypes(n.Store().Registry()); err != nil {
		return fmt.Errorf("orders: %w", err)
	}
	cfg := n.Config()
	repo := platform.RepositoryOptions{Snapshots: n.Snapshots(), SnapshotPolicy: node.SnapshotPolicy(cfg.Snapshots), Logger: n.Logger()}
	d := &domain{
		n: n, log: n.Logger(),
		orders:       platform.NewRepository(n.Store(), func() *Order { return &Order{} }, repo),
		reservations: platform.NewRepository(n.Store(), func() *Reservation { return &Reservation{} }, repo),
		payments:     platform.NewRepository(n.Store(), func() *Payment { return &Payment{} }, repo),
	}
	kv, err := n.JetStream().CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: opts.SummaryBucket, Description: "lexigram example: order summaries (projection " + SummaryProjection + ")",
		Replicas: max(cfg.Store.Replicas, 1), Storage: node.Storage(cfg),
	})
	if err != nil {
		return fmt.Errorf("orders: create the summaries' key-value bucket %s: %w: set Options.SummaryBucket to a bucket this account may create", opts.SummaryBucket, err)
	}
	d.summaries = &kvSummaries{kv: kv}

	if err := errors.Join(d.handleCommands(n.Commands()), d.handleServices(n.Commands()), d.handleSummaryQuery()); err != nil {
		return fmt.Errorf("orders: register the handlers: %w", err)
	}
	if err := n.AddProjection(projections.Projection{Name: SummaryProjection, EventTypes: orderEventTypes, Handler: d.summaries}); err != nil {
		return fmt.Errorf("orders: %w", err)
	}
	if opts.Postgres != nil {
		pg, err := pgmodel.New(opts.Postgres, SummaryPostgresProjection, summaryModel{}, pgmodel.Options{Schema: opts.PostgresSchema})
		if err != nil {
			return fmt.Errorf("orders: %w", err)
		}
		if err := pg.Setup(ctx); err != nil {
			return fmt.Errorf("orders: set up the PostgreSQL read model: %w: check the database URL and that its user may create schemas", err)
		}
		if err := n.AddProjection(projections.Projection{Name: SummaryPostgresProjection, EventTypes: orderEventTypes, Batch: pg}); err != nil {
			return fmt.Errorf("orders: %w", err)
		}
	}
	if err := addSaga(ctx, n, d.log); err != nil {
		return fmt.Errorf("orders: %w", err)
	}
	audit := &auditLog{w: opts.AuditLog, log: d.log}
	if err := n.Handle(AuditHandler, audit.handle, auditOptions()); err != nil {
		return fmt.Errorf("orders: %w", err)
	}
	return nil
}

// sagaAdder is what addSaga needs of a node.
type sagaAdder interface {
	AddSaga(ctx context.Context, t sagas.SagaType) error
}

// addSaga registers the fulfilment saga. A server without message
// schedules (before 2.12) refuses its payment deadline: the domain then
// runs without it, said in one line, rather than not at all.
func addSaga(ctx context.Context, n sagaAdder, log *slog.Logger) error {
	err := n.AddSaga(ctx, fulfillment())
	if errors.Is(err, platform.ErrUnsupported) {
		log.Warn("orders: running without the fulfilment saga: confirmed orders do not ship", "saga", FulfillmentSaga, "reason", err.Error())
		return nil
	}
	return err
}

// registerTypes names the domain's events, commands and queries in reg.
// A type registered already under its name (a second node in the same
// process) is left as it is.
func registerTypes(reg *platform.Registry) error {
	return errors.Join(
		register[OrderPlaced](reg, "order.placed"),
		register[ItemAdded](reg, "order.item-added"),
		register[ItemRemoved](reg, "order.item-removed"),
		register[OrderConfirmed](reg, "order.confirmed"),
		register[OrderShipped](reg, "order.shipped"),
		register[OrderCancelled](reg, "order.cancelled"),
		register[PlaceOrder](reg, "order.place"),
		register[AddItem](reg, "order.add-item"),
		register[RemoveItem](reg, "order.remove-item"),
		register[ConfirmOrder](reg, "order.confirm"),
		register[CancelOrder](reg, "order.cancel"),
		register[ShipOrder](reg, "order.ship"),
		register[GetOrderSummary](reg, "order.summary"),
		register[ReserveStock](reg, "stock.reserve"),
		register[ReleaseStock](reg, "stock.release"),
		register[StockReserved](reg, "stock.reserved"),
		register[StockReleased](reg, "stock.released"),
		register[TakePayment](reg, "payment.take"),
		register[RefundPayment](reg, "payment.refund"),
		register[PaymentCaptured](reg, "payment.captured"),
		register[PaymentRefunded](reg, "payment.refunded"),
	)
}

func register[T any](reg *platform.Registry, name string) error {
	var zero T
	if et, err := reg.TypeOf(zero); err == nil && et.Name == name && et.SchemaVersion == 1 {
		return nil
	}
	return platform.Register[T](reg, name, 1)
}

// HTTPTypes are the domain's commands and queries for the HTTP API's
// OpenAPI document (httpapi.Options.Commands and Queries).
func HTTPTypes() (commands, queries []httpapi.Type) {
	return []httpapi.Type{
			httpapi.Command[PlaceOrder](), httpapi.Command[AddItem](), httpapi.Command[RemoveItem](),
			httpapi.Command[ConfirmOrder](), httpapi.Command[CancelOrder](),
		}, []httpapi.Type{
			httpapi.Query[GetOrderSummary, OrderSummary](),
		}
}
