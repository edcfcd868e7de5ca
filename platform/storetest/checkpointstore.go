package storetest

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/lexigram/events/platform"
)

// TestCheckpointStore runs the checkpoint store conformance suite. newStore
// is called once per subtest and must return an empty store.
func TestCheckpointStore(t *testing.T, newStore func(t *testing.T) platform.CheckpointStore) {
	t.Helper()
	tests := []struct {
		name string
		f    func(t *testing.T, s platform.CheckpointStore, prefix string)
	}{
		{"LoadMissing", testCheckpointMissing},
		{"SaveAndLoad", testCheckpointSave},
		{"StaleRevision", testCheckpointStale},
		{"BadNames", testCheckpointBadNames},
		{"NamesStaySeparate", testCheckpointSeparate},
		{"Race", testCheckpointRace},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			if s == nil {
				t.Fatal("storetest: newStore returned nil")
			}
			tc.f(t, s, uniqueType("cp"))
		})
	}
}

func mustLoadCheckpoint(t *testing.T, s platform.CheckpointStore, name string) platform.Checkpoint {
	t.Helper()
	cp, err := s.LoadCheckpoint(t.Context(), name)
	if err != nil {
		t.Fatalf("LoadCheckpoint(%q): %v", name, err)
	}
	return cp
}

func mustSaveCheckpoint(t *testing.T, s platform.CheckpointStore, cp platform.Checkpoint) platform.Checkpoint {
	t.Helper()
	saved, err := s.SaveCheckpoint(t.Context(), cp)
	if err != nil {
		t.Fatalf("SaveCheckpoint(%+v): %v", cp, err)
	}
	if saved.Name != cp.Name || saved.Position != cp.Position || saved.Revision == 0 || saved.Revision == cp.Revision {
		t.Fatalf("SaveCheckpoint(%+v) = %+v: want the same name and position and a new, non-zero revision", cp, saved)
	}
	return saved
}

func testCheckpointMissing(t *testing.T, s platform.CheckpointStore, prefix string) {
	name := prefix + ".missing"
	if cp := mustLoadCheckpoint(t, s, name); cp.Position != 0 || cp.Revision != 0 {
		t.Fatalf("LoadCheckpoint of a missing checkpoint = %+v, want position and revision 0", cp)
	}
}

func testCheckpointSave(t *testing.T, s platform.CheckpointStore, prefix string) {
	name := prefix + ".projection"
	cp := mustLoadCheckpoint(t, s, name)
	cp.Position = 17
	first := mustSaveCheckpoint(t, s, cp)
	if got := mustLoadCheckpoint(t, s, name); got != first {
		t.Fatalf("LoadCheckpoint after the first save = %+v, want %+v", got, first)
	}
	first.Position = 1 << 62
	second := mustSaveCheckpoint(t, s, first)
	if got := mustLoadCheckpoint(t, s, name); got != second {
		t.Fatalf("LoadCheckpoint after the second save = %+v, want %+v", got, second)
	}
	// A checkpoint may move back (a projection rebuilt from scratch).
	second.Position = 0
	third := mustSaveCheckpoint(t, s, second)
	if got := mustLoadCheckpoint(t, s, name); got != third {
		t.Fatalf("LoadCheckpoint after moving back = %+v, want %+v", got, third)
	}
}

func testCheckpointStale(t *testing.T, s platform.CheckpointStore, prefix string) {
	ctx := t.Context()
	name := prefix + ".stale"
	first := mustSaveCheckpoint(t, s, platform.Checkpoint{Name: name, Position: 5})
	second := mustSaveCheckpoint(t, s, platform.Checkpoint{Name: name, Position: 9, Revision: first.Revision})
	for _, stale := range []platform.Checkpoint{
		{Name: name, Position: 100, Revision: first.Revision},                  // an older revision
		{Name: name, Position: 100, Revision: 0},                               // "create" when it exists
		{Name: name, Position: 100, Revision: second.Revision + 1_000_000_000}, // one never handed out
	} {
		_, err := s.SaveCheckpoint(ctx, stale)
		checkErr(t, fmt.Sprintf("SaveCheckpoint with revision %d (current %d)", stale.Revision, second.Revision), err, platform.ErrCheckpointConflict)
		if got := mustLoadCheckpoint(t, s, name); got != second {
			t.Fatalf("LoadCheckpoint after a conflicting save = %+v, want %+v", got, second)
		}
	}
	// A revision on a checkpoint that does not exist is stale too.
	_, err := s.SaveCheckpoint(ctx, platform.Checkpoint{Name: prefix + ".new", Position: 1, Revision: second.Revision})
	checkErr(t, "SaveCheckpoint with a revision on a missing checkpoint", err, platform.ErrCheckpointConflict)
}

func testCheckpointBadNames(t *testing.T, s platform.CheckpointStore, prefix string) {
	ctx := t.Context()
	for _, name := range []string{"", "a b", "a/b", "a*", ">", "a>", "ü", "a\nb", "a:b", strings.Repeat("n", 129)} {
		_, err := s.LoadCheckpoint(ctx, name)
		checkErr(t, fmt.Sprintf("LoadCheckpoint(%q)", name), err, platform.ErrInvalidArgument)
		_, err = s.SaveCheckpoint(ctx, platform.Checkpoint{Name: name, Position: 1})
		checkErr(t, fmt.Sprintf("SaveCheckpoint(%q)", name), err, platform.ErrInvalidArgument)
	}
	// 128 bytes and every allowed kind of byte are fine.
	for _, suffix := range []string{strings.Repeat("n", 128-len(prefix)-1), "a.b-c_D.9"} {
		name := prefix + "." + suffix
		mustSaveCheckpoint(t, s, platform.Checkpoint{Name: name, Position: 3})
	}
}

func testCheckpointSeparate(t *testing.T, s platform.CheckpointStore, prefix string) {
	names := []string{prefix + ".a.b", prefix + ".a_b", prefix + ".a-b", prefix + ".A.b", prefix + ".a", prefix + ".a.b.c"}
	saved := map[string]platform.Checkpoint{}
	for i, name := range names {
		saved[name] = mustSaveCheckpoint(t, s, platform.Checkpoint{Name: name, Position: uint64(i + 1)})
	}
	for _, name := range names {
		if got := mustLoadCheckpoint(t, s, name); got != saved[name] {
			t.Fatalf("LoadCheckpoint(%q) = %+v, want %+v", name, got, saved[name])
		}
	}
}

func testCheckpointRace(t *testing.T, s platform.CheckpointStore, prefix string) {
	name := prefix + ".race"
	cur := mustLoadCheckpoint(t, s, name)
	for round := range 50 {
		racers := 2 + round%7
		type outcome struct {
			cp  platform.Checkpoint
			err error
		}
		out := make([]outcome, racers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for g := range out {
			cp := cur
			cp.Position = uint64(round*100 + g)
			wg.Go(func() {
				<-start
				out[g].cp, out[g].err = s.SaveCheckpoint(t.Context(), cp)
			})
		}
		close(start)
		wg.Wait()
		var won []platform.Checkpoint
		for _, o := range out {
			if o.err == nil {
				won = append(won, o.cp)
				continue
			}
			checkErr(t, fmt.Sprintf("round %d: a losing SaveCheckpoint", round), o.err, platform.ErrCheckpointConflict)
		}
		if len(won) != 1 {
			t.Fatalf("round %d: %d of %d saves from revision %d succeeded, want exactly 1", round, len(won), racers, cur.Revision)
		}
		if got := mustLoadCheckpoint(t, s, name); got != won[0] {
			t.Fatalf("round %d: LoadCheckpoint = %+v, want the winner %+v", round, got, won[0])
		}
		cur = won[0]
	}
}
