package azservicebus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	sb "github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus/admin"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/bridges/bridgetest"
	"github.com/lexigram/events/embedded/embeddedtest"
)

// Environment of the live tests against a real namespace.
const (
	envConn         = "LEXIGRAM_TEST_ASB_CONNECTION_STRING" // required; with the Manage claim, each case gets a fresh queue
	envQueue        = "LEXIGRAM_TEST_ASB_QUEUE"             // without Manage: an existing queue, drained before each case
	envSessionQueue = "LEXIGRAM_TEST_ASB_SESSION_QUEUE"     // without Manage: an existing session-enabled queue
)

// liveConn is the connection string of the namespace under test, or
// skips: no Service Bus namespace is reachable from this machine or from
// CI (the official emulator needs Docker), so unlike the RabbitMQ tests
// these skip under CI=true too.
func liveConn(t *testing.T) string {
	t.Helper()
	cs := os.Getenv(envConn)
	if cs == "" {
		t.Skipf("no Service Bus namespace: set %s (a shared access policy with Manage, so each case gets a fresh queue; or Send and Listen with %s and %s naming existing queues, drained before each case) to run the acceptance suite against a real namespace. It skips in CI as well, where no namespace is reachable",
			envConn, envQueue, envSessionQueue)
	}
	return cs
}

func TestLiveAcceptance(t *testing.T) {
	cs := liveConn(t)
	for _, sessions := range []bool{false, true} {
		name := "Queue"
		if sessions {
			name = "Sessions"
		}
		t.Run(name, func(t *testing.T) {
			bridgetest.Run(t, bridgetest.Setup{
				New: func(t *testing.T) bridgetest.Topic {
					queue := liveQueue(t, cs, sessions)
					log := embeddedtest.Logger(t)
					pub, err := NewPublisher(PublisherOptions{ConnectionString: cs, Queue: queue, Sessions: sessions, Logger: log})
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { _ = pub.Close() })
					return bridgetest.Topic{
						Publisher: pub,
						NewSubscriber: func(t *testing.T) bridges.Subscriber {
							s, err := NewSubscriber(SubscriberOptions{ConnectionString: cs, Queue: queue, Sessions: sessions, Prefetch: 20, Logger: log})
							if err != nil {
								t.Fatal(err)
							}
							t.Cleanup(func() { _ = s.Close() })
							return s
						},
					}
				},
				// A real namespace cannot be restarted from here: Reconnect
				// skips, and reconnection is tested against the fake only.
				Restart: nil,
				Timeout: 90 * time.Second,
			})
		})
	}
}

// liveQueue is a fresh queue (deleted on cleanup) when the connection
// string may manage the namespace, else the queue the environment names,
// drained.
func liveQueue(t *testing.T, cs string, sessions bool) string {
	t.Helper()
	env := envQueue
	if sessions {
		env = envSessionQueue
	}
	if q := os.Getenv(env); q != "" {
		drain(t, cs, q, sessions)
		return q
	}
	ac, err := admin.NewClientFromConnectionString(cs, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	q := "lxtest-" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, err := ac.CreateQueue(ctx, q, &admin.CreateQueueOptions{Properties: &admin.QueueProperties{
		RequiresSession: to.Ptr(sessions), LockDuration: to.Ptr("PT30S"), RequiresDuplicateDetection: to.Ptr(true),
	}}); err != nil {
		t.Fatalf("create queue %s (the policy needs the Manage claim; or set %s): %v", q, env, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := ac.DeleteQueue(ctx, q, nil); err != nil {
			t.Errorf("delete queue %s: %v", q, err)
		}
	})
	return q
}

// drain deletes whatever an existing queue holds.
func drain(t *testing.T, cs, queue string, sessions bool) {
	t.Helper()
	c, err := sb.NewClientFromConnectionString(cs, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	mode := sb.ReceiveModeReceiveAndDelete
	empty := func(r interface {
		ReceiveMessages(context.Context, int, *sb.ReceiveMessagesOptions) ([]*sb.ReceivedMessage, error)
	}) {
		for {
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
			msgs, err := r.ReceiveMessages(ctx, 100, nil)
			cancel()
			if len(msgs) == 0 {
				if err != nil && !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("drain %s: %v", queue, err)
				}
				return
			}
		}
	}
	if !sessions {
		r, err := c.NewReceiverForQueue(queue, &sb.ReceiverOptions{ReceiveMode: mode})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close(context.Background())
		empty(r)
		return
	}
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		r, err := c.AcceptNextSessionForQueue(ctx, queue, &sb.SessionReceiverOptions{ReceiveMode: mode})
		cancel()
		if err != nil {
			if codeOf(err) == sb.CodeTimeout || errors.Is(err, context.DeadlineExceeded) {
				return
			}
			t.Fatalf("drain %s: %v", queue, err)
		}
		empty(r)
		_ = r.Close(context.Background())
	}
}

// Against a real namespace: lock renewal keeps a message held for longer
// than the queue's lock duration (the 30s the test's queues get; it takes
// about a minute), and the ack completes it.
func TestLiveLockRenewal(t *testing.T) {
	cs := liveConn(t)
	if os.Getenv(envQueue) != "" {
		t.Skipf("needs a queue of its own with a 30s lock duration: unset %s and use a policy with Manage", envQueue)
	}
	queue := liveQueue(t, cs, false)
	log := embeddedtest.Logger(t)
	pub, err := NewPublisher(PublisherOptions{ConnectionString: cs, Queue: queue, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if err := pub.Publish(t.Context(), &bridges.Message{ID: "slow-1", Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	s, err := NewSubscriber(SubscriberOptions{ConnectionString: cs, Queue: queue, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ch, err := s.Subscribe(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	d := next(t, ch, "the message")
	select {
	case again := <-ch:
		t.Fatalf("message %q came again while held and renewed", again.ID)
	case <-time.After(65 * time.Second): // two lock durations: what is tested is the time held
	}
	if err := d.Ack(t.Context()); err != nil {
		t.Fatalf("ack after two lock durations: %v", err)
	}
}
