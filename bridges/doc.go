// Package bridges moves messages between JetStream and other brokers
// (RabbitMQ, Kafka, ...) with nothing lost: what every bridge shares.
//
// # Directions
//
// An Outbound bridge reads a durable JetStream pull consumer (the event
// store's subjects, filtered by aggregate type or event type, or any
// subjects of any stream), hands the messages to a Publisher and acks each
// JetStream message only after the broker confirmed it. Workers publish
// concurrently, in batches of BatchSize; a subject (an aggregate) is with
// one worker at a time, so one aggregate's events keep their order.
//
// An Inbound bridge reads a Subscriber and publishes each message to
// JetStream with a Nats-Msg-Id derived from the broker's message ID
// ("<bridge>:<id>"), so a redelivery within the stream's duplicate window
// stores nothing twice, and acks the broker only after JetStream acked.
// Headers from outside whose names begin with "Nats-", in any case, are
// dropped: a Nats-TTL, Nats-Schedule or Nats-Expected-* from another
// broker must not act on our streams.
//
// Delivery is at least once. A broker or JetStream outage stops the flow:
// messages are retried in place with Backoff, so nothing is lost and one
// key's messages stay in order; an outbound message may reach the broker
// twice when a confirm was lost. A message refused for good (Refused: too
// large, unroutable) or that cannot be decoded goes to the bridge's
// dead-letter subject, lxbridge.dlq.<bridge> in the stream LX_BRIDGES_DLQ
// by default, with the reason in the Lx-Bridge-Reason header, and the
// bridge goes on.
//
// # Dead letters
//
// DeadLetterQueue lists (with direct gets, no consumer), reads and
// discards the dead letters of every bridge in LX_BRIDGES_DLQ. Replaying
// one is the bridge's own, in the process that runs it: Outbound.Replay
// sends the event (read again from the bridge's stream while it is there)
// to the broker once, Inbound.Replay decodes and stores the message as
// the broker gave it once; the dead letter is removed when that
// succeeded and left as it was otherwise. bridgeconfig.Set.Replay picks
// the running bridge; the node's dashboard offers both, one by one and in
// bulk.
//
// # Formats
//
// PassThrough sends the payload and headers unchanged. CloudEventsBinary
// maps the event envelope (Lx-Id, Lx-Type, the aggregate in the subject,
// Lx-Version, ...) to CloudEvents 1.0 attributes in headers: "ce-" on
// HTTP (the default), "ce_" on Kafka, "cloudEvents_" on AMQP, as their
// protocol bindings have them (a publisher says which through
// CloudEventsPrefixer); our own attributes are the extensions
// lxaggregatetype, lxaggregateid, lxversion, lxschemaversion, lxposition,
// lxcorrelationid and lxcausationid. CloudEventsStructured sends one
// application/cloudevents+json object. Inbound, the same formats are
// read back: the CloudEvent's id and type become Lx-Id and Lx-Type, its
// other attributes ce-* headers.
//
// # Adding a broker
//
// An adapter implements Publisher (Publish returns only once the broker
// confirmed, and marks refusals for good with Refused) and Subscriber
// (deliveries carry Ack and Nack, made with NewDelivery; what is neither
// acked nor nacked comes again once the subscriber is gone), reconnects
// on its own, and may report its connection (ConnectionReporter). It
// registers a Driver under its broker name from an init function:
//
//	func init() {
//		bridges.Register("mybroker", bridges.Driver{NewPublisher: ..., NewSubscriber: ...})
//	}
//
// so that a program links only the brokers whose packages it imports, as
// with database/sql drivers. Its tests run bridges/bridgetest.Run, the
// acceptance suite every adapter here passes; bridges/memory is an
// in-process adapter for users' own tests.
package bridges
