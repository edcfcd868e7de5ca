package kvsnapshot

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/lexigram/events/platform"
)

var order42 = platform.StreamID{Type: "order", ID: "42"}

func snapshotOf(stream platform.StreamID, version uint64, state []byte) platform.Snapshot {
	return platform.Snapshot{
		Stream:        stream,
		Revision:      platform.Revision{Version: version, Position: 1000 + version},
		SchemaVersion: 3,
		Codec:         "msgpack",
		State:         state,
		Time:          time.Date(2026, 5, 17, 10, 11, 12, 123456789, time.UTC),
	}
}

func load(t *testing.T, s *SnapshotStore, stream platform.StreamID) (platform.Snapshot, bool) {
	t.Helper()
	got, ok, err := s.LoadSnapshot(testContext(t), stream)
	if err != nil {
		t.Fatalf("LoadSnapshot(%s): %v", stream, err)
	}
	return got, ok
}

func save(t *testing.T, s *SnapshotStore, snap platform.Snapshot) {
	t.Helper()
	if err := s.SaveSnapshot(testContext(t), snap); err != nil {
		t.Fatalf("SaveSnapshot(%s v%d): %v", snap.Stream, snap.Revision.Version, err)
	}
}

func assertSnapshot(t *testing.T, got platform.Snapshot, want platform.Snapshot) {
	t.Helper()
	if got.Stream != want.Stream || got.Revision != want.Revision || got.SchemaVersion != want.SchemaVersion ||
		got.Codec != want.Codec || !got.Time.Equal(want.Time) || got.Time.Location() != time.UTC || !bytes.Equal(got.State, want.State) {
		t.Fatalf("got snapshot %+v (state %d bytes)\nwant %+v (state %d bytes)", got.Revision, len(got.State), want.Revision, len(want.State))
	}
}

// objectNames lists the live objects of the large-snapshot bucket; none if
// it does not exist.
func objectNames(t *testing.T, js jetstream.JetStream, bucket string) []string {
	t.Helper()
	ctx := testContext(t)
	obs, err := js.ObjectStore(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	infos, err := obs.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, info := range infos {
		names = append(names, info.Name)
	}
	return names
}

func TestSnapshotRoundTrip(t *testing.T) {
	s, js := newSnapshotStore(t, SnapshotOptions{})
	if _, ok := load(t, s, order42); ok {
		t.Fatal("found a snapshot in an empty store")
	}
	want := snapshotOf(order42, 7, []byte("state of order 42"))
	want.Time = time.Date(2026, 5, 17, 12, 11, 12, 123456789, time.FixedZone("CEST", 2*3600))
	save(t, s, want)
	got, ok := load(t, s, order42)
	if !ok {
		t.Fatal("snapshot not found after save")
	}
	assertSnapshot(t, got, want)
	if _, err := js.KeyValue(testContext(t), DefaultSnapshotBucket); err != nil {
		t.Fatalf("default bucket: %v", err)
	}
	if names := objectNames(t, js, DefaultSnapshotBucket+"_large"); names != nil {
		t.Fatalf("a small snapshot went to the object store: %v", names)
	}
}

func TestSnapshotOrdering(t *testing.T) {
	s, _ := newSnapshotStore(t, SnapshotOptions{Bucket: "snaps"})
	save(t, s, snapshotOf(order42, 5, []byte("v5")))
	save(t, s, snapshotOf(order42, 9, []byte("v9")))
	got, _ := load(t, s, order42)
	assertSnapshot(t, got, snapshotOf(order42, 9, []byte("v9")))

	save(t, s, snapshotOf(order42, 8, []byte("v8")))
	save(t, s, snapshotOf(order42, 9, []byte("other v9")))
	got, _ = load(t, s, order42)
	assertSnapshot(t, got, snapshotOf(order42, 9, []byte("v9")))
}

func TestSnapshotConcurrentSavers(t *testing.T) {
	s, _ := newSnapshotStore(t, SnapshotOptions{})
	saveConcurrently(t, s, 30, func(v int) []byte { return fmt.Appendf(nil, "v%d", v) })
	got, _ := load(t, s, order42)
	assertSnapshot(t, got, snapshotOf(order42, 30, []byte("v30")))
}

// saveConcurrently saves versions 1..n of order42 from n goroutines at once.
func saveConcurrently(t *testing.T, s *SnapshotStore, n int, state func(v int) []byte) {
	t.Helper()
	ctx := testContext(t)
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, n)
	for v := 1; v <= n; v++ {
		wg.Go(func() {
			<-start
			errs <- s.SaveSnapshot(ctx, snapshotOf(order42, uint64(v), state(v)))
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestSnapshotDelete(t *testing.T) {
	s, _ := newSnapshotStore(t, SnapshotOptions{})
	ctx := testContext(t)
	if err := s.DeleteSnapshot(ctx, order42); err != nil {
		t.Fatalf("delete of a missing snapshot: %v", err)
	}
	save(t, s, snapshotOf(order42, 9, []byte("v9")))
	if err := s.DeleteSnapshot(ctx, order42); err != nil {
		t.Fatal(err)
	}
	if _, ok := load(t, s, order42); ok {
		t.Fatal("snapshot still there after delete")
	}
	// A deleted aggregate starts again from version 1.
	save(t, s, snapshotOf(order42, 2, []byte("v2")))
	got, _ := load(t, s, order42)
	assertSnapshot(t, got, snapshotOf(order42, 2, []byte("v2")))
}

func TestSnapshotHostileIDs(t *testing.T) {
	s, _ := newSnapshotStore(t, SnapshotOptions{})
	ids := []string{"a.b", "a=2Eb", "*", ">", "a b", "ünï", "bob@x.com", "a/b", "..", "a"}
	for i, id := range ids {
		save(t, s, snapshotOf(platform.StreamID{Type: "user", ID: id}, uint64(i+1), []byte(id)))
	}
	for i, id := range ids {
		stream := platform.StreamID{Type: "user", ID: id}
		got, ok := load(t, s, stream)
		if !ok {
			t.Fatalf("%q: not found", id)
		}
		assertSnapshot(t, got, snapshotOf(stream, uint64(i+1), []byte(id)))
	}
	if _, ok := load(t, s, platform.StreamID{Type: "order", ID: "a"}); ok {
		t.Fatal("aggregate types share snapshots")
	}
}

func TestSnapshotInvalidStream(t *testing.T) {
	s, _ := newSnapshotStore(t, SnapshotOptions{})
	ctx := testContext(t)
	bad := platform.StreamID{Type: "or.der", ID: "1"}
	if err := s.SaveSnapshot(ctx, snapshotOf(bad, 1, nil)); !errors.Is(err, platform.ErrInvalidArgument) {
		t.Fatalf("save: got %v, want ErrInvalidArgument", err)
	}
	if _, _, err := s.LoadSnapshot(ctx, bad); !errors.Is(err, platform.ErrInvalidArgument) {
		t.Fatalf("load: got %v, want ErrInvalidArgument", err)
	}
	if err := s.DeleteSnapshot(ctx, bad); !errors.Is(err, platform.ErrInvalidArgument) {
		t.Fatalf("delete: got %v, want ErrInvalidArgument", err)
	}
}

func TestSnapshotLarge(t *testing.T) {
	s, js := newSnapshotStore(t, SnapshotOptions{})
	ctx := testContext(t)
	large := func(v int) []byte { return bytes.Repeat(fmt.Appendf(nil, "v%d-", v), 3<<20/3) }
	objects := func() []string { return objectNames(t, js, DefaultSnapshotBucket+"_large") }

	save(t, s, snapshotOf(order42, 1, large(1)))
	got, _ := load(t, s, order42)
	assertSnapshot(t, got, snapshotOf(order42, 1, large(1)))
	if n := len(objects()); n != 1 {
		t.Fatalf("%d objects after one large save, want 1", n)
	}

	save(t, s, snapshotOf(order42, 2, large(2)))
	got, _ = load(t, s, order42)
	assertSnapshot(t, got, snapshotOf(order42, 2, large(2)))
	if n := len(objects()); n != 1 {
		t.Fatalf("%d objects after replacing a large snapshot, want 1: the old one must go", n)
	}

	// An older large snapshot is refused before anything is uploaded.
	save(t, s, snapshotOf(order42, 1, large(1)))
	if n := len(objects()); n != 1 {
		t.Fatalf("%d objects after a stale large save, want 1", n)
	}

	save(t, s, snapshotOf(order42, 3, []byte("small again")))
	got, _ = load(t, s, order42)
	assertSnapshot(t, got, snapshotOf(order42, 3, []byte("small again")))
	if names := objects(); names != nil {
		t.Fatalf("objects left after a small snapshot replaced the large one: %v", names)
	}

	save(t, s, snapshotOf(order42, 4, large(4)))
	if err := s.DeleteSnapshot(ctx, order42); err != nil {
		t.Fatal(err)
	}
	if _, ok := load(t, s, order42); ok {
		t.Fatal("large snapshot still there after delete")
	}
	if names := objects(); names != nil {
		t.Fatalf("objects left after delete: %v", names)
	}
}

// The limit is exact: a value of exactly the inline limit is a valid KV
// message, one byte more goes to the object store.
func TestSnapshotInlineLimit(t *testing.T) {
	s, js := newSnapshotStore(t, SnapshotOptions{})
	limit := s.inlineLimit()
	if limit < 1<<19 {
		t.Fatalf("inline limit %d: expected about the default max payload of 1 MB", limit)
	}
	// Both sizes are well above 64 KiB, so the state's length prefix has
	// the same width.
	overhead := encodedSize(t, snapshotOf(order42, 1, make([]byte, limit))) - limit
	state := bytes.Repeat([]byte("x"), limit-overhead)
	if n := encodedSize(t, snapshotOf(order42, 1, state)); n != limit {
		t.Fatalf("encoded %d bytes, want %d", n, limit)
	}
	save(t, s, snapshotOf(order42, 1, state))
	if names := objectNames(t, js, DefaultSnapshotBucket+"_large"); names != nil {
		t.Fatalf("a snapshot of exactly the limit went to the object store: %v", names)
	}
	state = append(state, 'x')
	save(t, s, snapshotOf(order42, 2, state))
	if n := len(objectNames(t, js, DefaultSnapshotBucket+"_large")); n != 1 {
		t.Fatalf("%d objects, want 1 for a snapshot one byte over the limit", n)
	}
	got, _ := load(t, s, order42)
	assertSnapshot(t, got, snapshotOf(order42, 2, state))
}

func encodedSize(t *testing.T, snap platform.Snapshot) int {
	t.Helper()
	rec := newRecord(snap)
	value, err := msgpack.Marshal(&rec)
	if err != nil {
		t.Fatal(err)
	}
	return len(value)
}

func TestSnapshotConcurrentLargeSavers(t *testing.T) {
	s, js := newSnapshotStore(t, SnapshotOptions{MaxInlineSize: 1024})
	state := func(v int) []byte { return bytes.Repeat(fmt.Appendf(nil, "v%d-", v), 1000) }
	saveConcurrently(t, s, 12, state)
	got, _ := load(t, s, order42)
	assertSnapshot(t, got, snapshotOf(order42, 12, state(12)))
	if names := objectNames(t, js, DefaultSnapshotBucket+"_large"); len(names) != 1 {
		t.Fatalf("objects %v, want exactly the one the entry points to", names)
	}
}

func TestSnapshotCorrupt(t *testing.T) {
	s, _ := newSnapshotStore(t, SnapshotOptions{})
	ctx := testContext(t)
	key := snapshotKey(order42)
	if _, err := s.kv.Put(ctx, key, []byte{0xc1, 'x'}); err != nil {
		t.Fatal(err)
	}
	_, _, err := s.LoadSnapshot(ctx, order42)
	if platform.CodeOf(err) != platform.CodeCorruptEvent || !strings.Contains(err.Error(), key) {
		t.Fatalf("got %v, want a %s error naming key %q", err, platform.CodeCorruptEvent, key)
	}
	// A corrupt value is no snapshot: any save replaces it.
	save(t, s, snapshotOf(order42, 1, []byte("v1")))
	got, _ := load(t, s, order42)
	assertSnapshot(t, got, snapshotOf(order42, 1, []byte("v1")))
}

func TestSnapshotMissingObject(t *testing.T) {
	s, _ := newSnapshotStore(t, SnapshotOptions{MaxInlineSize: 100})
	ctx := testContext(t)
	save(t, s, snapshotOf(order42, 1, bytes.Repeat([]byte("x"), 500)))
	rec, _, err := s.current(ctx, snapshotKey(order42))
	if err != nil {
		t.Fatal(err)
	}
	obs, err := s.objects(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := obs.Delete(ctx, rec.Object); err != nil {
		t.Fatal(err)
	}
	_, _, err = s.LoadSnapshot(ctx, order42)
	if platform.CodeOf(err) != platform.CodeCorruptEvent || !strings.Contains(err.Error(), rec.Object) {
		t.Fatalf("got %v, want a %s error naming object %q", err, platform.CodeCorruptEvent, rec.Object)
	}
}
