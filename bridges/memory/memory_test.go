package memory_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/bridges/bridgetest"
	"github.com/lexigram/events/bridges/memory"
)

func TestAcceptance(t *testing.T) {
	b := memory.NewBroker()
	var n atomic.Int64
	bridgetest.Run(t, bridgetest.Setup{
		New: func(t *testing.T) bridgetest.Topic {
			topic := fmt.Sprintf("t%d", n.Add(1))
			return bridgetest.Topic{
				Publisher: b.Publisher(topic),
				NewSubscriber: func(t *testing.T) bridges.Subscriber {
					s := b.Subscriber(topic, 0)
					t.Cleanup(func() { _ = s.Close() })
					return s
				},
			}
		},
		Restart: func(*testing.T) { b.Stop(); b.Start() },
	})
}

func TestRegistered(t *testing.T) {
	pub, err := bridges.NewPublisher(t.Context(), "memory", bridges.Settings{"topic": "x"})
	if err != nil || pub == nil {
		t.Fatalf("the memory driver: %v", err)
	}
	if _, err := bridges.NewSubscriber(t.Context(), "memory", bridges.Settings{"topic": "x", "prefech": "3"}); err == nil {
		t.Fatal("a misspelt setting was accepted")
	}
	if _, err := bridges.NewPublisher(t.Context(), "nosuch", nil); err == nil {
		t.Fatal("an unregistered broker was accepted")
	}
}
