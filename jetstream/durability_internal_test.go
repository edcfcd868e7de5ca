package jetstream

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/platform"
)

// TestStreamDurabilityWeakest: the weakest server holding the stream
// decides, servers that do not hold it do not count, and one whose
// setting is missing makes it unknown with the reason.
func TestStreamDurabilityWeakest(t *testing.T) {
	info := func(replicas int, leader string, others ...string) *jetstream.StreamInfo {
		i := &jetstream.StreamInfo{Config: jetstream.StreamConfig{Replicas: replicas, Storage: jetstream.FileStorage}}
		if leader != "" {
			i.Cluster = &jetstream.ClusterInfo{Leader: leader}
			for _, o := range others {
				i.Cluster.Replicas = append(i.Cluster.Replicas, &jetstream.PeerInfo{Name: o})
			}
		}
		return i
	}
	always, lazy, lazier, old := ServerSync{Always: true}, ServerSync{Interval: time.Minute}, ServerSync{Interval: 2 * time.Minute}, ServerSync{}
	syncs := SyncSettings{servers: map[string]ServerSync{"a": always, "b": always, "c": always, "d": lazy, "e": lazier, "f": old}, complete: true, problem: "x"}
	for _, tc := range []struct {
		name string
		info *jetstream.StreamInfo
		want string
	}{
		{"all always", info(3, "b", "a", "c"), "fsync before ack on 3 replicas"},
		{"one lazy", info(3, "a", "d", "b"), "flushed to the OS, fsync every 1m0s, on 3 replicas"},
		{"longest interval", info(3, "e", "d", "a"), "flushed to the OS, fsync every 2m0s, on 3 replicas"},
		{"interval not reported", info(3, "d", "f", "a"), "flushed to the OS, fsync in the background (interval not reported), on 3 replicas"},
		{"missing server", info(3, "a", "b", "z"), "sync setting unknown (x), on 3 replicas"},
		{"peers not known yet: every server answered", info(3, ""), "flushed to the OS, fsync in the background (interval not reported), on 3 replicas"},
		{"peers incomplete", info(3, "a", "b"), "flushed to the OS, fsync in the background (interval not reported), on 3 replicas"},
	} {
		if got := StreamDurability(tc.info, syncs).String(); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	incomplete := SyncSettings{servers: map[string]ServerSync{"a": always}, problem: "no VARZ answer from 2 of 3 servers within 2s"}
	if got, want := StreamDurability(info(3, ""), incomplete).String(), "sync setting unknown (no VARZ answer from 2 of 3 servers within 2s), on 3 replicas"; got != want {
		t.Errorf("incomplete answers: %q, want %q", got, want)
	}
	async := info(1, "a")
	async.Config.PersistMode = jetstream.AsyncPersistMode
	if d := StreamDurability(async, syncs); d.Level() != platform.DurabilityAny || d.String() != "acknowledged before it is written (persist mode async), on 1 replica" {
		t.Errorf("async persist: %q at %s", d, d.Level())
	}
}

// TestSyncSettingsNeeds: VARZ is read again only for a changed set of
// servers one of which has no setting.
func TestSyncSettingsNeeds(t *testing.T) {
	s := SyncSettings{servers: map[string]ServerSync{"a": {}, "b": {}}, asked: []string{"a", "b"}}
	for _, tc := range []struct {
		peers []string
		want  bool
	}{{[]string{"a", "b"}, false}, {[]string{"a"}, false}, {[]string{"a", "c"}, true}, {nil, false}} {
		if got := s.needs(tc.peers); got != tc.want {
			t.Errorf("needs(%v) = %v", tc.peers, got)
		}
	}
	if SyncFor(ServerSync{Always: true}).needs([]string{"z"}) {
		t.Error("a setting given for all servers is read again")
	}
}
