package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/kvsnapshot"
	"github.com/lexigram/events/platform"
)

// TestSnapshotsCommands: get shows a snapshot's revision and its state
// decoded; delete removes it; get of none says the aggregate loads from
// its events.
func TestSnapshotsCommands(t *testing.T) {
	t.Setenv("LEXIGRAM_CONFIG", "")
	srv := embeddedtest.Server(t)
	js, err := jetstream.New(embeddedtest.Conn(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := kvsnapshot.NewSnapshotStore(t.Context(), js, kvsnapshot.SnapshotOptions{})
	if err != nil {
		t.Fatal(err)
	}
	state, _ := platform.Msgpack.Marshal(struct{ Owner string }{"ada"})
	id := platform.StreamID{Type: "account", ID: "a-1"}
	if err := snaps.SaveSnapshot(t.Context(), platform.Snapshot{Stream: id, Revision: platform.Revision{Version: 7, Position: 70}, SchemaVersion: 2, Codec: "msgpack", State: state, Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		cmd := snapshotsCommand()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(append(args, "--nats-url", srv.ClientURL()))
		err := cmd.ExecuteContext(context.Background())
		return out.String(), err
	}
	out, err := run("get", "account", "a-1", "--json")
	var got struct {
		Version, Position uint64
		SchemaVersion     int `json:"schema_version"`
		State             map[string]any
	}
	if err != nil || json.Unmarshal([]byte(out), &got) != nil || got.Version != 7 || got.Position != 70 || got.SchemaVersion != 2 || got.State["Owner"] != "ada" {
		t.Fatalf("snapshots get --json: %v, %+v\n%s", err, got, out)
	}
	if out, err := run("get", "account", "a-1"); err != nil || !strings.Contains(out, `"Owner": "ada"`) {
		t.Fatalf("snapshots get: %v\n%s", err, out)
	}
	if out, err := run("delete", "account", "a-1"); err != nil || !strings.Contains(out, "deleted") {
		t.Fatalf("snapshots delete: %v\n%s", err, out)
	}
	if _, err := run("get", "account", "a-1"); err == nil || !strings.Contains(err.Error(), "no snapshot") {
		t.Fatalf("get after delete: %v, want no snapshot", err)
	}
	if _, err := run("get", "account", ""); err == nil {
		t.Fatal("get of an empty ID succeeded")
	}
}
