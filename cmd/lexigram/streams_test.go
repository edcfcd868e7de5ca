package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/embedded/embeddedtest"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// runStreams runs `lexigram streams args...` and returns what it printed.
func runStreams(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := streamsCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// TestStreamsInfo lists a node's streams with their size and durability:
// the event store's file stream with two events and a memory stream, the
// sync setting unknown without system account access (and the output
// says how to fix that), as a table, as JSON and through the binary.
func TestStreamsInfo(t *testing.T) {
	t.Setenv("LEXIGRAM_CONFIG", "")
	ctx := context.Background()
	srv, js, store := newInvoiceStore(t)
	for i := range 2 {
		if _, err := store.Append(ctx, platform.StreamID{Type: "invoice", ID: fmt.Sprint(i)}, platform.NoStream(), []platform.Envelope{{Event: invoiceIssued{Amount: i}}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "SCRATCH", Subjects: []string{"scratch.>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	url := srv.ClientURL()

	out, err := runStreams(t, "info", "--nats-url", url)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	lines := strings.Split(out, "\n")
	if !strings.HasPrefix(lines[0], "STREAM") || !strings.Contains(lines[0], "DURABILITY") {
		t.Fatalf("no header:\n%s", out)
	}
	events, scratch := fields(lines[1]), fields(lines[2])
	if events[0] != "EVENTS" || events[1] != "2" || events[3] != "events.>" || events[4] != "1" || events[5] != "file" ||
		!strings.HasSuffix(lines[1], "sync setting unknown (no system account access), on 1 replica (any)") {
		t.Errorf("EVENTS row: %q", lines[1])
	}
	if scratch[0] != "SCRATCH" || scratch[1] != "0" || scratch[5] != "memory" || !strings.HasSuffix(lines[2], "in memory only (any)") {
		t.Errorf("SCRATCH row: %q", lines[2])
	}
	if !strings.Contains(out, "The servers' sync setting is unknown (no system account access): pass --system-url") {
		t.Errorf("no hint for the unknown sync setting:\n%s", out)
	}

	out, err = runStreams(t, "info", "--nats-url", url, "--json", "EVENTS")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var got struct {
		Streams     []streamRow `json:"streams"`
		SyncProblem string      `json:"sync_problem"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(got.Streams) != 1 || got.Streams[0].Name != "EVENTS" || got.Streams[0].Messages != 2 || got.Streams[0].Bytes == 0 ||
		got.Streams[0].Durability.Sync != "unknown" || got.Streams[0].Durability.Level != "any" || got.SyncProblem != "no system account access" {
		t.Fatalf("JSON: %s", out)
	}

	if out, err := runStreams(t, "info", "--nats-url", url, "NOPE"); err == nil || !strings.Contains(err.Error(), `stream "NOPE"`) {
		t.Fatalf("an unknown stream: %v\n%s", err, out)
	}

	// The binary has the command.
	cmd := exec.Command(lexigramBinary(t), "streams", "info", "--nats-url", url, "SCRATCH")
	cmd.Env = append(os.Environ(), "LEXIGRAM_CONFIG=")
	b, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(b), "in memory only (any)") {
		t.Fatalf("lexigram streams info: %v\n%s", err, b)
	}
}

func fields(line string) []string {
	f := strings.Fields(line)
	for len(f) < 7 {
		f = append(f, "")
	}
	return f
}

// TestStreamsInfoSystemAccount: with a system-account connection the
// servers' sync setting is read and reported.
func TestStreamsInfoSystemAccount(t *testing.T) {
	t.Setenv("LEXIGRAM_CONFIG", "")
	s := accountsServer(t)
	app, err := nats.Connect(s.ClientURL(), nats.UserInfo("app", "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	js, _ := jetstream.New(app)
	if _, err := lxjs.New(context.Background(), js, lxjs.Options{Logger: embeddedtest.Logger(t)}); err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(s.ClientURL(), "nats://")
	out, err := runStreams(t, "info", "--nats-url", "nats://app:app@"+host, "--system-url", "nats://sys:sys@"+host)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "fsync before ack on 1 replica (fsync)") || strings.Contains(out, "unknown") {
		t.Fatalf("with a system-account connection:\n%s", out)
	}
	if out, err := runStreams(t, "info", "--nats-url", "nats://app:app@"+host, "--system-url", "nats://sys:wrong@"+host); err == nil ||
		!strings.Contains(err.Error(), "credentials") || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("bad system credentials: %v\n%s", err, out)
	}
}

// accountsServer is a nats-server with sync_interval: always, a system
// account (user sys) and an application account with JetStream (app).
func accountsServer(t *testing.T) *server.Server {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "server.conf")
	conf := fmt.Sprintf(`listen: "127.0.0.1:-1"
jetstream { store_dir: %q, sync_interval: always }
accounts {
  SYS { users: [{user: sys, password: sys}] }
  APP { jetstream: enabled, users: [{user: app, password: app}] }
}
system_account: SYS
`, dir)
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatal(err)
	}
	o.NoLog, o.NoSigs = true, true
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}
