package main

import (
	"context"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lexigram/events/handlers/durable"
	"github.com/lexigram/events/platform"
)

// TestConsumerCollector: a durable consumer that has read nothing lags by
// every event; an ordered reader is not reported.
func TestConsumerCollector(t *testing.T) {
	ctx := context.Background()
	_, js, store := newInvoiceStore(t)
	for i := range 3 {
		if _, err := store.Append(ctx, platform.StreamID{Type: "invoice", ID: string(rune('a' + i))}, platform.NoStream(),
			[]platform.Envelope{{Event: invoiceIssued{Amount: i}}}); err != nil {
			t.Fatal(err)
		}
	}
	stream, err := js.Stream(ctx, store.StreamName())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "billing", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{}); err != nil {
		t.Fatal(err)
	}
	dlq, err := durable.OpenDLQ(ctx, js, store, durable.DLQOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := `
# HELP lexigram_consumer_ack_pending_events Events delivered to the consumer and not yet acknowledged.
# TYPE lexigram_consumer_ack_pending_events gauge
lexigram_consumer_ack_pending_events{consumer="billing",stream="EVENTS"} 0
# HELP lexigram_consumer_pending_events Events of the stream the consumer has not been delivered yet: its lag.
# TYPE lexigram_consumer_pending_events gauge
lexigram_consumer_pending_events{consumer="billing",stream="EVENTS"} 3
# HELP lexigram_consumer_redelivered_events Events delivered more than once and not yet acknowledged.
# TYPE lexigram_consumer_redelivered_events gauge
lexigram_consumer_redelivered_events{consumer="billing",stream="EVENTS"} 0
# HELP lexigram_dlq_entries Dead letters of the durable handler in the DLQ.
# TYPE lexigram_dlq_entries gauge
lexigram_dlq_entries{handler="billing"} 0
`
	if err := testutil.CollectAndCompare(newConsumerCollector(stream, dlq), strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}
