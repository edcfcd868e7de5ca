package sagas_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/internal/oldnats"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/sagas"
)

// On a server without message schedules (older than 2.12; Debian's
// 2.9.10 on 127.0.0.1:4222 is one), saga types whose waits have deadlines
// are refused with an error that says why and what to do; the rest run.
func TestSagaOnAnOlderServer(t *testing.T) {
	nc := oldnats.Conn(t)
	if lxjs.ServerAtLeast(nc.ConnectedServerVersion(), 2, 12) {
		t.Skipf("the server at %s is %s, which has message schedules", oldnats.URL(), nc.ConnectedServerVersion())
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	name := "LXTEST_SAGAS_" + nuid.Next()
	t.Cleanup(func() { _ = js.DeleteStream(context.Background(), name) })
	opts := sagas.Options{Stream: name, SubjectPrefix: "lxtest." + name, Storage: jetstream.MemoryStorage,
		Commands: bus(t, &ledger{fail: map[string]int{}}), Retry: sagas.Retry{Initial: 20 * time.Millisecond}, Logger: embeddedtest.Logger(t)}

	m, err := sagas.NewManager(context.Background(), js, sagas.NewMemoryStore(), opts)
	if err != nil {
		t.Fatal(err)
	}
	withDeadline := sagas.Define[order]("deadline").
		Step("reserve", send(func(o string) Reserve { return Reserve{o} })).
		Wait("paid", sagas.On[order]("payment", func(e PaymentReceived, _ platform.Envelope) string { return e.Order }, nil), sagas.Within[order](time.Minute))
	err = m.Register(withDeadline)
	if !errors.Is(err, platform.ErrUnsupported) || !strings.Contains(err.Error(), "2.12") || !strings.Contains(err.Error(), nc.ConnectedServerVersion()) {
		t.Errorf("register a saga with a deadline on %s: got %v, want ErrUnsupported naming 2.12 and the server's version", nc.ConnectedServerVersion(), err)
	}

	m = runManager(t, js, sagas.NewMemoryStore(), opts, fulfillment())
	in, err := m.Start(context.Background(), "fulfillment", "old-1", order{Order: "old-1"})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, m, in.ID, sagas.Completed)

	// The start sweep reads the KV store's windows with an ordered
	// consumer of headers only, which this server has too.
	bucket := "lxtest_sagas_" + nuid.Next()
	t.Cleanup(func() { _ = js.DeleteKeyValue(context.Background(), bucket) })
	kv, err := sagas.NewKVStore(context.Background(), js, sagas.KVOptions{Bucket: bucket})
	if err != nil {
		t.Fatal(err)
	}
	sweepOpts := opts
	sweepOpts.Stream, sweepOpts.SubjectPrefix = name+"_SWEEP", "lxtest."+name+"-sweep"
	t.Cleanup(func() { _ = js.DeleteStream(context.Background(), sweepOpts.Stream) })
	checkStrandedMovesOn(t, js, kv, sweepOpts)
}
