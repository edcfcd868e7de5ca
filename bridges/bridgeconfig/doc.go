// Package bridgeconfig runs the bridges of a configuration's bridges
// section (config.Bridge): it opens each broker's publisher or subscriber
// from the registered adapters, checks that the broker answers, starts
// the outbound and inbound runners of package bridges, reports their
// health and metrics, and stops them, finishing the messages in flight.
// `lexigram bridge` and `lexigram serve` both use it.
//
// It links the adapters of this module (RabbitMQ, Kafka, webhooks, Azure
// Service Bus), so that a configuration can name any of them. The
// in-memory broker (bridges/memory) is left out: its messages would be
// gone with the process; tests import it themselves.
//
// An outbound bridge with no stream reads the event store's stream as
// events (keyed by aggregate, CloudEvents attributes from the envelope);
// the caller makes sure that stream exists, as `lexigram serve` does by
// opening the store. An inbound bridge with a stream creates that stream,
// capturing its subject, when it does not exist. An inbound bridge with
// land_as: events appends its messages to the event store the caller
// gives in Options.Events (see bridges.InboundEvents), and does not start
// without one.
package bridgeconfig
