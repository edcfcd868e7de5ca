package rabbitmq_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/bridges/bridgetest"
	"github.com/lexigram/events/bridges/rabbitmq"
	"github.com/lexigram/events/embedded/embeddedtest"
)

const addr = "127.0.0.1:5672"

// needBroker skips when RabbitMQ is not running here, and fails instead
// under CI=true, where .ci/run starts it.
func needBroker(t *testing.T) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		_ = c.Close()
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("RabbitMQ is not reachable on %s (%v), and CI=true: .ci/run should have started it (rabbitmq-server -detached)", addr, err)
	}
	t.Skipf("RabbitMQ is not reachable on %s (%v): start it with `rabbitmq-server -detached` to run this test", addr, err)
}

func randomName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// admin runs f on a channel of a connection of its own, retrying while
// the broker restarts.
func admin(t *testing.T, f func(ch *amqp.Channel) error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := func() error {
			c, err := amqp.Dial(rabbitmq.DefaultURL)
			if err != nil {
				return err
			}
			defer c.Close()
			ch, err := c.Channel()
			if err != nil {
				return err
			}
			defer ch.Close()
			return f(ch)
		}()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("rabbitmq admin: %v", err)
		}
		time.Sleep(200 * time.Millisecond) // a retry interval while the broker restarts
	}
}

// topology declares a fresh topic exchange and a queue bound to it with
// key, deleted on cleanup.
func topology(t *testing.T, key string) rabbitmq.Topology {
	t.Helper()
	top := rabbitmq.Topology{Exchange: randomName("lxtest-x"), Queue: randomName("lxtest-q"), BindingKey: key}
	admin(t, func(ch *amqp.Channel) error {
		if err := ch.ExchangeDeclare(top.Exchange, "topic", true, false, false, false, nil); err != nil {
			return err
		}
		if _, err := ch.QueueDeclare(top.Queue, true, false, false, false, nil); err != nil {
			return err
		}
		return ch.QueueBind(top.Queue, key, top.Exchange, false, nil)
	})
	t.Cleanup(func() {
		admin(t, func(ch *amqp.Channel) error {
			if _, err := ch.QueueDelete(top.Queue, false, false, false); err != nil {
				return err
			}
			return ch.ExchangeDelete(top.Exchange, false, false)
		})
	})
	return top
}

// restart stops and starts the RabbitMQ application in place.
func restart(t *testing.T) {
	t.Helper()
	for _, args := range [][]string{{"stop_app"}, {"start_app"}, {"await_startup", "--timeout", "60"}} {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		out, err := exec.CommandContext(ctx, "rabbitmqctl", args...).CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("rabbitmqctl %v: %v\n%s", args, err, out)
		}
	}
	// await_startup returns once the app runs; the listener follows.
	admin(t, func(*amqp.Channel) error { return nil })
}

var fast = bridges.Backoff{Min: 50 * time.Millisecond, Max: time.Second}

func TestAcceptance(t *testing.T) {
	needBroker(t)
	bridgetest.Run(t, bridgetest.Setup{
		New: func(t *testing.T) bridgetest.Topic {
			top := topology(t, "#")
			pub := rabbitmq.NewPublisher(rabbitmq.PublisherOptions{Exchange: top.Exchange, Backoff: fast, Logger: embeddedtest.Logger(t)})
			t.Cleanup(func() { _ = pub.Close() })
			return bridgetest.Topic{
				Publisher: pub,
				NewSubscriber: func(t *testing.T) bridges.Subscriber {
					s, err := rabbitmq.NewSubscriber(rabbitmq.SubscriberOptions{Queue: top.Queue, Prefetch: 20, Backoff: fast, Logger: embeddedtest.Logger(t)})
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { _ = s.Close() })
					return s
				},
			}
		},
		Restart: restart,
	})
}

// A message no queue is bound for is returned (mandatory publishing) and
// reported as refused for good; the routable ones in the same batch are
// confirmed.
func TestUnroutableIsRefused(t *testing.T) {
	needBroker(t)
	top := topology(t, "events.order.*")
	pub := rabbitmq.NewPublisher(rabbitmq.PublisherOptions{Exchange: top.Exchange, Logger: embeddedtest.Logger(t)})
	defer pub.Close()
	err := pub.Publish(t.Context(),
		&bridges.Message{ID: "1", Subject: "events.order.a", Data: []byte("a")},
		&bridges.Message{ID: "2", Subject: "events.invoice.b", Data: []byte("b")},
		&bridges.Message{ID: "3", Subject: "events.order.c", Data: []byte("c")})
	errs := bridges.ErrorsOf(err, 3)
	if errs[0] != nil || errs[2] != nil {
		t.Fatalf("routable messages failed: %v", err)
	}
	if !bridges.IsRefused(errs[1]) {
		t.Fatalf("the unroutable message: error %v, want one marked Refused", errs[1])
	}
	var n int
	admin(t, func(ch *amqp.Channel) error {
		q, err := ch.QueueDeclarePassive(top.Queue, true, false, false, false, nil)
		n = q.Messages
		return err
	})
	if n != 2 {
		t.Fatalf("the queue holds %d messages, want the 2 routable ones", n)
	}
	// With AllowUnroutable the broker drops it and Publish succeeds.
	loose := rabbitmq.NewPublisher(rabbitmq.PublisherOptions{Exchange: top.Exchange, AllowUnroutable: true, Logger: embeddedtest.Logger(t)})
	defer loose.Close()
	if err := loose.Publish(t.Context(), &bridges.Message{ID: "4", Subject: "nowhere", Data: []byte("x")}); err != nil {
		t.Fatalf("AllowUnroutable: %v", err)
	}
}

// Credentials never show in errors.
func TestErrorsHideCredentials(t *testing.T) {
	pub := rabbitmq.NewPublisher(rabbitmq.PublisherOptions{URL: "amqp://alice:s3cret-pw@127.0.0.1:1/", Logger: embeddedtest.Logger(t)})
	defer pub.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	err := pub.Publish(ctx, &bridges.Message{ID: "1", Data: []byte("x")})
	if err == nil {
		t.Fatal("published to a closed port")
	}
	for _, secret := range []string{"s3cret-pw", "alice:"} {
		if containsText(err, secret) {
			t.Fatalf("error shows %q: %v", secret, err)
		}
	}
	if !containsText(err, "127.0.0.1:1") {
		t.Fatalf("error does not name the broker: %v", err)
	}
	if _, err := rabbitmq.NewSubscriber(rabbitmq.SubscriberOptions{}); err == nil {
		t.Fatal("a subscriber without a queue was accepted")
	}
}

func containsText(err error, s string) bool { return strings.Contains(err.Error(), s) }

// The registered driver declares the topology when asked (exchange,
// queue, binding and the queue's dead-letter exchange) and carries a
// message through it; unknown settings are refused.
func TestDriverDeclaresTopology(t *testing.T) {
	needBroker(t)
	ex, q, dlx := randomName("lxtest-x"), randomName("lxtest-q"), randomName("lxtest-dlx")
	t.Cleanup(func() {
		admin(t, func(ch *amqp.Channel) error {
			if _, err := ch.QueueDelete(q, false, false, false); err != nil {
				return err
			}
			return ch.ExchangeDelete(ex, false, false)
		})
	})
	settings := bridges.Settings{"exchange": ex, "queue": q, "binding_key": "orders.#", "declare": "true", "dead_letter_exchange": dlx, "prefetch": "5"}
	sub, err := bridges.NewSubscriber(t.Context(), "rabbitmq", settings)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ch, err := sub.Subscribe(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	delete(settings, "prefetch")
	pub, err := bridges.NewPublisher(t.Context(), "rabbitmq", settings)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if err := pub.Publish(t.Context(), &bridges.Message{ID: "o1", Subject: "orders.created", Header: bridges.Header{"Content-Type": "application/json"}, Data: []byte(`{}`)}); err != nil {
		t.Fatalf("publish through the declared topology: %v", err)
	}
	select {
	case d := <-ch:
		if d.ID != "o1" || d.Subject != "orders.created" || d.Header["Content-Type"] != "application/json" {
			t.Fatalf("received %q on %q with headers %v", d.ID, d.Subject, d.Header)
		}
		if err := d.Ack(t.Context()); err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("nothing came through the declared topology")
	}
	admin(t, func(ch *amqp.Channel) error {
		// Declaring with other arguments fails when the queue has the
		// dead-letter exchange: so it has.
		_, err := ch.QueueDeclare(q, true, false, false, false, amqp.Table{"x-dead-letter-exchange": dlx})
		return err
	})
	if _, err := bridges.NewPublisher(t.Context(), "rabbitmq", bridges.Settings{"exchnage": "x"}); err == nil || !strings.Contains(err.Error(), "exchnage") {
		t.Fatalf("a misspelt setting: %v", err)
	}
}
