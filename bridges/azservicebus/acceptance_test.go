package azservicebus

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/bridges/bridgetest"
	"github.com/lexigram/events/embedded/embeddedtest"
)

var fast = bridges.Backoff{Min: 10 * time.Millisecond, Max: 200 * time.Millisecond}

// fakeSetup runs the acceptance suite over a fake namespace: each case on
// a fresh queue (or topic with one subscription) of the configuration
// given; Restart is an outage of the whole namespace.
func fakeSetup(cfg entityConfig, topic bool) bridgetest.Setup {
	ns := newFakeNS()
	var n atomic.Int64
	return bridgetest.Setup{
		New: func(t *testing.T) bridgetest.Topic {
			name := fmt.Sprintf("e%d", n.Add(1))
			queue, top, sub := name, "", ""
			if topic {
				queue, top, sub = "", name, "s"
				ns.topic(top, cfg, sub)
			} else {
				ns.queue(queue, cfg)
			}
			log := embeddedtest.Logger(t)
			pub, err := newPublisher(ns.client(queue, top, ""), newWhere("", entityName(queue, top, "")), PublisherOptions{Sessions: cfg.Sessions, Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = pub.Close() })
			return bridgetest.Topic{
				Publisher: pub,
				NewSubscriber: func(t *testing.T) bridges.Subscriber {
					s := newSubscriber(ns.client(queue, top, sub), newWhere("", entityName(queue, top, sub)),
						SubscriberOptions{Sessions: cfg.Sessions, Prefetch: 20, Backoff: fast, Logger: log})
					t.Cleanup(func() { _ = s.Close() })
					return s
				},
			}
		},
		// A restart is an outage of the namespace: locks are dropped and
		// sessions lost at once; it lasts until a client's call was refused
		// (an idle client, say a subscriber whose prefetch is full, may make
		// none), at most a second.
		Restart: func(t *testing.T) {
			before := ns.outageSeen()
			ns.setDown(true)
			for deadline := time.Now().Add(time.Second); ns.outageSeen() == before && time.Now().Before(deadline); {
				time.Sleep(5 * time.Millisecond) // polls the fake
			}
			ns.setDown(false)
		},
		Timeout: 30 * time.Second,
	}
}

func TestAcceptanceQueue(t *testing.T) {
	bridgetest.Run(t, fakeSetup(entityConfig{LockDuration: time.Second}, false))
}

func TestAcceptanceSessions(t *testing.T) {
	bridgetest.Run(t, fakeSetup(entityConfig{Sessions: true, LockDuration: time.Second}, false))
}

func TestAcceptanceTopicSubscription(t *testing.T) {
	bridgetest.Run(t, fakeSetup(entityConfig{LockDuration: time.Second}, true))
}

func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond) // a polling interval, not a wait for an event
	}
}
