package kvsnapshot

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// startJetStream runs an embedded JetStream server for one test, reached
// through an in-process pipe so no port is needed.
func startJetStream(t testing.TB) jetstream.JetStream {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		NoLog: true, NoSigs: true, DontListen: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	nc, err := nats.Connect("", nats.InProcessServer(s))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newSnapshotStore(t testing.TB, opts SnapshotOptions) (*SnapshotStore, jetstream.JetStream) {
	t.Helper()
	js := startJetStream(t)
	s, err := NewSnapshotStore(testContext(t), js, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, js
}

func newCheckpointStore(t testing.TB) *CheckpointStore {
	t.Helper()
	s, err := NewCheckpointStore(testContext(t), startJetStream(t), CheckpointOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
