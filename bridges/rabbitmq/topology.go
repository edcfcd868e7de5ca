package rabbitmq

import (
	amqp "github.com/rabbitmq/amqp091-go"
)

// Topology is what a publisher or subscriber declares on every connect:
// declarations are idempotent, and a restarted broker without durable
// definitions gets them back.
type Topology struct {
	// Exchange is declared durable, of ExchangeKind (default "topic"),
	// unless empty (the default exchange).
	Exchange     string
	ExchangeKind string
	// Queue is declared durable unless empty, and bound to Exchange with
	// BindingKey (default "#") when both are set.
	Queue      string
	BindingKey string
	// DeadLetterExchange, set, is the queue's x-dead-letter-exchange:
	// where RabbitMQ moves messages rejected without requeue or expired.
	DeadLetterExchange string
}

func (t Topology) declare(ch *amqp.Channel) error {
	if t.Exchange != "" {
		kind := t.ExchangeKind
		if kind == "" {
			kind = amqp.ExchangeTopic
		}
		if err := ch.ExchangeDeclare(t.Exchange, kind, true, false, false, false, nil); err != nil {
			return err
		}
	}
	if t.Queue == "" {
		return nil
	}
	var args amqp.Table
	if t.DeadLetterExchange != "" {
		args = amqp.Table{"x-dead-letter-exchange": t.DeadLetterExchange}
	}
	if _, err := ch.QueueDeclare(t.Queue, true, false, false, false, args); err != nil {
		return err
	}
	if t.Exchange == "" {
		return nil
	}
	key := t.BindingKey
	if key == "" {
		key = "#"
	}
	return ch.QueueBind(t.Queue, key, t.Exchange, false, nil)
}
