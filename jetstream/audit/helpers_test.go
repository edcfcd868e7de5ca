package audit_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/embedded"
	"github.com/lexigram/events/embedded/embeddedtest"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/jetstream/audit"
	"github.com/lexigram/events/platform"
)

type noted struct{ Text string }

// env is an event store on a throwaway embedded server, and the raw
// stream under it for corrupting.
type env struct {
	t      *testing.T
	srv    *embedded.Server
	js     jetstream.JetStream
	store  *lxjs.EventStore
	stream jetstream.Stream
	reg    *platform.Registry
}

func newEnv(t *testing.T, opts ...func(*embedded.Options)) *env {
	t.Helper()
	srv := embeddedtest.Server(t, opts...)
	return openEnv(t, srv)
}

func openEnv(t *testing.T, srv *embedded.Server) *env {
	t.Helper()
	js, err := jetstream.New(embeddedtest.Conn(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	reg := platform.NewRegistry()
	platform.MustRegister[noted](reg, "noted", 1)
	st, err := lxjs.New(t.Context(), js, lxjs.Options{Registry: reg, Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(t.Context(), st.StreamName())
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, srv: srv, js: js, store: st, stream: stream, reg: reg}
}

func agg(id string) platform.StreamID { return platform.StreamID{Type: "doc", ID: id} }

// appendN appends n events to the aggregate, one append each (k events
// per append when k > 1), and returns each event's position, by version
// (index 0 is unused).
func (e *env) appendN(id platform.StreamID, n, k int) []uint64 {
	e.t.Helper()
	positions := []uint64{0}
	var rev platform.Revision
	for len(positions) <= n {
		m := min(k, n+1-len(positions))
		evs := make([]platform.Envelope, m)
		for i := range evs {
			evs[i].Event = noted{Text: fmt.Sprintf("%s-%d", id.ID, len(positions)+i)}
		}
		res, err := e.store.Append(e.t.Context(), id, platform.ExactRevision(rev), evs)
		if err != nil {
			e.t.Fatalf("append to %v: %v", id, err)
		}
		for p := res.FirstPosition; p <= res.LastPosition; p++ {
			positions = append(positions, p)
		}
		rev = res.Revision()
	}
	return positions
}

func (e *env) msg(seq uint64) *jetstream.RawStreamMsg {
	e.t.Helper()
	m, err := e.stream.GetMsg(e.t.Context(), seq)
	if err != nil {
		e.t.Fatalf("get message %d: %v", seq, err)
	}
	return m
}

// publish stores a raw message, bypassing the store.
func (e *env) publish(subject string, h nats.Header, data []byte) uint64 {
	e.t.Helper()
	ack, err := e.js.PublishMsg(e.t.Context(), &nats.Msg{Subject: subject, Header: h, Data: data})
	if err != nil {
		e.t.Fatalf("raw publish on %s: %v", subject, err)
	}
	return ack.Sequence
}

// republish stores a copy of the message at seq with change applied to
// its headers (the server's own Nats- headers dropped) and returns its
// position.
func (e *env) republish(seq uint64, change func(h nats.Header)) uint64 {
	e.t.Helper()
	m := e.msg(seq)
	h := nats.Header{}
	for k, v := range m.Header {
		if !strings.HasPrefix(k, "Nats-") {
			h[k] = slices.Clone(v)
		}
	}
	if change != nil {
		change(h)
	}
	return e.publish(m.Subject, h, m.Data)
}

func (e *env) check(opts audit.Options) *audit.Report {
	e.t.Helper()
	rep, err := audit.Check(e.t.Context(), e.js, opts)
	if err != nil {
		e.t.Fatalf("audit: %v", err)
	}
	return rep
}

// only fails unless the report's problems are exactly want (kind by
// kind), and returns the findings of want's kinds.
func only(t *testing.T, rep *audit.Report, want map[audit.Kind]int) []audit.Finding {
	t.Helper()
	for _, k := range audit.Kinds {
		if rep.Counts[k] != want[k] {
			t.Fatalf("%d %s findings, want %d; report: %s", rep.Counts[k], k, want[k], describe(rep))
		}
	}
	var out []audit.Finding
	for _, f := range rep.Findings {
		if want[f.Kind] > 0 {
			out = append(out, f)
		}
	}
	return out
}

func describe(rep *audit.Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d events, %d aggregates, %d deleted, counts %v", rep.Events, rep.Aggregates, rep.Deleted, rep.Counts)
	for _, f := range rep.Findings {
		b.WriteString("\n  " + f.String())
	}
	return b.String()
}

// want fails unless f is of kind on aggregate with those versions and
// positions.
func want(t *testing.T, f audit.Finding, kind audit.Kind, aggregate string, versions [2]uint64, positions ...uint64) {
	t.Helper()
	if f.Kind != kind || f.Aggregate != aggregate || f.Versions != versions || !slices.Equal(f.Positions, positions) || f.Detail == "" {
		t.Fatalf("finding %s\nwant %s %s versions %v at positions %v", f, kind, aggregate, versions, positions)
	}
}
