package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/encryption"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

type patientAdmitted struct {
	Name string `lexigram:"personal"`
	Ward string
}

func keyLine(t *testing.T, id string) string {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	return id + ":" + base64.StdEncoding.EncodeToString(key)
}

// TestKeysRewrap rotates the master key with `lexigram keys rewrap`: it
// prints its progress, moves the data key to the new master key and
// retires the old one, after which the new key alone reads the events.
func TestKeysRewrap(t *testing.T) {
	t.Setenv("LEXIGRAM_CONFIG", "")
	ctx := context.Background()
	srv := embeddedtest.Server(t)
	js, err := jetstream.New(embeddedtest.Conn(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	m1, m2 := keyLine(t, "m1"), keyLine(t, "m2")
	write := func(name string, lines ...string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	open := func(file string) (*lxjs.EventStore, error) {
		keys, err := encryption.FileKeys(file)
		if err != nil {
			return nil, err
		}
		reg := platform.NewRegistry()
		platform.MustRegister[patientAdmitted](reg, "patient.admitted", 1)
		ring, err := encryption.Open(ctx, js, keys, encryption.Options{Registry: reg})
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { _ = ring.Close() })
		return lxjs.New(ctx, js, lxjs.Options{Registry: reg})
	}
	st, err := open(write("old.keys", m1))
	if err != nil {
		t.Fatal(err)
	}
	patient := platform.StreamID{Type: "patient", ID: "p-1"}
	if _, err := st.Append(ctx, patient, platform.NoStream(), []platform.Envelope{{Event: patientAdmitted{Name: "Ada", Ward: "B"}}}); err != nil {
		t.Fatal(err)
	}

	run := func(args ...string) (string, error) {
		cmd := keysCommand()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(append(args, "--nats-url", srv.ClientURL()))
		err := cmd.ExecuteContext(ctx)
		return out.String(), err
	}
	if out, err := run("rewrap", "--key-file", write("lost.keys", keyLine(t, "m3"))); err == nil || !strings.Contains(err.Error(), `master key "m1", which the key provider does not hold`) {
		t.Fatalf("rewrap without m1: %v\n%s", err, out)
	}
	out, err := run("rewrap", "--key-file", write("rotated.keys", m2, m1))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"rewrap: 1/1 data keys: 1 rewrapped", "done: 1 of 1 data keys rewrapped to m2", "master keys retired: m1"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	st, err = open(write("new.keys", m2))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for e, err := range st.Read(ctx, patient, platform.Revision{}) {
		if err != nil || e.Event != (patientAdmitted{Name: "Ada", Ward: "B"}) {
			t.Fatalf("read after the rotation: %+v, %v", e.Event, err)
		}
		n++
	}
	if n != 1 {
		t.Fatalf("read %d events after the rotation, want 1", n)
	}
}
