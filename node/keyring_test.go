package node_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/config"
	"github.com/lexigram/events/embedded/embeddedtest"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/node"
	"github.com/lexigram/events/platform"
)

type memberJoined struct {
	Name string `lexigram:"personal"`
	Note string
}

// TestOpenKeyring: off without a key source; with a key file it seals
// the store's events (whole types whole), and a bad section is refused.
func TestOpenKeyring(t *testing.T) {
	srv := embeddedtest.Server(t)
	js, err := jetstream.New(embeddedtest.Conn(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	reg := platform.NewRegistry()
	platform.MustRegister[memberJoined](reg, "member.joined", 1)
	if ring, err := node.OpenKeyring(t.Context(), js, cfg, config.Encryption{}, reg, nil, nil); ring != nil || err != nil || reg.Sealer() != nil {
		t.Fatalf("encryption off: %v, %v", ring, err)
	}
	if _, err := node.OpenKeyring(t.Context(), js, cfg, config.Encryption{KeyFile: "k", Mode: "partial"}, reg, nil, nil); err == nil {
		t.Fatal("a bad encryption section was accepted")
	}
	key := make([]byte, 32)
	rand.Read(key)
	path := filepath.Join(t.TempDir(), "master.keys")
	if err := os.WriteFile(path, []byte("m1:"+base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	store, err := lxjs.New(t.Context(), js, lxjs.Options{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	ring, err := node.OpenKeyring(t.Context(), js, cfg, config.Encryption{KeyFile: path, WholeTypes: []string{"member.joined"}}, reg, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ring.Close()
	member := platform.StreamID{Type: "member", ID: "m-1"}
	if _, err := store.Append(t.Context(), member, platform.NoStream(), []platform.Envelope{{Event: memberJoined{Name: "Ada", Note: "readable?"}}}); err != nil {
		t.Fatal(err)
	}
	raw, err := js.Stream(t.Context(), store.StreamName())
	if err != nil {
		t.Fatal(err)
	}
	m, err := raw.GetMsg(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get(lxjs.KeyHeader) == "" || containsAny(m.Data, "Ada", "readable?") {
		t.Fatalf("stored %q with headers %v: want it sealed whole", m.Data, m.Header)
	}
	if err := ring.ForgetAggregate(t.Context(), member); err != nil {
		t.Fatal(err)
	}
	for e, err := range store.Read(t.Context(), member, platform.Revision{}) {
		if err != nil || !e.Shredded || e.Event != (memberJoined{}) {
			t.Fatalf("after Forget: %+v, %v", e, err)
		}
	}
	if _, err := store.Append(t.Context(), member, platform.Any(), []platform.Envelope{{Event: memberJoined{Name: "Ada"}}}); !errors.Is(err, platform.ErrInvalidArgument) {
		t.Fatalf("append after Forget: %v", err)
	}
}

func containsAny(b []byte, ss ...string) bool {
	for _, s := range ss {
		if bytes.Contains(b, []byte(s)) {
			return true
		}
	}
	return false
}

// TestNodeWithEncryption: a node whose configuration names master keys
// seals its store's events and its snapshots, and offers Forget.
func TestNodeWithEncryption(t *testing.T) {
	key := make([]byte, 32)
	rand.Read(key)
	dir := t.TempDir()
	path := filepath.Join(dir, "master.keys")
	if err := os.WriteFile(path, []byte("m1:"+base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.NATS.EmbeddedServer.DataDir = filepath.Join(dir, "data")
	cfg.NATS.EmbeddedServer.DontListen = true
	cfg.Encryption.KeyFile = path
	reg := platform.NewRegistry()
	platform.MustRegister[memberJoined](reg, "member.joined", 1)
	n, err := node.Open(t.Context(), cfg, node.Options{Registry: reg, Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if n.Keys() == nil {
		t.Fatal("a node with encryption.key_file has no key ring")
	}
	member := platform.StreamID{Type: "member", ID: "m-2"}
	if _, err := n.Store().Append(t.Context(), member, platform.NoStream(), []platform.Envelope{{Event: memberJoined{Name: "Grace", Note: "visible"}}}); err != nil {
		t.Fatal(err)
	}
	stream, err := n.JetStream().Stream(t.Context(), n.Store().StreamName())
	if err != nil {
		t.Fatal(err)
	}
	m, err := stream.GetMsg(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if containsAny(m.Data, "Grace") || !containsAny(m.Data, "visible") {
		t.Fatalf("stored %q: want the personal field sealed and the rest readable", m.Data)
	}
	state, _ := platform.Msgpack.Marshal(map[string]string{"Name": "Grace"})
	if err := n.Snapshots().SaveSnapshot(t.Context(), platform.Snapshot{Stream: member, Revision: platform.Revision{Version: 1, Position: 1}, Codec: "msgpack", State: state}); err != nil {
		t.Fatal(err)
	}
	if err := n.Keys().ForgetAggregate(t.Context(), member); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := n.Snapshots().LoadSnapshot(t.Context(), member); ok || err != nil {
		t.Fatalf("a forgotten aggregate's snapshot loaded (%v, %v): want none", ok, err)
	}
	for e, err := range n.Store().Read(t.Context(), member, platform.Revision{}) {
		if err != nil || !e.Shredded || e.Event.(memberJoined).Name != "[forgotten]" || e.Event.(memberJoined).Note != "visible" {
			t.Fatalf("after Forget: %+v, %v", e, err)
		}
	}
}
