package platform_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/lexigram/events/platform"
)

func TestDurabilityLevels(t *testing.T) {
	file := func(sync platform.SyncMode, replicas int) platform.Durability {
		return platform.Durability{Storage: "file", Replicas: replicas, Sync: sync, SyncInterval: 2 * time.Minute, Source: "VARZ"}
	}
	for _, tc := range []struct {
		d     platform.Durability
		text  string
		level platform.DurabilityLevel
	}{
		{file(platform.SyncAlways, 1), "fsync before ack on 1 replica", platform.DurabilityFsync},
		{file(platform.SyncAlways, 3), "fsync before ack on 3 replicas", platform.DurabilityFsync},
		{file(platform.SyncPeriodic, 1), "flushed to the OS, fsync every 2m0s, on 1 replica", platform.DurabilityAny},
		{file(platform.SyncPeriodic, 2), "flushed to the OS, fsync every 2m0s, on 2 replicas", platform.DurabilityAny},
		{file(platform.SyncPeriodic, 3), "flushed to the OS, fsync every 2m0s, on 3 replicas", platform.DurabilityReplicated},
		{platform.Durability{Storage: "file", Replicas: 3, Sync: platform.SyncUnknown, Source: "no system account access"},
			"sync setting unknown (no system account access), on 3 replicas", platform.DurabilityReplicated},
		{platform.Durability{Storage: "file", Replicas: 1, Sync: platform.SyncUnknown}, "sync setting unknown (not read), on 1 replica", platform.DurabilityAny},
		{platform.Durability{Storage: "file", Replicas: 1, Sync: platform.SyncAlways, PersistAsync: true},
			"acknowledged before it is written (persist mode async), on 1 replica", platform.DurabilityAny},
		{platform.Durability{Storage: "memory", Replicas: 1}, "in memory only", platform.DurabilityAny},
		{platform.Durability{Storage: "memory", Replicas: 3, Sync: platform.SyncAlways}, "in memory only, on 3 replicas", platform.DurabilityAny},
		{platform.Durability{}, "durability not reported", platform.DurabilityAny},
	} {
		if got := tc.d.String(); got != tc.text {
			t.Errorf("%+v: String %q, want %q", tc.d, got, tc.text)
		}
		if got := tc.d.Level(); got != tc.level {
			t.Errorf("%q: level %s, want %s", tc.text, got, tc.level)
		}
		// Each level includes the ones below it, and no more.
		for i, l := range platform.DurabilityLevels {
			want := i <= slices.Index(platform.DurabilityLevels, tc.level)
			if got := tc.d.Meets(l); got != want {
				t.Errorf("%q meets %s = %v", tc.text, l, got)
			}
		}
		if !tc.d.Meets("") || tc.d.Meets("durable") {
			t.Errorf("%q: \"\" must always be met, an unknown level never", tc.text)
		}
	}
}

func TestParseDurabilityLevel(t *testing.T) {
	for in, want := range map[string]platform.DurabilityLevel{"": platform.DurabilityAny, "any": platform.DurabilityAny, " Fsync ": platform.DurabilityFsync, "REPLICATED": platform.DurabilityReplicated} {
		if got, err := platform.ParseDurabilityLevel(in); err != nil || got != want {
			t.Errorf("ParseDurabilityLevel(%q) = %q, %v", in, got, err)
		}
	}
	_, err := platform.ParseDurabilityLevel("durable")
	if !errors.Is(err, platform.ErrInvalidArgument) || err.Error() != `LXE-001: durability level "durable": use "any", "replicated" or "fsync"` {
		t.Fatalf("bad level: %v", err)
	}
}

func TestMemoryStoreDurability(t *testing.T) {
	reg := platform.NewRegistry()
	platform.MustRegister[struct{ N int }](reg, "n", 1)
	st := platform.NewMemoryEventStore(platform.MemoryOptions{Registry: reg})
	res, err := st.Append(context.Background(), platform.StreamID{Type: "t", ID: "1"}, platform.NoStream(), []platform.Envelope{{Event: struct{ N int }{1}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Durability.String() != "in memory only" || res.Durability != st.Durability() || res.Durability.Meets(platform.DurabilityReplicated) {
		t.Fatalf("memory append reports %+v", res.Durability)
	}
}
