package jetstream_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/embedded/embeddedtest"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/platform/storetest"
)

// Each subtest gets its own stream on one shared server or cluster: a
// fresh store without paying for a fresh server every time.
var streamCounter atomic.Int64

func harnessOn(js jetstream.JetStream, replicas int, codec platform.Codec, group bool) func(t *testing.T) storetest.Harness {
	return func(t *testing.T) storetest.Harness {
		n := streamCounter.Add(1)
		opts := lxjs.Options{
			Stream:        fmt.Sprint("CONF", n),
			SubjectPrefix: fmt.Sprint("conf", n),
			Replicas:      replicas,
			Codec:         codec,
			Registry:      platform.NewRegistry(),
			Logger:        embeddedtest.Logger(t),
		}
		if group {
			lxjs.AlwaysGroup(&opts)
		}
		open := func(t *testing.T, reg *platform.Registry) platform.EventStore {
			o := opts
			o.Registry = reg
			st, err := lxjs.New(context.Background(), js, o)
			if err != nil {
				t.Fatal(err)
			}
			return st
		}
		// The streams stay until the server goes: nats-server 2.15.2
		// removes an account's emptied streams directory in a goroutine
		// after deleting its last stream, which can fail a stream created
		// at that moment ("error creating store for stream", 10049).
		st := open(t, opts.Registry)
		return storetest.Harness{
			Store:        st,
			Registry:     opts.Registry,
			MaxEventSize: st.(*lxjs.EventStore).MaxEventSize(),
			Reopen:       open,
		}
	}
}

// conformance runs the suite on a throwaway server (R1) or three-node
// cluster (R3), each subtest on its own stream.
func conformance(t *testing.T, replicas int, codec platform.Codec, group bool) {
	var nc *nats.Conn
	if replicas == 1 {
		nc = embeddedtest.Conn(t, embeddedtest.Server(t))
	} else {
		if testing.Short() {
			t.Skip("three-node cluster")
		}
		nc = embeddedtest.Cluster(t).Connect(t)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	storetest.TestEventStore(t, harnessOn(js, replicas, codec, group))
}

func TestConformanceR1File(t *testing.T)     { conformance(t, 1, platform.Msgpack, false) }
func TestConformanceR1FileJSON(t *testing.T) { conformance(t, 1, platform.JSON, false) }
func TestConformanceR3(t *testing.T)         { conformance(t, 3, platform.Msgpack, false) }

// The suite again with group commit: its racing appends form groups, and
// every caller must still get exactly its own result.
func TestConformanceR1FileGroupCommit(t *testing.T) { conformance(t, 1, platform.Msgpack, true) }
func TestConformanceR3GroupCommit(t *testing.T)     { conformance(t, 3, platform.Msgpack, true) }
