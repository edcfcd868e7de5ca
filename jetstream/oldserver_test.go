package jetstream_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// oldServerURL is a nats-server older than 2.12 (Debian's 2.9.10 runs on
// the development machines and in CI).
func oldServerURL() string {
	if u := os.Getenv("LEXIGRAM_OLD_NATS_URL"); u != "" {
		return u
	}
	return "nats://127.0.0.1:4222"
}

// TestOlderServer checks what works against a server without atomic
// batches: single-event appends and reads work, multi-event appends fail
// with a clear error and write nothing.
func TestOlderServer(t *testing.T) {
	ctx := context.Background()
	nc, err := nats.Connect(oldServerURL(), nats.Timeout(2*time.Second))
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI needs the older NATS server at %s: %v", oldServerURL(), err)
		}
		t.Skipf("no older NATS server at %s (set LEXIGRAM_OLD_NATS_URL): %v", oldServerURL(), err)
	}
	t.Cleanup(nc.Close)
	if v := nc.ConnectedServerVersion(); !lessThan212(v) {
		t.Skipf("the server at %s is %s, not older than 2.12", oldServerURL(), v)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	name := "LXTEST_" + nuid.Next()
	reg := platform.NewRegistry()
	platform.MustRegister[itemAdded](reg, "order.item-added", 1)
	st, err := lxjs.New(ctx, js, lxjs.Options{Stream: name, SubjectPrefix: "lxtest." + name, Registry: reg, Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = js.DeleteStream(context.Background(), name) })
	if st.Capabilities().AtomicBatch || st.Capabilities().BatchGet {
		t.Fatalf("capabilities of %s: %+v", nc.ConnectedServerVersion(), st.Capabilities())
	}

	id := platform.StreamID{Type: "order", ID: "bob@example.com"}
	res, err := st.Append(ctx, id, platform.NoStream(), []platform.Envelope{{Event: itemAdded{SKU: "a"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(ctx, id, platform.ExactRevision(res.Revision()), []platform.Envelope{{Event: itemAdded{SKU: "b"}}}); err != nil {
		t.Fatal(err)
	}
	_, err = st.Append(ctx, id, platform.Exact(1), []platform.Envelope{{Event: itemAdded{SKU: "stale"}}})
	if !errors.Is(err, platform.ErrConcurrency) {
		t.Fatalf("stale append: want a concurrency error, got %v", err)
	}
	_, err = st.Append(ctx, id, platform.Exact(2), []platform.Envelope{{Event: itemAdded{SKU: "c"}}, {Event: itemAdded{SKU: "d"}}})
	if !errors.Is(err, platform.ErrUnsupported) {
		t.Fatalf("multi-event append on %s: want ErrUnsupported, got %v", nc.ConnectedServerVersion(), err)
	}
	t.Log(err)
	var skus []string
	for e, err := range st.Read(ctx, id, platform.Revision{}) {
		if err != nil {
			t.Fatal(err)
		}
		skus = append(skus, e.Event.(itemAdded).SKU)
	}
	if len(skus) != 2 || skus[0] != "a" || skus[1] != "b" {
		t.Fatalf("read %v, want [a b]: nothing of the refused append may be there", skus)
	}
	n := 0
	for _, err := range st.ReadAll(ctx, 0) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 2 {
		t.Fatalf("ReadAll gave %d events, want 2", n)
	}

	// Filtered reads: one type is one filter subject, which any server
	// takes; several need 2.10, so here the store filters them itself.
	if _, err := st.Append(ctx, platform.StreamID{Type: "cart", ID: "c1"}, platform.NoStream(), []platform.Envelope{{Event: itemAdded{SKU: "x"}}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		f    platform.Filter
		want int
	}{
		{platform.Filter{AggregateTypes: []string{"cart"}}, 1},
		{platform.Filter{AggregateTypes: []string{"order", "cart"}}, 3},
		{platform.Filter{Aggregate: id}, 2},
	} {
		got := 0
		for e, err := range st.Where(c.f).ReadAll(ctx, 0) {
			if err != nil {
				t.Fatal(err)
			}
			if !c.f.Matches(e) {
				t.Fatalf("Where(%+v) yielded %s", c.f, e.Stream)
			}
			got++
		}
		if got != c.want {
			t.Fatalf("Where(%+v).ReadAll on %s gave %d events, want %d", c.f, nc.ConnectedServerVersion(), got, c.want)
		}
	}
}

func lessThan212(v string) bool {
	var major, minor int
	for i, part := 0, 0; i < len(v) && part < 2; i++ {
		switch c := v[i]; {
		case c == '.':
			part++
		case c >= '0' && c <= '9' && part == 0:
			major = major*10 + int(c-'0')
		case c >= '0' && c <= '9':
			minor = minor*10 + int(c-'0')
		}
	}
	return major < 2 || major == 2 && minor < 12
}
