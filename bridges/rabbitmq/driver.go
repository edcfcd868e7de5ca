package rabbitmq

import (
	"context"
	"strconv"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/platform"
)

var settingKeys = []string{"url", "exchange", "exchange_kind", "routing_key", "queue", "binding_key", "dead_letter_exchange", "declare", "prefetch", "allow_unroutable"}

func init() {
	bridges.Register("rabbitmq", bridges.Driver{
		NewPublisher: func(_ context.Context, s bridges.Settings) (bridges.Publisher, error) {
			top, err := topologyOf(s)
			if err != nil {
				return nil, err
			}
			allow, err := boolSetting(s, "allow_unroutable")
			if err != nil {
				return nil, err
			}
			return NewPublisher(PublisherOptions{URL: s["url"], Exchange: s["exchange"], RoutingKey: s["routing_key"], AllowUnroutable: allow, Topology: top}), nil
		},
		NewSubscriber: func(_ context.Context, s bridges.Settings) (bridges.Subscriber, error) {
			top, err := topologyOf(s)
			if err != nil {
				return nil, err
			}
			prefetch := 0
			if p := s["prefetch"]; p != "" {
				if prefetch, err = strconv.Atoi(p); err != nil || prefetch < 1 {
					return nil, platform.Errorf(platform.CodeInvalidArgument, "rabbitmq settings: prefetch %q: use a whole number of 1 or more", p)
				}
			}
			return NewSubscriber(SubscriberOptions{URL: s["url"], Queue: s["queue"], Prefetch: prefetch, Topology: top})
		},
	})
}

func boolSetting(s bridges.Settings, key string) (bool, error) {
	v := s[key]
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, platform.Errorf(platform.CodeInvalidArgument, "rabbitmq settings: %s %q: use true or false", key, v)
	}
	return b, nil
}

func topologyOf(s bridges.Settings) (*Topology, error) {
	if err := s.Check("rabbitmq", settingKeys...); err != nil {
		return nil, err
	}
	declare, err := boolSetting(s, "declare")
	if err != nil || !declare {
		return nil, err
	}
	return &Topology{Exchange: s["exchange"], ExchangeKind: s["exchange_kind"], Queue: s["queue"], BindingKey: s["binding_key"], DeadLetterExchange: s["dead_letter_exchange"]}, nil
}
