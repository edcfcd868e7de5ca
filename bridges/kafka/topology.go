package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/platform"
)

// Topic is a topic to declare: created when missing, left as it is when
// it exists. Zero Partitions and ReplicationFactor take the brokers'
// defaults (num.partitions, default.replication.factor).
type Topic struct {
	Name              string
	Partitions        int32
	ReplicationFactor int16
}

// DeclareTopic creates the topic unless it exists.
func DeclareTopic(ctx context.Context, brokers []string, t Topic) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return platform.Errorf(platform.CodeInvalidArgument, "kafka: declare topic %q: %w: check the brokers setting", t.Name, err)
	}
	defer cl.Close()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = t.Name, -1, -1
	if t.Partitions > 0 {
		rt.NumPartitions = t.Partitions
	}
	if t.ReplicationFactor > 0 {
		rt.ReplicationFactor = t.ReplicationFactor
	}
	req := kmsg.NewPtrCreateTopicsRequest()
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 10_000
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("kafka brokers %v: declare topic %q: %w", brokers, t.Name, err)
	}
	for _, r := range resp.Topics {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return platform.Errorf(platform.CodeInvalidArgument, "kafka: declare topic %q (%d partitions, replication factor %d; -1 is the brokers' default): %w: fix partitions or replication_factor, or create the topic yourself and drop declare",
				t.Name, rt.NumPartitions, rt.ReplicationFactor, err)
		}
	}
	return nil
}

// topicSettings reads the declare, partitions and replication_factor
// settings; ok is false when the topic is not to be declared.
func topicSettings(s bridges.Settings) (t Topic, ok bool, err error) {
	switch s["declare"] {
	case "", "false":
		return Topic{}, false, nil
	case "true":
	default:
		return Topic{}, false, platform.Errorf(platform.CodeInvalidArgument, "kafka settings: declare is %q: use true or false", s["declare"])
	}
	t.Name = s["topic"]
	if v := s["partitions"]; v != "" {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n < 1 {
			return Topic{}, false, platform.Errorf(platform.CodeInvalidArgument, "kafka settings: partitions is %q: use a whole number of 1 or more, or leave it out for the brokers' default", v)
		}
		t.Partitions = int32(n)
	}
	if v := s["replication_factor"]; v != "" {
		n, err := strconv.ParseInt(v, 10, 16)
		if err != nil || n < 1 {
			return Topic{}, false, platform.Errorf(platform.CodeInvalidArgument, "kafka settings: replication_factor is %q: use a whole number of 1 or more, or leave it out for the brokers' default", v)
		}
		t.ReplicationFactor = int16(n)
	}
	return t, true, nil
}

// declareFrom declares the topic the settings ask for, if they do.
func declareFrom(ctx context.Context, s bridges.Settings) error {
	t, ok, err := topicSettings(s)
	if err != nil || !ok {
		return err
	}
	return DeclareTopic(ctx, brokers(s), t)
}
