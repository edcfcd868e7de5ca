// Package rabbitmq is the RabbitMQ adapter of bridges, on amqp091-go,
// registered as the broker "rabbitmq".
//
// The Publisher publishes persistent messages with publisher confirms and,
// unless AllowUnroutable, the mandatory flag: a message no queue is bound
// to comes back as a basic.return, and Publish reports it as refused for
// good (bridges.Refused), so the outbound bridge dead-letters it instead
// of retrying it forever. It keeps a pool of confirm-mode channels, one
// per concurrent Publish call, on one connection that it dials again, with
// backoff, when it drops.
//
// The Subscriber consumes one queue with manual acks and a prefetch limit
// (basic.qos), and reconnects with backoff when the connection or channel
// drops: RabbitMQ requeues what was not acked, and acks of deliveries from
// a lost channel fail, so the message comes again (the inbound bridge's
// Nats-Msg-Id stores it once). A message's ID is its message-id property;
// without one, the inbound bridge falls back on its CloudEvents id or a
// hash of its content.
//
// Order: RabbitMQ keeps a queue's order for one consumer. An inbound
// bridge with one subscriber and one worker stores messages in queue
// order; with several workers, messages are spread by routing key, so
// order holds per routing key only. Requeued messages (after a nack or a
// lost connection) may come after later ones.
//
// Both declare their topology (exchange, queue, binding, and the queue's
// dead-letter exchange) on every connect when Options.Topology is set.
//
// CloudEvents binary mode uses "cloudEvents_" application properties, as
// the CloudEvents AMQP binding has them; the inbound side also reads
// "cloudEvents:" and "ce-".
//
// Settings of the registered driver: url (amqp://user:pass@host:port/vhost),
// exchange, routing_key, queue, prefetch, declare ("true": declare the
// topology: exchange of kind exchange_kind, default topic, queue bound
// with binding_key, default "#"), dead_letter_exchange.
package rabbitmq
