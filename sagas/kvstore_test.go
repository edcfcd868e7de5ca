package sagas_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/embedded"
	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/sagas"
	"github.com/lexigram/events/sagas/sagatest"
)

// kvContext bounds one KVStore test.
func kvContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// kvEnv is a KVStore on its own embedded server, with the raw bucket to
// look into and write past the store.
type kvEnv struct {
	nc    *nats.Conn
	js    jetstream.JetStream
	store *sagas.KVStore
	kv    jetstream.KeyValue
}

// newKVEnv starts a server for one test. It fsyncs once a minute: the
// tests need no durability across an OS crash, only speed.
func newKVEnv(t testing.TB, opts sagas.KVOptions) kvEnv {
	t.Helper()
	srv := embeddedtest.Server(t, func(o *embedded.Options) { o.FsyncInterval = time.Minute })
	nc := embeddedtest.Conn(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := kvContext(t)
	s, err := sagas.NewKVStore(ctx, js, opts)
	if err != nil {
		t.Fatal(err)
	}
	bucket := opts.Bucket
	if bucket == "" {
		bucket = sagas.DefaultKVBucket
	}
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	return kvEnv{nc: nc, js: js, store: s, kv: kv}
}

func TestKVStoreConformance(t *testing.T) {
	var buckets sync.Map // *sagas.KVStore → its jetstream.KeyValue
	sagatest.Run(t,
		func(t *testing.T) sagas.Store {
			env := newKVEnv(t, sagas.KVOptions{})
			buckets.Store(env.store, env.kv)
			return env.store
		},
		func(t *testing.T, s sagas.Store, id string) {
			kv, _ := buckets.Load(s)
			if _, err := kv.(jetstream.KeyValue).Put(kvContext(t), "i."+id, []byte("\x00 not JSON")); err != nil {
				t.Fatal(err)
			}
		})
}

func TestKVStoreDefaults(t *testing.T) {
	env := newKVEnv(t, sagas.KVOptions{})
	status, err := env.kv.Status(kvContext(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg := status.Config()
	if cfg.Bucket != "lexigram_sagas" || cfg.Storage != jetstream.FileStorage || cfg.Replicas != 1 || cfg.History != 1 {
		t.Errorf("bucket %q with %s storage, %d replicas, history %d; want lexigram_sagas, file, 1, 1", cfg.Bucket, cfg.Storage, cfg.Replicas, cfg.History)
	}
}

// The record is the JSON of the instance without its revision, and the
// index entry under the escaped key holds the ID.
func TestKVStoreLayout(t *testing.T) {
	env := newKVEnv(t, sagas.KVOptions{Bucket: "sagas-layout", Storage: jetstream.MemoryStorage})
	ctx := kvContext(t)
	id := sagas.InstanceID("order-saga", "a.b c")
	stored, _, err := env.store.Create(ctx, sagas.Instance{ID: id, Type: "order-saga", Key: "a.b c", State: sagas.Started})
	if err != nil {
		t.Fatal(err)
	}
	if keys, err := env.kv.Keys(ctx); err != nil || !slices.Equal(keys, []string{"i." + id}) {
		t.Fatalf("the bucket holds keys %v (%v), want only the record i.%s", keys, err, id)
	}
	record, err := env.kv.Get(ctx, "i."+id)
	if err != nil {
		t.Fatal(err)
	}
	if record.Revision() != stored.Revision {
		t.Errorf("record at KV revision %d, the instance at %d", record.Revision(), stored.Revision)
	}
	var fields map[string]any
	if err := json.Unmarshal(record.Value(), &fields); err != nil {
		t.Fatalf("record %s is not a JSON object: %v", record.Value(), err)
	}
	if fields["id"] != id || fields["key"] != "a.b c" || fields["state"] != "STARTED" {
		t.Errorf("record %s lacks the instance's fields", record.Value())
	}
	for name := range fields {
		if strings.EqualFold(name, "revision") {
			t.Errorf("record %s encodes the revision", record.Value())
		}
	}
}

func TestKVStoreCorruptRecords(t *testing.T) {
	env := newKVEnv(t, sagas.KVOptions{Storage: jetstream.MemoryStorage})
	ctx := kvContext(t)
	for _, c := range []struct {
		id, record, wantType string
	}{
		{"garbage", "{", ""},
		{"bad-field", `{"id":"bad-field","type":"order-saga","step":"two"}`, "order-saga"},
		{"no-id", `{"type":"order-saga"}`, "order-saga"},
		{"other-id", `{"id":"someone-else","type":"order-saga"}`, "order-saga"},
	} {
		rev, err := env.kv.Put(ctx, "i."+c.id, []byte(c.record))
		if err != nil {
			t.Fatal(err)
		}
		_, err = env.store.Load(ctx, c.id)
		var ce *sagas.CorruptError
		if !errors.As(err, &ce) || !errors.Is(err, platform.ErrCorruptSaga) {
			t.Errorf("load record %s: got %v, want a CorruptError", c.record, err)
			continue
		}
		if ce.ID != c.id || ce.Type != c.wantType || ce.Revision != rev {
			t.Errorf("load record %s: corrupt error for %q of type %q at revision %d, want %q of type %q at %d", c.record, ce.ID, ce.Type, ce.Revision, c.id, c.wantType, rev)
		}
		if !strings.Contains(err.Error(), "i."+c.id) {
			t.Errorf("corrupt error %q does not name the key", err)
		}
	}
}

func TestKVStoreBucketConflicts(t *testing.T) {
	env := newKVEnv(t, sagas.KVOptions{Bucket: "first"})
	ctx := kvContext(t)
	if _, err := env.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "in-memory", Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	_, err := sagas.NewKVStore(ctx, env.js, sagas.KVOptions{Bucket: "in-memory"})
	if !errors.Is(err, platform.ErrConfigConflict) {
		t.Fatalf("bind to a memory bucket asking for file storage: got %v, want ErrConfigConflict", err)
	}
	for _, want := range []string{`"in-memory"`, "Memory storage", "File storage", "KVOptions.Storage", "KVOptions.Bucket"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, err := env.js.CreateStream(ctx, jetstream.StreamConfig{Name: "KV_plain", Subjects: []string{"plain.>"}}); err != nil {
		t.Fatal(err)
	}
	_, err = sagas.NewKVStore(ctx, env.js, sagas.KVOptions{Bucket: "plain"})
	if !errors.Is(err, platform.ErrConfigConflict) || !strings.Contains(err.Error(), "not a key-value bucket") {
		t.Errorf("bind to a stream that is no bucket: got %v, want ErrConfigConflict saying so", err)
	}
	_, err = sagas.NewKVStore(ctx, env.js, sagas.KVOptions{Bucket: "bad.name"})
	if !errors.Is(err, platform.ErrInvalidArgument) {
		t.Errorf("bucket name with a dot: got %v, want ErrInvalidArgument", err)
	}

	// A bucket that fits is bound to, with what it holds.
	kept := sagas.InstanceID("order-saga", "o-1")
	stored, _, err := env.store.Create(ctx, sagas.Instance{ID: kept, Type: "order-saga", Key: "o-1"})
	if err != nil {
		t.Fatal(err)
	}
	again, err := sagas.NewKVStore(ctx, env.js, sagas.KVOptions{Bucket: "first"})
	if err != nil {
		t.Fatalf("bind to the store's own bucket again: %v", err)
	}
	if got, err := again.Load(ctx, kept); err != nil || got.Revision != stored.Revision {
		t.Errorf("the second store loads %+v, %v; want the instance the first stored", got, err)
	}
}

// Names the bucket could not key, or that would outgrow a NATS protocol
// line, are refused before anything is written, and the connection
// survives them.
func TestKVStoreInvalidNames(t *testing.T) {
	env := newKVEnv(t, sagas.KVOptions{Storage: jetstream.MemoryStorage})
	ctx := kvContext(t)
	for _, in := range []sagas.Instance{
		{ID: "a.b", Type: "order-saga", Key: "k"},
		{ID: "*", Type: "order-saga", Key: "k"},
		{ID: "ok-1", Type: "order.saga", Key: "k"},
		{ID: "ok-1", Type: ">", Key: "k"},
		{ID: "ok-1", Type: "order-saga", Key: strings.Repeat("*", 4096)},
		{ID: strings.Repeat("x", 4096), Type: "order-saga", Key: "k"},
	} {
		_, _, err := env.store.Create(ctx, in)
		if !errors.Is(err, platform.ErrInvalidArgument) {
			t.Errorf("create with ID %.20q, type %q and key %.20q: got %v, want ErrInvalidArgument", in.ID, in.Type, in.Key, err)
		}
	}
	if _, err := env.store.Load(ctx, "i.>"); !errors.Is(err, platform.ErrInvalidArgument) {
		t.Errorf("load a wildcard ID: got %v, want ErrInvalidArgument", err)
	}
	if keys, err := env.kv.Keys(ctx); !errors.Is(err, jetstream.ErrNoKeysFound) {
		t.Errorf("the refused calls wrote keys %v (%v)", keys, err)
	}
	if !env.nc.IsConnected() {
		t.Fatal("the connection did not survive the refused calls")
	}
}
