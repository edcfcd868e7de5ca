package jetstream_test

// CPU and allocation benchmarks of the store against the raw calls it
// makes, on an embedded server that fsyncs every two minutes, so the disk
// stays out of the figures:
//
//	go test ./jetstream/ -run '^$' -bench . -benchmem
//
// The server runs in the test process, so allocs/op include the server's
// work for each message; compare ours with raw rather than reading either
// alone. Package bench measures the same operations end to end.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/lexigram/events/embedded"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// benchDeposit is an event whose msgpack body is 256 bytes.
type benchDeposit struct {
	Account string
	Amount  int64
	Memo    string
}

const benchAggregates = 100

// benchEnv is a store on a fresh embedded server, and the pieces for raw calls.
type benchEnv struct {
	js       jetstream.JetStream
	st       *lxjs.EventStore
	event    benchDeposit
	body     []byte // event encoded, for raw publishes
	ids      []platform.StreamID
	subjects []string // of ids
}

func newBenchEnv(b *testing.B, opts ...func(*lxjs.Options)) *benchEnv {
	b.Helper()
	ctx := b.Context()
	quiet := slog.New(slog.DiscardHandler)
	srv, err := embedded.Start(ctx, embedded.Options{Port: embedded.RandomPort, DataDir: b.TempDir(), FsyncInterval: 2 * time.Minute, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	nc, err := srv.Connect()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	reg := platform.NewRegistry()
	if err := platform.Register[benchDeposit](reg, "bench.deposited", 1); err != nil {
		b.Fatal(err)
	}
	o := lxjs.Options{Registry: reg, Logger: quiet}
	for _, f := range opts {
		f(&o)
	}
	st, err := lxjs.New(ctx, js, o)
	if err != nil {
		b.Fatal(err)
	}
	e := &benchEnv{js: js, st: st, event: benchDeposit{Account: "acct-0000000", Amount: 100}}
	for len(e.body) < 256 {
		e.event.Memo += "m"
		if e.body, err = platform.Msgpack.Marshal(e.event); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 2 * benchAggregates { // the first half for ours, the second for raw
		id := platform.StreamID{Type: "account", ID: fmt.Sprintf("acct-%07d", i)}
		subject, err := st.Subject(id)
		if err != nil {
			b.Fatal(err)
		}
		e.ids, e.subjects = append(e.ids, id), append(e.subjects, subject)
	}
	return e
}

func (e *benchEnv) events(n int) []platform.Envelope {
	evs := make([]platform.Envelope, n)
	for i := range evs {
		evs[i].Event = e.event
	}
	return evs
}

// appendLoop appends n-event batches round-robin to the first
// benchAggregates aggregates, each conditional on its last revision.
func (e *benchEnv) appendLoop(b *testing.B, n int) {
	ctx := b.Context()
	revs := make([]platform.Revision, benchAggregates)
	i := 0
	for b.Loop() {
		k := i % benchAggregates
		res, err := e.st.Append(ctx, e.ids[k], platform.ExactRevision(revs[k]), e.events(n))
		if err != nil {
			b.Fatal(err)
		}
		revs[k] = res.Revision()
		i++
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
}

// rawLoop does appendLoop's work with raw calls on the other aggregates.
func (e *benchEnv) rawLoop(b *testing.B, n int) {
	ctx := b.Context()
	last := make([]uint64, benchAggregates)
	i := 0
	for b.Loop() {
		k := i % benchAggregates
		subject := e.subjects[benchAggregates+k]
		if n == 1 {
			ack, err := e.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Header: nats.Header{}, Data: e.body},
				jetstream.WithExpectLastSequencePerSubject(last[k]))
			if err != nil {
				b.Fatal(err)
			}
			last[k] = ack.Sequence
		} else {
			msgs := make([]*nats.Msg, n)
			for j := range msgs {
				msgs[j] = &nats.Msg{Subject: subject, Header: nats.Header{}, Data: e.body}
			}
			msgs[0].Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(last[k], 10))
			ack, err := jetstreamext.PublishMsgBatch(ctx, e.js, msgs)
			if err != nil {
				b.Fatal(err)
			}
			last[k] = ack.Sequence
		}
		i++
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkAppendSingle(b *testing.B) { newBenchEnv(b).appendLoop(b, 1) }

// BenchmarkAppendSingleGroupCommit: a lone writer with group commit on
// pays only the committer's bookkeeping.
func BenchmarkAppendSingleGroupCommit(b *testing.B) {
	newBenchEnv(b, func(o *lxjs.Options) { o.GroupCommit.Enabled = true }).appendLoop(b, 1)
}

// BenchmarkAppendSingleChainMiss: without the chain cache every append
// at an exact revision first reads the event it chains to.
func BenchmarkAppendSingleChainMiss(b *testing.B) {
	newBenchEnv(b, func(o *lxjs.Options) { o.ChainCache = -1 }).appendLoop(b, 1)
}
func BenchmarkRawPublish(b *testing.B)        { newBenchEnv(b).rawLoop(b, 1) }
func BenchmarkAppendBatch10(b *testing.B)     { newBenchEnv(b).appendLoop(b, 10) }
func BenchmarkRawPublishBatch10(b *testing.B) { newBenchEnv(b).rawLoop(b, 10) }

// preload1000 stores 1,000 events of the first aggregate among 1,000 of
// each of 9 others.
func (e *benchEnv) preload1000(b *testing.B) {
	b.Helper()
	for i := range 10 {
		if _, err := e.st.Append(b.Context(), e.ids[i], platform.NoStream(), e.events(1000)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRead1000(b *testing.B) {
	e := newBenchEnv(b)
	e.preload1000(b)
	ctx := b.Context()
	for b.Loop() {
		n := 0
		for _, err := range e.st.Read(ctx, e.ids[0], platform.Revision{}) {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != 1000 {
			b.Fatalf("read %d events, want 1000", n)
		}
	}
}

// BenchmarkRawGetBatch1000 reads what BenchmarkRead1000 reads with the
// batched direct get the store uses, without decoding.
func BenchmarkRawGetBatch1000(b *testing.B) {
	e := newBenchEnv(b)
	e.preload1000(b)
	ctx := b.Context()
	for b.Loop() {
		page, err := jetstreamext.GetBatch(ctx, e.js, e.st.StreamName(), 1000, jetstreamext.GetBatchSubject(e.subjects[0]))
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for _, err := range page {
			if errors.Is(err, jetstreamext.ErrNoMessages) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != 1000 {
			b.Fatalf("read %d messages, want 1000", n)
		}
	}
}
