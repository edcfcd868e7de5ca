package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/lexigram/events/embedded"
	"github.com/lexigram/events/embedded/embeddedtest"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// syncOf is an embedded server's fsync setting, known in process.
func syncOf(t *testing.T, s *embedded.Server) *lxjs.ServerSync {
	t.Helper()
	c := s.NATS().JetStreamConfig()
	if c == nil {
		t.Fatal("the embedded server has no JetStream")
	}
	return &lxjs.ServerSync{Always: c.SyncAlways, Interval: c.SyncInterval, Source: "embedded server"}
}

// openOn opens a store on nc with opts changed by f.
func openOn(t *testing.T, nc *nats.Conn, f func(*lxjs.Options)) (*lxjs.EventStore, error) {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	o := lxjs.Options{Registry: testRegistry(), Logger: embeddedtest.Logger(t)}
	if f != nil {
		f(&o)
	}
	return lxjs.New(t.Context(), js, o)
}

// appendDurability appends one event and returns the durability its result reports.
func appendDurability(t *testing.T, st platform.EventStore) platform.Durability {
	t.Helper()
	res, err := st.Append(t.Context(), platform.StreamID{Type: "order", ID: nuid.Next()}, platform.NoStream(), events(itemAdded{SKU: "a"}))
	if err != nil {
		t.Fatal(err)
	}
	return res.Durability
}

// TestDurabilityEmbedded: the embedded server's setting, given in
// process, is reported on open and on every append: single, batch and
// group commit; a requirement it meets opens, one it does not refuses to.
func TestDurabilityEmbedded(t *testing.T) {
	t.Run("fsync", func(t *testing.T) {
		srv := embeddedtest.Server(t)
		st, err := openOn(t, embeddedtest.Conn(t, srv), func(o *lxjs.Options) {
			o.ServerSync, o.RequireDurability = syncOf(t, srv), platform.DurabilityFsync
			lxjs.AlwaysGroup(o)
		})
		if err != nil {
			t.Fatal(err)
		}
		want := "fsync before ack on 1 replica"
		if d := st.Durability(); d.String() != want || d.Level() != platform.DurabilityFsync || d.Source != "embedded server" || d.SyncInterval != 0 {
			t.Fatalf("durability %+v (%q), want %q at level fsync from the embedded server", d, d, want)
		}
		// Group commit: concurrent appends share batches; each result says it.
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := range 16 {
			wg.Go(func() {
				res, err := st.Append(t.Context(), platform.StreamID{Type: "order", ID: fmt.Sprint("g", i)}, platform.NoStream(), events(orderPlaced{"c"}, itemAdded{SKU: "a"}))
				if err == nil && res.Durability.String() != want {
					err = fmt.Errorf("append %d reports %q", i, res.Durability)
				}
				if err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if st.GroupCommitStats().Groups == 0 && st.GroupCommitStats().Appends == 0 {
			t.Log("no group formed; the single path was checked")
		}
	})
	t.Run("interval", func(t *testing.T) {
		srv := embeddedtest.Server(t, func(o *embedded.Options) { o.FsyncInterval = 30 * time.Second })
		nc := embeddedtest.Conn(t, srv)
		st, err := openOn(t, nc, func(o *lxjs.Options) { o.ServerSync = syncOf(t, srv) })
		if err != nil {
			t.Fatal(err)
		}
		if got, want := appendDurability(t, st).String(), "flushed to the OS, fsync every 30s, on 1 replica"; got != want {
			t.Fatalf("append reports %q, want %q", got, want)
		}
		_, err = openOn(t, nc, func(o *lxjs.Options) {
			o.ServerSync, o.RequireDurability = syncOf(t, srv), platform.DurabilityReplicated
		})
		wantRefusal(t, err, "store.require_durability is replicated", "fsync every 30s, on 1 replica (level any)",
			"sync_interval: always", "nats.embedded.fsync_interval: 0", "store.replicas: 3", "store.require_durability: any")
	})
	t.Run("memory", func(t *testing.T) {
		srv := embeddedtest.Server(t)
		nc := embeddedtest.Conn(t, srv)
		st, err := openOn(t, nc, func(o *lxjs.Options) { o.Storage = jetstream.MemoryStorage })
		if err != nil {
			t.Fatal(err)
		}
		if d := appendDurability(t, st); d.String() != "in memory only" || d.Level() != platform.DurabilityAny {
			t.Fatalf("memory stream: append reports %q at %s", d, d.Level())
		}
		_, err = openOn(t, nc, func(o *lxjs.Options) {
			o.Storage, o.ServerSync, o.RequireDurability = jetstream.MemoryStorage, syncOf(t, srv), platform.DurabilityFsync
		})
		wantRefusal(t, err, "in memory only (level any)", "store.storage: file")
	})
	t.Run("unknown", func(t *testing.T) {
		// In process, the connection is in the global account, which the
		// system account does not answer: unknown, and never guessed.
		srv := embeddedtest.Server(t)
		nc := embeddedtest.Conn(t, srv)
		st, err := openOn(t, nc, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := appendDurability(t, st).String(), "sync setting unknown (no system account access), on 1 replica"; got != want {
			t.Fatalf("append reports %q, want %q", got, want)
		}
		_, err = openOn(t, nc, func(o *lxjs.Options) { o.RequireDurability = "FSYNC" })
		wantRefusal(t, err, "store.require_durability is fsync", "sync setting unknown (no system account access)",
			"let the store verify", "$SYS.REQ.SERVER.PING.VARZ", "jetstream.Options.SystemConn", "store.require_durability: any")
	})
	t.Run("bad level", func(t *testing.T) {
		_, err := openOn(t, embeddedtest.Conn(t, embeddedtest.Server(t)), func(o *lxjs.Options) { o.RequireDurability = "durable" })
		if !errors.Is(err, platform.ErrInvalidArgument) || !strings.Contains(err.Error(), `"durable"`) || !strings.Contains(err.Error(), `"replicated"`) {
			t.Fatalf("want an invalid-argument error naming the level and the choices, got %v", err)
		}
	})
}

// wantRefusal checks that err is the durability refusal and says each part.
func wantRefusal(t *testing.T, err error, parts ...string) {
	t.Helper()
	if !errors.Is(err, platform.ErrDurability) {
		t.Fatalf("want a %s refusal, got %v", platform.CodeDurability, err)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("the refusal lacks %q: %v", p, err)
		}
	}
}

// accountsServer is a nats-server with a system account (user sys), an
// application account (app) and one that imports VARZ from the system
// account (imp), with sync setting syncLine.
func accountsServer(t *testing.T, syncLine string) *server.Server {
	t.Helper()
	dir := t.TempDir()
	conf := fmt.Sprintf(`
listen: "127.0.0.1:-1"
server_name: acc1
jetstream { store_dir: %q, %s }
accounts {
  SYS { users: [{user: sys, password: sys}], exports: [{service: "$SYS.REQ.SERVER.PING.VARZ", response_type: stream}] }
  APP { jetstream: enabled, users: [{user: app, password: app}] }
  IMP { jetstream: enabled, users: [{user: imp, password: imp}], imports: [{service: {account: SYS, subject: "$SYS.REQ.SERVER.PING.VARZ"}}] }
}
system_account: SYS
`, dir, syncLine)
	path := filepath.Join(dir, "server.conf")
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

func connectAs(t *testing.T, s *server.Server, user string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo(user, user))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// TestDurabilityExternal reads an external server's sync setting from
// its VARZ: refused to a plain account (unknown, and a requirement above
// any is refused naming why), answered through the system account or an
// import of the subject.
func TestDurabilityExternal(t *testing.T) {
	always := accountsServer(t, "sync_interval: always")
	t.Run("refused", func(t *testing.T) {
		st, err := openOn(t, connectAs(t, always, "app"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if d := st.Durability(); d.Sync != platform.SyncUnknown || d.Source != "no system account access" || d.Level() != platform.DurabilityAny {
			t.Fatalf("durability %+v (%q), want unknown: no system account access", d, d)
		}
		_, err = openOn(t, connectAs(t, always, "app"), func(o *lxjs.Options) { o.RequireDurability = platform.DurabilityReplicated })
		wantRefusal(t, err, "no system account access", "import $SYS.REQ.SERVER.PING.VARZ", "store.replicas: 3")
	})
	t.Run("system connection", func(t *testing.T) {
		st, err := openOn(t, connectAs(t, always, "app"), func(o *lxjs.Options) {
			o.SystemConn, o.RequireDurability = connectAs(t, always, "sys"), platform.DurabilityFsync
		})
		if err != nil {
			t.Fatal(err)
		}
		if d := appendDurability(t, st); d.String() != "fsync before ack on 1 replica" || d.Source != "VARZ of acc1" {
			t.Fatalf("append reports %q from %q", d, d.Source)
		}
	})
	t.Run("import", func(t *testing.T) {
		st, err := openOn(t, connectAs(t, always, "imp"), func(o *lxjs.Options) { o.RequireDurability = platform.DurabilityFsync })
		if err != nil {
			t.Fatal(err)
		}
		if d := st.Durability(); d.String() != "fsync before ack on 1 replica" {
			t.Fatalf("durability %q", d)
		}
	})
	t.Run("interval", func(t *testing.T) {
		lazy := accountsServer(t, "sync_interval: 45s")
		st, err := openOn(t, connectAs(t, lazy, "imp"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := st.Durability().String(), "flushed to the OS, fsync every 45s, on 1 replica"; got != want {
			t.Fatalf("durability %q, want %q", got, want)
		}
		_, err = openOn(t, connectAs(t, lazy, "imp"), func(o *lxjs.Options) { o.RequireDurability = platform.DurabilityFsync })
		wantRefusal(t, err, "fsync every 45s", "sync_interval: always")
	})
	t.Run("default", func(t *testing.T) {
		// No sync_interval at all: nats-server's default, 2 minutes.
		st, err := openOn(t, connectAs(t, accountsServer(t, ""), "imp"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := st.Durability().String(), "flushed to the OS, fsync every 2m0s, on 1 replica"; got != want {
			t.Fatalf("durability %q, want %q", got, want)
		}
	})
}

// TestReadSyncSettingsAnswers drives ReadSyncSettings with scripted VARZ
// answers on a real server: a server before 2.10 (no sync fields), an
// error answer, and a server that never answers, named after the wait.
func TestReadSyncSettingsAnswers(t *testing.T) {
	nc := embeddedtest.Conn(t, embeddedtest.Server(t))
	answer := func(body string) *nats.Subscription {
		sub, err := nc.Subscribe("$SYS.REQ.SERVER.PING.VARZ", func(m *nats.Msg) { _ = m.Respond([]byte(body)) })
		if err != nil {
			t.Fatal(err)
		}
		return sub
	}
	old := answer(`{"server":{"name":"old","ver":"2.9.10"},"data":{"jetstream":{"config":{"max_memory":1,"max_storage":1}}}}`)
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	syncs := lxjs.ReadSyncSettings(t.Context(), nc)
	if ss, ok := syncs.Of("old"); !ok || ss.Always || ss.Interval != 0 || syncs.Problem() != "" {
		t.Fatalf("a 2.9 answer: %+v %v, problem %q", ss, ok, syncs.Problem())
	}
	_ = old.Unsubscribe()

	answer(`{"server":{"name":"n1"},"error":{"code":403,"description":"not allowed"}}`)
	answer(`{"server":{"name":"n2"},"data":{"jetstream":{"config":{"sync_always":true},"meta":{"cluster_size":3}}}}`)
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	syncs = lxjs.ReadSyncSettings(t.Context(), nc, "n1", "n2", "n3")
	if ss, ok := syncs.Of("n2"); !ok || !ss.Always {
		t.Fatalf("n2: %+v %v", ss, ok)
	}
	if _, ok := syncs.Of("n3"); ok || !strings.Contains(syncs.Problem(), "no VARZ answer from n1, n3 within 2s") {
		t.Fatalf("problem %q, want n1 and n3 named", syncs.Problem())
	}
	if took := time.Since(began); took < 2*time.Second || took > 10*time.Second {
		t.Fatalf("the wait took %v, want about 2s", took)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if syncs := lxjs.ReadSyncSettings(ctx, nc, "n9"); syncs.Problem() == "" {
		t.Fatal("a cancelled context read settings")
	}
}

// TestDurabilityOlderServer: nats-server 2.9.10 without system account
// access reports unknown, not its (fixed, 60s) interval.
func TestDurabilityOlderServer(t *testing.T) {
	nc, err := nats.Connect(oldServerURL(), nats.Timeout(2*time.Second))
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI needs the older NATS server at %s: %v", oldServerURL(), err)
		}
		t.Skipf("no older NATS server at %s (set LEXIGRAM_OLD_NATS_URL): %v", oldServerURL(), err)
	}
	t.Cleanup(nc.Close)
	name := "LXTEST_" + nuid.Next()
	st, err := openOn(t, nc, func(o *lxjs.Options) { o.Stream, o.SubjectPrefix = name, "lxtest."+name })
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	t.Cleanup(func() { _ = js.DeleteStream(context.Background(), name) })
	if got, want := appendDurability(t, st).String(), "sync setting unknown (no system account access), on 1 replica"; got != want {
		t.Fatalf("append reports %q, want %q", got, want)
	}
}

// TestDurabilityR3: on a three-node cluster the replicas make
// "replicated" without the sync setting; fsync needs it verified. A
// stream scaled down underneath makes appends refuse at the next
// refresh, and scaled up again lets them through.
func TestDurabilityR3(t *testing.T) {
	if testing.Short() {
		t.Skip("three-node cluster")
	}
	c := embeddedtest.Cluster(t)
	nc := c.Connect(t)
	st, err := openOn(t, nc, func(o *lxjs.Options) { o.Replicas, o.RequireDurability = 3, platform.DurabilityReplicated })
	if err != nil {
		t.Fatal(err)
	}
	if got, want := appendDurability(t, st).String(), "sync setting unknown (no system account access), on 3 replicas"; got != want {
		t.Fatalf("append reports %q, want %q", got, want)
	}
	_, err = openOn(t, nc, func(o *lxjs.Options) { o.Replicas, o.RequireDurability = 3, platform.DurabilityFsync })
	wantRefusal(t, err, "on 3 replicas (level replicated)", "let the store verify")

	known, err := openOn(t, nc, func(o *lxjs.Options) {
		o.Replicas, o.RequireDurability, o.ServerSync = 3, platform.DurabilityFsync, syncOf(t, c.Servers[0])
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := appendDurability(t, known).String(); got != "fsync before ack on 3 replicas" {
		t.Fatalf("with the nodes' setting given: %q", got)
	}

	js, _ := jetstream.New(nc)
	scale := func(n int) {
		t.Helper()
		s, err := js.Stream(t.Context(), st.StreamName())
		if err != nil {
			t.Fatal(err)
		}
		cfg := s.CachedInfo().Config
		cfg.Replicas = n
		if _, err := js.UpdateStream(t.Context(), cfg); err != nil {
			t.Fatal(err)
		}
	}
	scale(1)
	d, err := st.RefreshDurability(t.Context())
	wantRefusal(t, err, "on 1 replica (level any)", "store.replicas: 3")
	if d.Replicas != 1 {
		t.Fatalf("refreshed durability %+v", d)
	}
	_, err = st.Append(t.Context(), platform.StreamID{Type: "order", ID: "x"}, platform.NoStream(), events(itemAdded{SKU: "a"}))
	wantRefusal(t, err, "on 1 replica")

	scale(3)
	deadline := time.Now().Add(30 * time.Second)
	for {
		d, err := st.RefreshDurability(t.Context())
		if err == nil && d.Replicas == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30s after scaling back to 3 replicas: %v, %v", d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := appendDurability(t, st); got.Replicas != 3 {
		t.Fatalf("after scaling back: %q", got)
	}
}
