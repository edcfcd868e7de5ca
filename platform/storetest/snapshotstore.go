package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/lexigram/events/platform"
)

// TestSnapshotStore runs the snapshot store conformance suite. newStore is
// called once per subtest and must return an empty store.
func TestSnapshotStore(t *testing.T, newStore func(t *testing.T) platform.SnapshotStore) {
	t.Helper()
	tests := []struct {
		name string
		f    func(t *testing.T, s platform.SnapshotStore, aggType string)
	}{
		{"RoundTrip", testSnapshotRoundTrip},
		{"Missing", testSnapshotMissing},
		{"NewerReplacesOlder", testSnapshotNewer},
		{"OlderNeverReplacesNewer", testSnapshotOlder},
		{"ConcurrentSaves", testSnapshotConcurrent},
		{"Delete", testSnapshotDelete},
		{"HostileAggregateIDs", testSnapshotHostileIDs},
		{"HugeState", testSnapshotHuge},
		{"BadStream", testSnapshotBadStream},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			if s == nil {
				t.Fatal("storetest: newStore returned nil")
			}
			tc.f(t, s, uniqueType("snap"))
		})
	}
}

func snapshotAt(stream platform.StreamID, version uint64) platform.Snapshot {
	return platform.Snapshot{
		Stream:        stream,
		Revision:      platform.Revision{Version: version, Position: version*10 + 7},
		SchemaVersion: 3,
		Codec:         "msgpack",
		State:         fmt.Appendf(nil, "state of %s at %d \x00\xff", stream.ID, version),
		// A store may keep less than nanoseconds, but not less than
		// milliseconds; the monotonic reading is dropped by Truncate.
		Time: time.Now().Add(time.Duration(version) * time.Second).Truncate(time.Millisecond),
	}
}

func mustLoadSnapshot(t *testing.T, s platform.SnapshotStore, stream platform.StreamID) platform.Snapshot {
	t.Helper()
	got, ok, err := s.LoadSnapshot(t.Context(), stream)
	if err != nil {
		t.Fatalf("LoadSnapshot(%v): %v", stream, err)
	}
	if !ok {
		t.Fatalf("LoadSnapshot(%v): none found", stream)
	}
	return got
}

func mustSaveSnapshot(t *testing.T, s platform.SnapshotStore, snap platform.Snapshot) {
	t.Helper()
	if err := s.SaveSnapshot(t.Context(), snap); err != nil {
		t.Fatalf("SaveSnapshot(%v at %d): %v", snap.Stream, snap.Revision.Version, err)
	}
}

func diffSnapshot(got, want platform.Snapshot) string {
	switch {
	case got.Stream != want.Stream:
		return fmt.Sprintf("Stream %v, want %v", got.Stream, want.Stream)
	case got.Revision != want.Revision:
		return fmt.Sprintf("Revision %+v, want %+v", got.Revision, want.Revision)
	case got.SchemaVersion != want.SchemaVersion:
		return fmt.Sprintf("SchemaVersion %d, want %d", got.SchemaVersion, want.SchemaVersion)
	case got.Codec != want.Codec:
		return fmt.Sprintf("Codec %q, want %q", got.Codec, want.Codec)
	case !bytes.Equal(got.State, want.State):
		return fmt.Sprintf("State %q, want %q", trunc(got.State), trunc(want.State))
	case !got.Time.Equal(want.Time):
		return fmt.Sprintf("Time %v, want %v", got.Time, want.Time)
	}
	return ""
}

func trunc(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

func sameSnapshot(t *testing.T, what string, got, want platform.Snapshot) {
	t.Helper()
	if d := diffSnapshot(got, want); d != "" {
		t.Fatalf("%s: %s", what, d)
	}
}

func testSnapshotRoundTrip(t *testing.T, s platform.SnapshotStore, aggType string) {
	stream := platform.StreamID{Type: aggType, ID: "round-trip"}
	snap := snapshotAt(stream, 42)
	snap.Codec = "json"
	mustSaveSnapshot(t, s, snap)
	want := snap
	want.State = bytes.Clone(snap.State)
	snap.State[0] = 'X' // the store keeps its own copy
	got := mustLoadSnapshot(t, s, stream)
	sameSnapshot(t, "LoadSnapshot", got, want)
	got.State[0] = 'Y'
	sameSnapshot(t, "LoadSnapshot again after changing the loaded State", mustLoadSnapshot(t, s, stream), want)
}

func testSnapshotMissing(t *testing.T, s platform.SnapshotStore, aggType string) {
	got, ok, err := s.LoadSnapshot(t.Context(), platform.StreamID{Type: aggType, ID: "missing"})
	if err != nil || ok {
		t.Fatalf("LoadSnapshot of a missing snapshot = %+v, %v, %v; want ok == false and no error", got, ok, err)
	}
	// A snapshot of another aggregate, or of another type with the same
	// ID, is not this one's.
	mustSaveSnapshot(t, s, snapshotAt(platform.StreamID{Type: aggType, ID: "other"}, 1))
	mustSaveSnapshot(t, s, snapshotAt(platform.StreamID{Type: aggType + "x", ID: "missing"}, 1))
	if _, ok, err := s.LoadSnapshot(t.Context(), platform.StreamID{Type: aggType, ID: "missing"}); err != nil || ok {
		t.Fatalf("LoadSnapshot of a missing snapshot after saving others: ok %v, err %v", ok, err)
	}
}

func testSnapshotNewer(t *testing.T, s platform.SnapshotStore, aggType string) {
	stream := platform.StreamID{Type: aggType, ID: "a"}
	for _, v := range []uint64{1, 5, 6, 100} {
		snap := snapshotAt(stream, v)
		mustSaveSnapshot(t, s, snap)
		sameSnapshot(t, fmt.Sprintf("after saving version %d", v), mustLoadSnapshot(t, s, stream), snap)
	}
}

func testSnapshotOlder(t *testing.T, s platform.SnapshotStore, aggType string) {
	stream := platform.StreamID{Type: aggType, ID: "a"}
	v10 := snapshotAt(stream, 10)
	mustSaveSnapshot(t, s, v10)
	for _, v := range []uint64{5, 9, 1, 0} {
		mustSaveSnapshot(t, s, snapshotAt(stream, v))
		sameSnapshot(t, fmt.Sprintf("after saving version %d over 10", v), mustLoadSnapshot(t, s, stream), v10)
	}
	// The same version does not replace it either.
	same := snapshotAt(stream, 10)
	same.State, same.SchemaVersion = []byte("another state"), 9
	mustSaveSnapshot(t, s, same)
	sameSnapshot(t, "after saving version 10 again", mustLoadSnapshot(t, s, stream), v10)
}

func testSnapshotConcurrent(t *testing.T, s platform.SnapshotStore, aggType string) {
	for round := range 3 {
		stream := platform.StreamID{Type: aggType, ID: fmt.Sprintf("race-%d", round)}
		versions := rand.Perm(50)
		snaps := make(map[uint64]platform.Snapshot, len(versions))
		errs := make([]error, len(versions))
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, v := range versions {
			snap := snapshotAt(stream, uint64(v+1))
			snaps[snap.Revision.Version] = snap
			wg.Go(func() {
				<-start
				errs[i] = s.SaveSnapshot(t.Context(), snap)
			})
		}
		close(start)
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("concurrent SaveSnapshot: %v", err)
		}
		got := mustLoadSnapshot(t, s, stream)
		sameSnapshot(t, fmt.Sprintf("round %d: after concurrent saves of versions 1..50", round), got, snaps[50])
	}
}

func testSnapshotDelete(t *testing.T, s platform.SnapshotStore, aggType string) {
	ctx := t.Context()
	a, b := platform.StreamID{Type: aggType, ID: "a"}, platform.StreamID{Type: aggType, ID: "b"}
	mustSaveSnapshot(t, s, snapshotAt(a, 10))
	bSnap := snapshotAt(b, 10)
	mustSaveSnapshot(t, s, bSnap)
	if err := s.DeleteSnapshot(ctx, a); err != nil {
		t.Fatalf("DeleteSnapshot: %v", err)
	}
	if _, ok, err := s.LoadSnapshot(ctx, a); err != nil || ok {
		t.Fatalf("LoadSnapshot after DeleteSnapshot: ok %v, err %v; want none", ok, err)
	}
	sameSnapshot(t, "another aggregate's snapshot after DeleteSnapshot", mustLoadSnapshot(t, s, b), bSnap)
	if err := s.DeleteSnapshot(ctx, a); err != nil {
		t.Fatalf("DeleteSnapshot of a deleted snapshot: %v", err)
	}
	if err := s.DeleteSnapshot(ctx, platform.StreamID{Type: aggType, ID: "never"}); err != nil {
		t.Fatalf("DeleteSnapshot of a snapshot that never existed: %v", err)
	}
	// After a delete, a lower version may be saved: the aggregate may have
	// been deleted and created again.
	v3 := snapshotAt(a, 3)
	mustSaveSnapshot(t, s, v3)
	sameSnapshot(t, "a lower version saved after DeleteSnapshot", mustLoadSnapshot(t, s, a), v3)
}

func testSnapshotHostileIDs(t *testing.T, s platform.SnapshotStore, aggType string) {
	ids := hostileIDs()
	saved := make([]platform.Snapshot, len(ids))
	for i, id := range ids {
		saved[i] = snapshotAt(platform.StreamID{Type: aggType, ID: id}, uint64(i+1))
		mustSaveSnapshot(t, s, saved[i])
	}
	check := func(when string, gone map[string]bool) {
		t.Helper()
		for i, id := range ids {
			stream := platform.StreamID{Type: aggType, ID: id}
			got, ok, err := s.LoadSnapshot(t.Context(), stream)
			switch {
			case err != nil:
				t.Fatalf("%s: LoadSnapshot(%q): %v", when, id, err)
			case ok == gone[id]:
				t.Fatalf("%s: LoadSnapshot(%q): found %v, want %v", when, id, ok, !gone[id])
			case ok:
				sameSnapshot(t, fmt.Sprintf("%s: LoadSnapshot(%q)", when, id), got, saved[i])
			}
		}
	}
	check("after saving", nil)
	gone := map[string]bool{}
	for _, id := range []string{"*", ">", "a.>", "a*", "="} {
		if err := s.DeleteSnapshot(t.Context(), platform.StreamID{Type: aggType, ID: id}); err != nil {
			t.Fatalf("DeleteSnapshot(%q): %v", id, err)
		}
		gone[id] = true
	}
	check("after deleting the wildcard-like IDs", gone)
}

func testSnapshotHuge(t *testing.T, s platform.SnapshotStore, aggType string) {
	stream := platform.StreamID{Type: aggType, ID: "huge"}
	snap := snapshotAt(stream, 1)
	snap.State = make([]byte, 2<<20)
	for i := range snap.State {
		snap.State[i] = byte(i*31 + i>>8)
	}
	err := s.SaveSnapshot(t.Context(), snap)
	if err != nil {
		checkErr(t, "SaveSnapshot of a 2 MiB state", err, platform.ErrInvalidArgument)
		if _, ok, err := s.LoadSnapshot(t.Context(), stream); err != nil || ok {
			t.Fatalf("LoadSnapshot after a rejected SaveSnapshot: ok %v, err %v; want none", ok, err)
		}
		return
	}
	sameSnapshot(t, "LoadSnapshot of a 2 MiB state", mustLoadSnapshot(t, s, stream), snap)
}

func testSnapshotBadStream(t *testing.T, s platform.SnapshotStore, aggType string) {
	ctx := t.Context()
	for _, stream := range []platform.StreamID{
		{Type: aggType},
		{Type: "a.b", ID: "x"},
		{ID: "x"},
		{Type: aggType, ID: string(make([]byte, platform.MaxAggregateIDLen+1))},
	} {
		snap := snapshotAt(stream, 1)
		checkErr(t, fmt.Sprintf("SaveSnapshot(%v)", stream), s.SaveSnapshot(ctx, snap), platform.ErrInvalidArgument)
		_, _, err := s.LoadSnapshot(ctx, stream)
		checkErr(t, fmt.Sprintf("LoadSnapshot(%v)", stream), err, platform.ErrInvalidArgument)
		checkErr(t, fmt.Sprintf("DeleteSnapshot(%v)", stream), s.DeleteSnapshot(ctx, stream), platform.ErrInvalidArgument)
	}
}
