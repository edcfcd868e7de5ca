package kafka_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/lexigram/events/bridges"
	_ "github.com/lexigram/events/bridges/kafka"
	"github.com/lexigram/events/platform"
)

// TestDeclareTopic: declare: true creates a missing topic with the
// partitions asked for, leaves an existing one alone, and bad numbers
// are refused naming the setting.
func TestDeclareTopic(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1)) // no auto-creation
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	s := bridges.Settings{"brokers": strings.Join(c.ListenAddrs(), ","), "topic": "declared", "declare": "true", "partitions": "4"}
	for range 2 { // the second finds it there
		p, err := bridges.NewPublisher(ctx, "kafka", s)
		if err != nil {
			t.Fatal(err)
		}
		_ = p.Close()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	topic := "declared"
	rt.Topic = &topic
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 || len(resp.Topics[0].Partitions) != 4 {
		t.Fatalf("metadata of the declared topic: %+v, want it with 4 partitions", resp.Topics)
	}
	for key, value := range map[string]string{"partitions": "0", "replication_factor": "x", "declare": "yes"} {
		bad := bridges.Settings{"brokers": s["brokers"], "topic": "other", "declare": "true"}
		bad[key] = value
		_, err := bridges.NewPublisher(ctx, "kafka", bad)
		if !errors.Is(err, platform.ErrInvalidArgument) || !strings.Contains(err.Error(), key) {
			t.Errorf("%s %q: got %v, want an invalid-argument error naming %s", key, value, err, key)
		}
	}
}
