package kafka_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/bridges/bridgetest"
	"github.com/lexigram/events/bridges/kafka"
	"github.com/lexigram/events/embedded/embeddedtest"
)

// cluster is a three-broker kfake cluster that persists to a directory,
// so that it can be restarted on the same ports with its data.
type cluster struct {
	t     *testing.T
	c     *kfake.Cluster
	dir   string
	ports []int
	addrs []string
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	k := &cluster{t: t, dir: t.TempDir()}
	k.start()
	k.addrs = k.c.ListenAddrs()
	for _, a := range k.addrs {
		_, p, _ := net.SplitHostPort(a)
		n, _ := strconv.Atoi(p)
		k.ports = append(k.ports, n)
	}
	t.Cleanup(func() { k.c.Close() })
	return k
}

func (k *cluster) start() {
	opts := []kfake.Opt{kfake.NumBrokers(3), kfake.DataDir(k.dir), kfake.DefaultNumPartitions(3), kfake.AllowAutoTopicCreation()}
	if k.ports != nil {
		opts = append(opts, kfake.Ports(k.ports...))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		k.t.Fatalf("kfake: %v", err)
	}
	k.c = c
}

// restart closes every broker and starts them again on the same ports
// from the persisted data.
func (k *cluster) restart(t *testing.T) {
	k.c.Close()
	k.start()
}

// createTopic makes a topic of three partitions replicated on the three
// brokers.
func (k *cluster) createTopic(t *testing.T, name string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, 3, 3
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 10_000
	resp, err := req.RequestWith(t.Context(), cl)
	if err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
	if code := resp.Topics[0].ErrorCode; code != 0 {
		t.Fatalf("create topic %s: error code %d", name, code)
	}
}

func randomName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// quick makes group changes and polls fast enough for tests.
var quick = []kgo.Opt{kgo.HeartbeatInterval(200 * time.Millisecond), kgo.FetchMaxWait(200 * time.Millisecond), kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond })}

func (k *cluster) publisher(t *testing.T, topic string) *kafka.Publisher {
	t.Helper()
	p, err := kafka.NewPublisher(kafka.PublisherOptions{Brokers: k.addrs, Topic: topic, Options: quick, Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func (k *cluster) subscriber(t *testing.T, topic, group string) *kafka.Subscriber {
	t.Helper()
	s, err := kafka.NewSubscriber(kafka.SubscriberOptions{Brokers: k.addrs, Topic: topic, Group: group, CommitInterval: 50 * time.Millisecond, Options: quick, Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestAcceptance(t *testing.T) {
	k := newCluster(t)
	bridgetest.Run(t, bridgetest.Setup{
		New: func(t *testing.T) bridgetest.Topic {
			topic, group := randomName("t"), randomName("g")
			k.createTopic(t, topic)
			return bridgetest.Topic{
				Publisher:     k.publisher(t, topic),
				NewSubscriber: func(t *testing.T) bridges.Subscriber { return k.subscriber(t, topic, group) },
			}
		},
		Restart: k.restart,
	})
}

func TestOptionsErrors(t *testing.T) {
	if _, err := kafka.NewPublisher(kafka.PublisherOptions{Topic: "x"}); err == nil {
		t.Fatal("a publisher without brokers was accepted")
	}
	if _, err := kafka.NewSubscriber(kafka.SubscriberOptions{Brokers: []string{"127.0.0.1:1"}, Topic: "x"}); err == nil {
		t.Fatal("a subscriber without a group was accepted")
	}
	if _, err := bridges.NewSubscriber(context.Background(), "kafka", bridges.Settings{"brokers": "b:1", "topic": "t", "groupp": "g"}); err == nil {
		t.Fatal("a misspelt setting was accepted")
	}
}
