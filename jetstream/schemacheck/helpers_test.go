package schemacheck_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/lexigram/events/embedded/embeddedtest"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/jetstream/schemacheck"
	"github.com/lexigram/events/platform"
)

// Three versions of one event: v2 renames Amount to Total, v3 adds
// Currency.
type (
	placedV1 struct {
		Customer string
		Amount   int
	}
	placedV2 struct {
		Customer string
		Total    int
	}
	placedV3 struct {
		Customer string
		Total    int
		Currency string
	}
	noted struct{ Text string }
)

const placed = "order.placed"

// writers returns a registry per version, in which that version is
// current, to write events of it with.
func writers() []*platform.Registry {
	r1, r2, r3 := platform.NewRegistry(), platform.NewRegistry(), platform.NewRegistry()
	platform.MustRegister[placedV1](r1, placed, 1)
	platform.MustRegister[placedV2](r2, placed, 2)
	platform.MustRegister[placedV3](r3, placed, 3)
	for _, r := range []*platform.Registry{r1, r2, r3} {
		platform.MustRegister[noted](r, "order.noted", 1)
	}
	return []*platform.Registry{r1, r2, r3}
}

// reader is the current release's registry: the v1 → v2 → v3 chain.
func reader() *platform.Registry {
	r := platform.NewRegistry()
	platform.MustRegister[placedV1](r, placed, 1)
	platform.MustRegister[placedV2](r, placed, 2)
	platform.MustRegister[placedV3](r, placed, 3)
	platform.MustRegister[noted](r, "order.noted", 1)
	platform.MustUpcast(r, func(e placedV1) placedV2 { return placedV2{Customer: e.Customer, Total: e.Amount} })
	platform.MustUpcast(r, func(e placedV2) placedV3 { return placedV3{Customer: e.Customer, Total: e.Total, Currency: "EUR"} })
	if err := r.Check(); err != nil {
		panic(err)
	}
	return r
}

// env is a stream on a server, and a store per writing registry.
type env struct {
	t       *testing.T
	js      jetstream.JetStream
	name    string
	stream  jetstream.Stream
	stores  []*lxjs.EventStore // by version - 1
	opts    lxjs.Options
	appends int
}

func newEnv(t *testing.T) *env {
	t.Helper()
	js, err := jetstream.New(embeddedtest.Conn(t, embeddedtest.Server(t)))
	if err != nil {
		t.Fatal(err)
	}
	return openEnv(t, js, lxjs.Options{})
}

// oldServer connects to the Debian nats-server (2.9.10) on
// 127.0.0.1:4222; it skips without one, and fails under CI=true.
func oldServer(t *testing.T) *env {
	t.Helper()
	url := "nats://127.0.0.1:4222"
	if u := os.Getenv("LEXIGRAM_OLD_NATS_URL"); u != "" {
		url = u
	}
	nc, err := nats.Connect(url, nats.Timeout(2*time.Second))
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI needs the Debian nats-server at %s: %v", url, err)
		}
		t.Skipf("no nats-server at %s (set LEXIGRAM_OLD_NATS_URL): %v", url, err)
	}
	t.Cleanup(nc.Close)
	t.Logf("nats-server %s at %s", nc.ConnectedServerVersion(), url)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	name := "LXTEST_SCHEMA_" + nuid.Next()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := js.DeleteStream(ctx, name); err != nil {
			t.Errorf("delete stream %s: %v", name, err)
		}
	})
	return openEnv(t, js, lxjs.Options{Stream: name, SubjectPrefix: "lxtest." + strings.ToLower(name), Storage: jetstream.MemoryStorage})
}

func openEnv(t *testing.T, js jetstream.JetStream, o lxjs.Options) *env {
	t.Helper()
	e := &env{t: t, js: js, opts: o}
	for _, reg := range writers() {
		o.Registry, o.Logger = reg, embeddedtest.Logger(t)
		st, err := lxjs.New(t.Context(), js, o)
		if err != nil {
			t.Fatal(err)
		}
		e.stores = append(e.stores, st)
	}
	e.name = e.stores[0].StreamName()
	var err error
	if e.stream, err = js.Stream(t.Context(), e.name); err != nil {
		t.Fatal(err)
	}
	return e
}

// store makes one more store on the stream, with its own registry or codec.
func (e *env) store(change func(*lxjs.Options)) *lxjs.EventStore {
	e.t.Helper()
	o := e.opts
	o.Logger = embeddedtest.Logger(e.t)
	change(&o)
	st, err := lxjs.New(e.t.Context(), e.js, o)
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

// add appends events, one append each to a new aggregate, with the store
// of version v (1 to 3), and returns their positions.
func (e *env) add(st *lxjs.EventStore, events ...any) []uint64 {
	e.t.Helper()
	var out []uint64
	for _, ev := range events {
		e.appends++
		res, err := st.Append(e.t.Context(), platform.StreamID{Type: "order", ID: fmt.Sprint("o-", e.appends)}, platform.NoStream(), []platform.Envelope{{Event: ev}})
		if err != nil {
			e.t.Fatalf("append %T: %v", ev, err)
		}
		out = append(out, res.LastPosition)
	}
	return out
}

// publish stores a copy of the message at seq with change applied to
// its headers and body, bypassing the store, and returns its position.
func (e *env) republish(seq uint64, change func(h nats.Header, body []byte) []byte) uint64 {
	e.t.Helper()
	m, err := e.stream.GetMsg(e.t.Context(), seq)
	if err != nil {
		e.t.Fatal(err)
	}
	h := nats.Header{}
	for k, v := range m.Header {
		if !strings.HasPrefix(k, "Nats-") {
			h[k] = slices.Clone(v)
		}
	}
	data := change(h, slices.Clone(m.Data))
	ack, err := e.js.PublishMsg(e.t.Context(), &nats.Msg{Subject: m.Subject, Header: h, Data: data})
	if err != nil {
		e.t.Fatal(err)
	}
	return ack.Sequence
}

func (e *env) check(reg *platform.Registry, opts schemacheck.Options) schemacheck.Report {
	e.t.Helper()
	opts.Stream = e.name
	ctx, cancel := context.WithTimeout(e.t.Context(), 60*time.Second)
	defer cancel()
	rep, err := schemacheck.Check(ctx, e.js, reg, opts)
	if err != nil {
		e.t.Fatalf("check: %v", err)
	}
	return rep
}

// typeOf finds a combination in a report.
func typeOf(t *testing.T, rep schemacheck.Report, typ string, version int, codec string) schemacheck.TypeReport {
	t.Helper()
	for _, tr := range rep.Types {
		if tr.Type == typ && tr.SchemaVersion == version && tr.Codec == codec {
			return tr
		}
	}
	t.Fatalf("no %s v%d %s in the report: %+v", typ, version, codec, rep.Types)
	return schemacheck.TypeReport{}
}

// failureAt finds the failure at a position.
func failureAt(t *testing.T, rep schemacheck.Report, pos uint64) schemacheck.Failure {
	t.Helper()
	for _, f := range rep.Failures {
		if f.Position == pos {
			return f
		}
	}
	t.Fatalf("no failure at position %d: %+v", pos, rep.Failures)
	return schemacheck.Failure{}
}
