package encryption_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"iter"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/encryption"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// customerRegistered is sealed by fields: Plan stays readable.
type customerRegistered struct {
	Name  string `lexigram:"personal"`
	Email string `lexigram:"personal"`
	Age   int    `lexigram:"personal"`
	Plan  string
}

// orderPlaced is sealed with its customer's key, not the order's.
type orderPlaced struct {
	Customer string `lexigram:"subject"`
	Address  string `lexigram:"personal"`
	Total    int
}

// noteAdded is sealed whole (Options.Modes).
type noteAdded struct {
	Text string
	Tags []string
}

func newRegistry(t *testing.T) *platform.Registry { return newRegistryTB(t) }

func newRegistryTB(t testing.TB) *platform.Registry {
	t.Helper()
	reg := platform.NewRegistry()
	platform.MustRegister[customerRegistered](reg, "customer.registered", 1)
	platform.MustRegister[orderPlaced](reg, "order.placed", 1)
	platform.MustRegister[noteAdded](reg, "note.added", 1)
	return reg
}

func masterKey(t testing.TB, id string) *encryption.StaticKeys {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	p, err := encryption.NewStaticKeys(id, map[string][]byte{id: key})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// env is one NATS server with an event store and a key ring on it.
type env struct {
	js    jetstream.JetStream
	reg   *platform.Registry
	store *lxjs.EventStore
	keys  encryption.KeyProvider
	ring  *encryption.Keyring
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := newEnvTB(t)
	e.ring = e.open(t, e.reg, e.store)
	return e
}

// newEnvTB is newEnv without the key ring.
func newEnvTB(t testing.TB) *env {
	t.Helper()
	srv := embeddedtest.Server(t)
	js, err := jetstream.New(embeddedtest.Conn(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{js: js, reg: newRegistryTB(t), keys: masterKey(t, "m1")}
	e.store, err = lxjs.New(t.Context(), js, lxjs.Options{Registry: e.reg, Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// open opens another key ring on the env's bucket, as another process
// would.
func (e *env) open(t *testing.T, reg *platform.Registry, events platform.EventStore) *encryption.Keyring {
	t.Helper()
	ring, err := encryption.Open(t.Context(), e.js, e.keys, encryption.Options{
		Registry: reg, Events: events, Modes: map[string]encryption.Mode{"note.added": encryption.ModeWhole},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ring.Close() })
	return ring
}

func appendOne(t *testing.T, st platform.EventStore, stream platform.StreamID, event any) platform.AppendResult {
	t.Helper()
	res, err := st.Append(t.Context(), stream, platform.Any(), []platform.Envelope{{Event: event}})
	if err != nil {
		t.Fatalf("append %T to %v: %v", event, stream, err)
	}
	return res
}

func readStream(t *testing.T, st platform.EventStore, stream platform.StreamID) []platform.Envelope {
	t.Helper()
	var out []platform.Envelope
	for e, err := range st.Read(t.Context(), stream, platform.Revision{}) {
		if err != nil {
			t.Fatalf("read %v: %v", stream, err)
		}
		out = append(out, e)
	}
	return out
}

func readAll(t *testing.T, st platform.EventStore) []platform.Envelope {
	t.Helper()
	var out []platform.Envelope
	for e, err := range st.ReadAll(t.Context(), 0) {
		if err != nil {
			t.Fatalf("read all: %v", err)
		}
		out = append(out, e)
	}
	return out
}

// subscriber is what both stores have beside platform.EventStore.
type subscriber interface {
	Subscribe(ctx context.Context, after uint64) iter.Seq2[platform.Envelope, error]
}

// subscribed collects n events from Subscribe, waiting at most 30 s.
func subscribed(t *testing.T, st subscriber, n int) []platform.Envelope {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var out []platform.Envelope
	for e, err := range st.Subscribe(ctx, 0) {
		if err != nil {
			t.Fatalf("subscribe, after %d events: %v", len(out), err)
		}
		if out = append(out, e); len(out) == n {
			break
		}
	}
	return out
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
