package kvsnapshot

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/lexigram/events/platform"
)

func TestCheckpointCreateUpdate(t *testing.T) {
	s := newCheckpointStore(t)
	ctx := testContext(t)
	cp, err := s.LoadCheckpoint(ctx, "orders.projection")
	if err != nil {
		t.Fatal(err)
	}
	if cp != (platform.Checkpoint{Name: "orders.projection"}) {
		t.Fatalf("missing checkpoint loaded as %+v", cp)
	}
	cp.Position = 17
	saved, err := s.SaveCheckpoint(ctx, cp)
	if err != nil {
		t.Fatal(err)
	}
	if saved.Revision == 0 || saved.Position != 17 || saved.Name != cp.Name {
		t.Fatalf("created %+v", saved)
	}
	saved.Position = 1 << 63
	updated, err := s.SaveCheckpoint(ctx, saved)
	if err != nil {
		t.Fatal(err)
	}
	if updated.Revision <= saved.Revision {
		t.Fatalf("revision %d after update of revision %d", updated.Revision, saved.Revision)
	}
	loaded, err := s.LoadCheckpoint(ctx, cp.Name)
	if err != nil {
		t.Fatal(err)
	}
	if loaded != updated {
		t.Fatalf("loaded %+v, saved %+v", loaded, updated)
	}
	entry, err := s.kv.Get(ctx, cp.Name)
	if err != nil || string(entry.Value()) != "9223372036854775808" {
		t.Fatalf("stored value %q, %v: want decimal text", entry.Value(), err)
	}
}

func TestCheckpointConflict(t *testing.T) {
	s := newCheckpointStore(t)
	ctx := testContext(t)
	first, err := s.SaveCheckpoint(ctx, platform.Checkpoint{Name: "mailer", Position: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveCheckpoint(ctx, platform.Checkpoint{Name: "mailer", Position: 2}); !isCheckpointConflict(err, "mailer") {
		t.Fatalf("create over an existing checkpoint: got %v", err)
	}
	second, err := s.SaveCheckpoint(ctx, platform.Checkpoint{Name: "mailer", Position: 3, Revision: first.Revision})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.SaveCheckpoint(ctx, platform.Checkpoint{Name: "mailer", Position: 4, Revision: first.Revision})
	if !isCheckpointConflict(err, "mailer") {
		t.Fatalf("update at a stale revision: got %v", err)
	}
	for _, rev := range []uint64{first.Revision, second.Revision} {
		if want := strconv.FormatUint(rev, 10); !strings.Contains(err.Error(), want) {
			t.Fatalf("%v: does not name revision %s", err, want)
		}
	}
	if _, err := s.SaveCheckpoint(ctx, platform.Checkpoint{Name: "other", Position: 1, Revision: second.Revision}); !isCheckpointConflict(err, "other") {
		t.Fatalf("update of a missing checkpoint: got %v", err)
	}
}

func isCheckpointConflict(err error, name string) bool {
	return errors.Is(err, platform.ErrCheckpointConflict) && strings.Contains(err.Error(), name)
}

func TestCheckpointRace(t *testing.T) {
	s := newCheckpointStore(t)
	ctx := testContext(t)
	for _, base := range []uint64{0, 1} {
		var start platform.Checkpoint
		if base != 0 {
			var err error
			if start, err = s.LoadCheckpoint(ctx, "race"); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i := range errs {
			wg.Go(func() {
				_, errs[i] = s.SaveCheckpoint(ctx, platform.Checkpoint{Name: "race", Position: uint64(10 + i), Revision: start.Revision})
			})
		}
		wg.Wait()
		if (errs[0] == nil) == (errs[1] == nil) {
			t.Fatalf("from revision %d: errors %v and %v: want exactly one winner", start.Revision, errs[0], errs[1])
		}
		for _, err := range errs {
			if err != nil && !errors.Is(err, platform.ErrCheckpointConflict) {
				t.Fatalf("loser got %v, want ErrCheckpointConflict", err)
			}
		}
	}
}

func TestCheckpointNames(t *testing.T) {
	s := newCheckpointStore(t)
	ctx := testContext(t)
	for _, name := range []string{"", "a b", "a..b", ".a", "a.", "a*", "a>"} {
		if _, err := s.LoadCheckpoint(ctx, name); !errors.Is(err, platform.ErrInvalidArgument) {
			t.Errorf("load %q: got %v, want ErrInvalidArgument", name, err)
		}
		if _, err := s.SaveCheckpoint(ctx, platform.Checkpoint{Name: name}); !errors.Is(err, platform.ErrInvalidArgument) {
			t.Errorf("save %q: got %v, want ErrInvalidArgument", name, err)
		}
	}
}

func TestCheckpointCorrupt(t *testing.T) {
	s := newCheckpointStore(t)
	ctx := testContext(t)
	if _, err := s.kv.Put(ctx, "broken", []byte("twelve")); err != nil {
		t.Fatal(err)
	}
	_, err := s.LoadCheckpoint(ctx, "broken")
	if platform.CodeOf(err) != platform.CodeCorruptEvent || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("got %v, want a %s error naming the key", err, platform.CodeCorruptEvent)
	}
}
