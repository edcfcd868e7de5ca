package audit_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/lexigram/events/embedded"
	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/internal/oldnats"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/jetstream/audit"
	"github.com/lexigram/events/platform"
)

// TestCleanStore: whatever the store writes audits clean: single and
// multi-event appends, Any, exact revisions through a second store that
// has not seen the earlier appends, a compacted aggregate (a truncated
// prefix its snapshot covers) and a deleted one (positions the stream
// lists as deleted). Without the snapshots the compacted aggregate looks
// like a lost prefix, which is why the check takes them.
func TestCleanStore(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.appendN(agg("single"), 5, 1)
	e.appendN(agg("batches"), 7, 3)
	for range 3 {
		if _, err := e.store.Append(ctx, agg("any"), platform.Any(), []platform.Envelope{{Event: noted{Text: "any"}}}); err != nil {
			t.Fatal(err)
		}
	}
	compacted := e.appendN(agg("compacted"), 6, 2)
	snaps := platform.NewMemorySnapshotStore()
	if err := snaps.SaveSnapshot(ctx, platform.Snapshot{Stream: agg("compacted"), Revision: platform.Revision{Version: 3, Position: compacted[3]}, Codec: "msgpack"}); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Truncate(ctx, agg("compacted"), platform.Revision{Version: 3, Position: compacted[3]}); err != nil {
		t.Fatal(err)
	}
	e.appendN(agg("deleted"), 4, 1)
	if err := e.store.Delete(ctx, agg("deleted")); err != nil {
		t.Fatal(err)
	}
	// A second store has no cached hashes: it reads the event it builds on.
	second := openEnv(t, e.srv)
	single := readAll(t, e.store, agg("single"))
	if _, err := second.store.Append(ctx, agg("single"), platform.ExactRevision(single[len(single)-1].Revision()),
		[]platform.Envelope{{Event: noted{Text: "second"}}, {Event: noted{Text: "store"}}}); err != nil {
		t.Fatal(err)
	}
	if st := second.store.ChainStats(); st.Misses != 1 || st.Hits != 0 {
		t.Errorf("the second store's chain cache: %+v, want one miss", st)
	}
	if st := e.store.ChainStats(); st.Misses != 0 || st.Hits == 0 {
		t.Errorf("the first store's chain cache: %+v, want hits only", st)
	}

	var progress []audit.Progress
	rep := e.check(audit.Options{Snapshots: snaps, Progress: func(p audit.Progress) { progress = append(progress, p) }})
	only(t, rep, nil)
	const live = 7 + 7 + 3 + 3 // single (5+2), batches, any, compacted (6-3)
	if rep.Events != live || rep.Chained != live || rep.Unchained != 0 || rep.Aggregates != 4 || rep.Deleted != 4+3 || rep.LastPosition != 5+7+3+6+4+2 {
		t.Fatalf("report: %s", describe(rep))
	}
	truncated := rep.Findings
	if len(truncated) != 1 {
		t.Fatalf("findings: %s", describe(rep))
	}
	want(t, truncated[0], audit.TruncatedPrefix, "doc/compacted", [2]uint64{1, 3}, compacted[4])
	if last := progress[len(progress)-1]; !last.Done || last.Checked != live || last.Total != live || last.Problems != 0 {
		t.Fatalf("last progress %+v", last)
	}
	if info, err := e.stream.Info(ctx); err != nil || info.State.Consumers != 0 {
		t.Fatalf("the check left consumers behind: %v %+v", err, info.State)
	}

	rep = e.check(audit.Options{})
	f := only(t, rep, map[audit.Kind]int{audit.LostPrefix: 1})
	want(t, f[0], audit.LostPrefix, "doc/compacted", [2]uint64{1, 3}, compacted[4])
	if rep.PostfixChecked {
		t.Fatal("lost postfixes checked without expected heads")
	}
}

func readAll(t *testing.T, st platform.EventStore, id platform.StreamID) []platform.Envelope {
	t.Helper()
	var out []platform.Envelope
	for ev, err := range st.Read(t.Context(), id, platform.Revision{}) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

// TestLostMiddleAndPrefix deletes an event in the middle of one aggregate
// and the first of another: lost-middle and lost-prefix, each naming the
// positions around what is missing; the stream lists both positions as
// deleted, so neither is a gap.
func TestLostMiddleAndPrefix(t *testing.T) {
	e := newEnv(t)
	a := e.appendN(agg("a"), 5, 1)
	b := e.appendN(agg("b"), 3, 1)
	for _, seq := range []uint64{a[3], b[1]} {
		if err := e.stream.DeleteMsg(t.Context(), seq); err != nil {
			t.Fatal(err)
		}
	}
	rep := e.check(audit.Options{})
	f := only(t, rep, map[audit.Kind]int{audit.LostMiddle: 1, audit.LostPrefix: 1})
	want(t, f[0], audit.LostMiddle, "doc/a", [2]uint64{3, 3}, a[2], a[4])
	want(t, f[1], audit.LostPrefix, "doc/b", [2]uint64{1, 1}, b[2])
	if rep.Deleted != 2 || rep.Events != 6 {
		t.Fatalf("report: %s", describe(rep))
	}
}

// TestFork publishes forged events, bypassing the store, that claim
// versions already held: one older than the aggregate's last version
// (found again by reading the aggregate) and one claiming the last.
func TestFork(t *testing.T) {
	e := newEnv(t)
	a := e.appendN(agg("a"), 4, 2)
	b := e.appendN(agg("b"), 2, 1)
	forged := func(h nats.Header) { h.Set(lxjs.IDHeader, platform.NewEventID()) }
	fa := e.republish(a[2], forged)
	fb := e.republish(b[2], forged)
	// The next event follows the forged one: part of the fork, not a
	// broken link.
	m := e.msg(fb)
	forgedEvent, err := lxjs.StoredEventOf(fb, m.Header, m.Data)
	if err != nil {
		t.Fatal(err)
	}
	e.republish(fb, func(h nats.Header) {
		forged(h)
		h.Set(lxjs.VersionHeader, "3")
		h.Set(lxjs.PrevHeader, forgedEvent.Hash())
	})
	rep := e.check(audit.Options{})
	f := only(t, rep, map[audit.Kind]int{audit.Fork: 2})
	want(t, f[0], audit.Fork, "doc/a", [2]uint64{2, 2}, a[2], fa)
	want(t, f[1], audit.Fork, "doc/b", [2]uint64{2, 2}, b[2], fb)
}

// TestDuplicate stores event IDs twice, bypassing the store: an exact
// copy of an event (a duplicate, not also a fork), and an event's ID
// again on the next version, chained correctly.
func TestDuplicate(t *testing.T) {
	e := newEnv(t)
	a := e.appendN(agg("a"), 3, 1)
	b := e.appendN(agg("b"), 2, 1)
	copyA := e.republish(a[3], nil)
	last := e.msg(b[2])
	stored, err := lxjs.StoredEventOf(b[2], last.Header, last.Data)
	if err != nil {
		t.Fatal(err)
	}
	copyB := e.republish(b[1], func(h nats.Header) {
		h.Set(lxjs.VersionHeader, "3")
		h.Set(lxjs.PrevHeader, stored.Hash())
	})
	rep := e.check(audit.Options{})
	f := only(t, rep, map[audit.Kind]int{audit.Duplicate: 2})
	want(t, f[0], audit.Duplicate, "doc/a", [2]uint64{3, 3}, a[3], copyA)
	want(t, f[1], audit.Duplicate, "doc/b", [2]uint64{3, 3}, b[1], copyB)
}

// TestHashMismatch rewrites the stream with one event's body changed by
// one bit and another event's Lx-Prev stripped, everything else as it
// was (same order, same positions): the chain shows both, at the links
// they break.
func TestHashMismatch(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	a := e.appendN(agg("a"), 5, 1)
	b := e.appendN(agg("b"), 2, 1)
	var msgs []*jetstream.RawStreamMsg
	for seq := uint64(1); seq <= b[2]; seq++ {
		msgs = append(msgs, e.msg(seq))
	}
	if err := e.js.DeleteStream(ctx, e.store.StreamName()); err != nil {
		t.Fatal(err)
	}
	e = openEnv(t, e.srv) // the stream again, empty
	for _, m := range msgs {
		h := nats.Header{}
		for k, v := range m.Header {
			if !strings.HasPrefix(k, "Nats-") {
				h[k] = v
			}
		}
		data := bytes.Clone(m.Data)
		switch m.Sequence {
		case a[3]:
			data[len(data)-1] ^= 0x04 // a bit flip
		case b[2]:
			delete(h, lxjs.PrevHeader)
		}
		if seq := e.publish(m.Subject, h, data); seq != m.Sequence {
			t.Fatalf("rewritten at position %d, was %d", seq, m.Sequence)
		}
	}
	rep := e.check(audit.Options{})
	f := only(t, rep, map[audit.Kind]int{audit.HashMismatch: 2})
	want(t, f[0], audit.HashMismatch, "doc/a", [2]uint64{3, 4}, a[3], a[4])
	want(t, f[1], audit.HashMismatch, "doc/b", [2]uint64{1, 2}, b[1], b[2])
}

// TestBitFlipOnDisk flips a bit in a body in the stream's block file on
// disk while the server is stopped, as Jepsen did. nats-server 2.15.2
// finds the record's checksum wrong and drops the message, silently: the
// stream's state still counts it and lists no delete. The check reports
// it twice over: the aggregate's missing version, and the gap in the
// stream's order.
func TestBitFlipOnDisk(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, func(o *embedded.Options) { o.DataDir = dir })
	a := e.appendN(agg("a"), 5, 1)
	if err := e.srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	blocks, err := filepath.Glob(filepath.Join(dir, "jetstream", "*", "streams", "EVENTS", "msgs", "*.blk"))
	if err != nil || len(blocks) != 1 {
		t.Fatalf("block files %v: %v", blocks, err)
	}
	b, err := os.ReadFile(blocks[0])
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte("a-3"))
	if i < 0 || bytes.Count(b, []byte("a-3")) != 1 {
		t.Fatalf("version 3's body is not in %s once", blocks[0])
	}
	b[i+2] ^= 0x01
	if err := os.WriteFile(blocks[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	e = openEnv(t, embeddedtest.Server(t, func(o *embedded.Options) { o.DataDir = dir }))
	rep := e.check(audit.Options{})
	f := only(t, rep, map[audit.Kind]int{audit.LostMiddle: 1, audit.Gap: 1})
	want(t, f[0], audit.LostMiddle, "doc/a", [2]uint64{3, 3}, a[2], a[4])
	want(t, f[1], audit.Gap, "", [2]uint64{}, a[3], a[3])
}

// TestLostPostfix gives the check a ledger of acknowledged heads: an
// aggregate stored below its head lost its postfix, one never stored
// lost everything; one at or above its head is fine.
func TestLostPostfix(t *testing.T) {
	e := newEnv(t)
	a := e.appendN(agg("a"), 3, 1)
	e.appendN(agg("c"), 2, 1)
	heads := map[platform.StreamID]uint64{agg("a"): 5, agg("b"): 2, agg("c"): 1}
	rep := e.check(audit.Options{ExpectedHeads: heads})
	f := only(t, rep, map[audit.Kind]int{audit.LostPostfix: 2})
	want(t, f[0], audit.LostPostfix, "doc/a", [2]uint64{4, 5}, a[3])
	want(t, f[1], audit.LostPostfix, "doc/b", [2]uint64{1, 2})
	if !rep.PostfixChecked {
		t.Fatal("PostfixChecked is false with expected heads")
	}
	// One aggregate: only its head counts.
	rep = e.check(audit.Options{Aggregate: agg("c"), ExpectedHeads: heads})
	only(t, rep, nil)
}

// TestUnchainedPrefix: events written before the chain existed (no
// Lx-Prev), then an append through the store, which chains to them. The
// check reports the unchained prefix as information, not a problem.
func TestUnchainedPrefix(t *testing.T) {
	e := newEnv(t)
	subject, _ := e.store.Subject(agg("old"))
	for v := range 2 {
		body, err := platform.Msgpack.Marshal(noted{Text: "old"})
		if err != nil {
			t.Fatal(err)
		}
		e.publish(subject, nats.Header{lxjs.IDHeader: {platform.NewEventID()}, lxjs.TypeHeader: {"noted"}, "Lx-Schema": {"1"},
			"Lx-Codec": {"msgpack"}, lxjs.VersionHeader: {string(rune('1' + v))}}, body)
	}
	res, err := e.store.Append(t.Context(), agg("old"), platform.Exact(2), []platform.Envelope{{Event: noted{Text: "new"}}})
	if err != nil {
		t.Fatal(err)
	}
	rep := e.check(audit.Options{})
	only(t, rep, nil)
	if len(rep.Findings) != 1 || rep.Unchained != 2 || rep.Chained != 1 {
		t.Fatalf("report: %s", describe(rep))
	}
	want(t, rep.Findings[0], audit.UnchainedPrefix, "doc/old", [2]uint64{1, 2}, 1)
	if res.FirstVersion != 3 {
		t.Fatalf("appended at %d", res.FirstVersion)
	}
}

// TestMalformed: messages under the prefix that are not events.
func TestMalformed(t *testing.T) {
	e := newEnv(t)
	e.appendN(agg("a"), 1, 1)
	noVersion := e.publish("events.doc.x", nats.Header{lxjs.IDHeader: {"x"}}, []byte("?"))
	badSubject := e.publish("events.doc", nats.Header{}, []byte("?"))
	rep := e.check(audit.Options{})
	f := only(t, rep, map[audit.Kind]int{audit.Malformed: 2})
	want(t, f[0], audit.Malformed, "doc/x", [2]uint64{}, noVersion)
	want(t, f[1], audit.Malformed, "", [2]uint64{}, badSubject)
}

// TestOneAggregate checks one aggregate only: the others' problems are
// not its, and it counts its own events only.
func TestOneAggregate(t *testing.T) {
	e := newEnv(t)
	e.appendN(agg("a"), 3, 1)
	b := e.appendN(agg("b"), 3, 1)
	if err := e.stream.DeleteMsg(t.Context(), b[2]); err != nil {
		t.Fatal(err)
	}
	rep := e.check(audit.Options{Aggregate: agg("a")})
	only(t, rep, nil)
	if rep.Events != 3 || rep.Aggregate != "doc/a" || rep.Aggregates != 1 {
		t.Fatalf("report: %s", describe(rep))
	}
	rep = e.check(audit.Options{Aggregate: agg("b")})
	f := only(t, rep, map[audit.Kind]int{audit.LostMiddle: 1})
	want(t, f[0], audit.LostMiddle, "doc/b", [2]uint64{2, 2}, b[1], b[3])
	rep = e.check(audit.Options{Aggregate: agg("none")})
	if rep.Events != 0 || !rep.Clean() {
		t.Fatalf("an aggregate without events: %s", describe(rep))
	}
}

// TestCheckErrors: what cannot be checked is an error naming why.
func TestCheckErrors(t *testing.T) {
	e := newEnv(t)
	_, err := audit.Check(t.Context(), e.js, audit.Options{Stream: "NOPE"})
	if err == nil || !strings.Contains(err.Error(), `stream "NOPE" does not exist`) || !strings.Contains(err.Error(), "--stream") {
		t.Fatalf("a missing stream: %v", err)
	}
	_, err = audit.Check(t.Context(), e.js, audit.Options{Aggregate: platform.StreamID{Type: "doc"}})
	if !errors.Is(err, platform.ErrInvalidArgument) {
		t.Fatalf("an aggregate without an ID: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	e.appendN(agg("a"), 1, 1)
	if _, err := audit.Check(ctx, e.js, audit.Options{}); err == nil {
		t.Fatal("a cancelled check succeeded")
	}
}

// TestCheckWhileAppending: appends during a check neither disturb it nor
// count in it: it checks the stream as it was when it started.
func TestCheckWhileAppending(t *testing.T) {
	e := newEnv(t)
	e.appendN(agg("a"), 200, 10)
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() {
		var rev platform.Revision
		for ctx.Err() == nil {
			res, err := e.store.Append(ctx, agg("busy"), platform.ExactRevision(rev), []platform.Envelope{{Event: noted{Text: "busy"}}})
			if err != nil {
				return
			}
			rev = res.Revision()
		}
	})
	for range 3 {
		rep := e.check(audit.Options{})
		only(t, rep, nil)
		if rep.Events != rep.LastPosition || rep.Events < 200 {
			t.Fatalf("report: %s", describe(rep))
		}
	}
	stop()
	wg.Wait()
}

// TestOlderServer audits a stream on a nats-server older than 2.12 (the
// Debian 2.9.10 on 127.0.0.1:4222, or LEXIGRAM_OLD_NATS_URL): the store
// appends single events there, and the check reads them the same way.
func TestOlderServer(t *testing.T) {
	nc := oldnats.Conn(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	name := "LXAUDIT_" + nuid.Next()
	reg := platform.NewRegistry()
	platform.MustRegister[noted](reg, "noted", 1)
	st, err := lxjs.New(t.Context(), js, lxjs.Options{Stream: name, SubjectPrefix: "lxaudit." + name, Registry: reg, Storage: jetstream.MemoryStorage, Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = js.DeleteStream(context.Background(), name) })
	e := &env{t: t, js: js, store: st, reg: reg}
	if e.stream, err = js.Stream(t.Context(), name); err != nil {
		t.Fatal(err)
	}
	a := e.appendN(agg("a"), 4, 1)
	opts := audit.Options{Stream: name, SubjectPrefix: "lxaudit." + name}
	rep := e.check(opts)
	only(t, rep, nil)
	if rep.Events != 4 || rep.Chained != 4 {
		t.Fatalf("on %s: %s", nc.ConnectedServerVersion(), describe(rep))
	}
	if err := e.stream.DeleteMsg(t.Context(), a[2]); err != nil {
		t.Fatal(err)
	}
	opts.Aggregate = agg("a")
	f := only(t, e.check(opts), map[audit.Kind]int{audit.LostMiddle: 1})
	want(t, f[0], audit.LostMiddle, "doc/a", [2]uint64{2, 2}, a[1], a[3])
}
