package kafka

import (
	"context"
	"strings"

	"github.com/lexigram/events/bridges"
)

func init() {
	bridges.Register("kafka", bridges.Driver{
		NewPublisher: func(ctx context.Context, s bridges.Settings) (bridges.Publisher, error) {
			if err := s.Check("kafka", "brokers", "topic", "declare", "partitions", "replication_factor"); err != nil {
				return nil, err
			}
			if err := declareFrom(ctx, s); err != nil {
				return nil, err
			}
			return NewPublisher(PublisherOptions{Brokers: brokers(s), Topic: s["topic"]})
		},
		NewSubscriber: func(ctx context.Context, s bridges.Settings) (bridges.Subscriber, error) {
			if err := s.Check("kafka", "brokers", "topic", "group", "declare", "partitions", "replication_factor"); err != nil {
				return nil, err
			}
			if err := declareFrom(ctx, s); err != nil {
				return nil, err
			}
			return NewSubscriber(SubscriberOptions{Brokers: brokers(s), Topic: s["topic"], Group: s["group"]})
		},
	})
}

func brokers(s bridges.Settings) []string {
	var out []string
	for _, b := range strings.Split(s["brokers"], ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}
