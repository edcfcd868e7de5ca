package durable_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/handlers/durable"
	"github.com/lexigram/events/internal/oldnats"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// On a server before 2.10 (Debian's 2.9.10 on 127.0.0.1:4222 is one),
// which takes one filter subject per consumer, a handler of two aggregate
// types starts (its advisory consumer names four subjects) and handles
// those two types only.
func TestHandlerOnAnOlderServer(t *testing.T) {
	nc := oldnats.Conn(t)
	if lxjs.ServerAtLeast(nc.ConnectedServerVersion(), 2, 10) {
		t.Skipf("the server at %s is %s, which takes several filter subjects", oldnats.URL(), nc.ConnectedServerVersion())
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	name := "LXTEST_DURABLE_" + nuid.Next()
	for _, s := range []string{name, name + "_DLQ", name + "_DLQ_ADVISORIES"} {
		t.Cleanup(func() { _ = js.DeleteStream(context.Background(), s) })
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	store, err := lxjs.New(ctx, js, lxjs.Options{Stream: name, SubjectPrefix: "lxtest." + name, Registry: testRegistry(),
		Storage: jetstream.MemoryStorage, Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	dlq, err := durable.OpenDLQ(ctx, js, store, durable.DLQOptions{Stream: name + "_DLQ", SubjectPrefix: "lxtestdlq." + name, Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []string
	h, err := durable.New(ctx, js, store, "two-types", func(_ context.Context, e platform.Envelope) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, e.Stream.Type)
		return nil
	}, durable.Options{AggregateTypes: []string{"order", "invoice"}, DLQ: dlq, Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatalf("start a handler of two aggregate types on %s: %v", nc.ConnectedServerVersion(), err)
	}
	t.Cleanup(func() { _ = h.Stop(context.Background()) })
	for _, typ := range []string{"customer", "order", "customer", "invoice", "customer"} {
		if _, err := store.Append(ctx, platform.StreamID{Type: typ, ID: nuid.Next()}, platform.Any(), []platform.Envelope{{Event: orderPlaced{N: 1}}}); err != nil {
			t.Fatal(err)
		}
	}
	for {
		info, err := h.Info(ctx)
		if err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.AckFloor.Stream == 5 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the handler did not get through the five events: %+v, %v", info, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if slices.Sort(got); !slices.Equal(got, []string{"invoice", "order"}) {
		t.Fatalf("handled aggregate types %v, want invoice and order once each", got)
	}
}
