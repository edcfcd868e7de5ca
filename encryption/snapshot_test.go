package encryption_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/lexigram/events/encryption"
	"github.com/lexigram/events/kvsnapshot"
	"github.com/lexigram/events/platform"
)

// TestSnapshots: snapshots are sealed with the aggregate's key, read back
// plain, and once the aggregate is forgotten load as none, so the
// repository replays the shredded events.
func TestSnapshots(t *testing.T) {
	e := newEnv(t)
	snaps, err := kvsnapshot.NewSnapshotStore(t.Context(), e.js, kvsnapshot.SnapshotOptions{Sealer: e.ring})
	if err != nil {
		t.Fatal(err)
	}
	repo := platform.NewRepository(e.store, func() *customer { return &customer{} }, platform.RepositoryOptions{Snapshots: snaps})
	c := &customer{}
	c.SetID("ada")
	platform.Raise(c, stored[0].event)
	if _, err := repo.Save(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if err := repo.Snapshot(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	kv, err := e.js.KeyValue(t.Context(), kvsnapshot.DefaultSnapshotBucket)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := kv.Get(t.Context(), "customer.ada")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw.Value(), []byte("Lovelace")) || !bytes.Contains(raw.Value(), []byte(encryption.KeyID(encryption.AggregateSubject(ada)))) {
		t.Fatalf("the stored snapshot is %q: want it sealed, naming its key", raw.Value())
	}
	snap, ok, err := snaps.LoadSnapshot(t.Context(), ada)
	if err != nil || !ok || !bytes.Contains(snap.State, []byte("Lovelace")) {
		t.Fatalf("LoadSnapshot: %v %v %q: want the plain state", ok, err, snap.State)
	}

	// Without the key ring: a clear error, not garbage.
	plain, err := kvsnapshot.NewSnapshotStore(t.Context(), e.js, kvsnapshot.SnapshotOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := plain.LoadSnapshot(t.Context(), ada); !errors.Is(err, platform.ErrConfigConflict) {
		t.Fatalf("LoadSnapshot without the key ring: %v, want LXE-011", err)
	}

	if err := e.ring.ForgetAggregate(t.Context(), ada); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := snaps.LoadSnapshot(t.Context(), ada); ok || err != nil {
		t.Fatalf("LoadSnapshot after Forget: found %v, %v: want none", ok, err)
	}
	got, err := repo.Load(t.Context(), "ada")
	if err != nil {
		t.Fatal(err)
	}
	if got.State.Name != encryption.Placeholder || got.State.Plan != "gold-plan" {
		t.Fatalf("loaded %+v after Forget", got.State)
	}
}
