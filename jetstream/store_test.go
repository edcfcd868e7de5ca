package jetstream_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/embedded/embeddedtest"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

func TestOversizedEventWritesNothing(t *testing.T) {
	env := newR1(t)
	ctx := context.Background()
	id := platform.StreamID{Type: "order", ID: "big"}
	big := itemAdded{SKU: strings.Repeat("x", int(env.nc.MaxPayload()))}
	_, err := env.store.Append(ctx, id, platform.NoStream(), events(orderPlaced{"c"}, big))
	if !errors.Is(err, platform.ErrInvalidArgument) || !strings.Contains(err.Error(), "max_payload") || !strings.Contains(err.Error(), "event 2") {
		t.Fatalf("want an invalid-argument error naming event 2 and max_payload, got %v", err)
	}
	if got := readStream(t, env.store, id); len(got) != 0 {
		t.Fatalf("%d events stored after a refused append", len(got))
	}
}

func TestTooManyEventsWritesNothing(t *testing.T) {
	env := newR1(t)
	evs := make([]any, platform.MaxAppendEvents+1)
	for i := range evs {
		evs[i] = itemAdded{SKU: "s", Qty: i}
	}
	id := platform.StreamID{Type: "order", ID: "many"}
	_, err := env.store.Append(context.Background(), id, platform.NoStream(), events(evs...))
	if !errors.Is(err, platform.ErrInvalidArgument) || !strings.Contains(err.Error(), "1001") {
		t.Fatalf("want an invalid-argument error naming 1001 events, got %v", err)
	}
	// The limit itself is fine and atomic.
	res, err := env.store.Append(context.Background(), id, platform.NoStream(), events(evs[:platform.MaxAppendEvents]...))
	if err != nil || res.LastVersion != platform.MaxAppendEvents || res.LastPosition-res.FirstPosition != platform.MaxAppendEvents-1 {
		t.Fatalf("1000-event append: %+v, %v", res, err)
	}
}

// TestUnreadableEvents: an unknown type or a corrupt body is an error
// naming the type and the position, never a panic.
func TestUnreadableEvents(t *testing.T) {
	env := newR1(t)
	ctx := context.Background()
	id := platform.StreamID{Type: "order", ID: "o1"}
	if _, err := env.store.Append(ctx, id, platform.NoStream(), events(orderPlaced{"c"})); err != nil {
		t.Fatal(err)
	}
	subject, _ := env.store.Subject(id)
	publish := func(typ string, body []byte) {
		m := nats.NewMsg(subject)
		m.Header.Set("Lx-Type", typ)
		m.Header.Set("Lx-Schema", "1")
		m.Header.Set("Lx-Version", "2")
		m.Header.Set("Lx-Codec", "msgpack")
		if _, err := env.js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
		m.Data = body
	}
	publish("order.unknown", []byte{0x80})
	err := firstReadError(env.store, id)
	if !errors.Is(err, platform.ErrUnknownEventType) || !strings.Contains(err.Error(), "order.unknown") || !strings.Contains(err.Error(), "position 2") {
		t.Fatalf("unknown type: want an error naming order.unknown and position 2, got %v", err)
	}

	id2 := platform.StreamID{Type: "order", ID: "o2"}
	subject, _ = env.store.Subject(id2)
	m := nats.NewMsg(subject)
	m.Header.Set("Lx-Type", "order.placed")
	m.Header.Set("Lx-Schema", "1")
	m.Header.Set("Lx-Version", "1")
	m.Header.Set("Lx-Codec", "msgpack")
	m.Data = []byte{0xc1, 0xff, 0x00} // 0xc1 is never used in msgpack
	ack, err := env.js.PublishMsg(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	err = firstReadError(env.store, id2)
	if !errors.Is(err, platform.ErrCorruptEvent) || !strings.Contains(err.Error(), "order.placed") || !strings.Contains(err.Error(), "position "+uitoa(ack.Sequence)) {
		t.Fatalf("corrupt body: want a corrupt-event error naming order.placed and position %d, got %v", ack.Sequence, err)
	}

	m = nats.NewMsg(subject)
	m.Header.Set("Lx-Type", "order.placed")
	ack, _ = env.js.PublishMsg(ctx, m)
	for _, err := range env.store.ReadAll(ctx, ack.Sequence-1) {
		if !errors.Is(err, platform.ErrCorruptEvent) || !strings.Contains(err.Error(), "Lx-Version") {
			t.Fatalf("missing version header: got %v", err)
		}
		break
	}
}

func firstReadError(st platform.EventStore, id platform.StreamID) error {
	for _, err := range st.Read(context.Background(), id, platform.Revision{}) {
		if err != nil {
			return err
		}
	}
	return nil
}

func uitoa(n uint64) string { return strconv.FormatUint(n, 10) }

// TestRetryWithSameIDsIsIdempotent: a caller that lost an append's answer
// and retries with the same event IDs gets the original result, not a
// conflict and not a second copy; with the position known (the
// repository's case) and without it.
func TestRetryWithSameIDsIsIdempotent(t *testing.T) {
	env := newR1(t)
	ctx := context.Background()
	id := platform.StreamID{Type: "order", ID: "retry"}
	last, err := env.store.Append(ctx, id, platform.NoStream(), events(orderPlaced{"c"}))
	if err != nil {
		t.Fatal(err)
	}
	for _, withPosition := range []bool{true, false} {
		expected := platform.Exact(last.LastVersion)
		if withPosition {
			expected = platform.ExactRevision(last.Revision())
		}
		evs := []platform.Envelope{{ID: platform.NewEventID(), Event: itemAdded{SKU: "a"}}, {ID: platform.NewEventID(), Event: itemAdded{SKU: "b"}}}
		res1, err := env.store.Append(ctx, id, expected, evs)
		if err != nil {
			t.Fatal(err)
		}
		res2, err := env.store.Append(ctx, id, expected, evs)
		if err != nil || res2 != res1 {
			t.Fatalf("retry with %v: %+v, %v; want %+v", expected, res2, err, res1)
		}
		// A different append at the same expected version is a conflict.
		if _, err := env.store.Append(ctx, id, expected, events(itemAdded{SKU: "other"})); !errors.Is(err, platform.ErrConcurrency) {
			t.Fatalf("another append at %v: want a conflict, got %v", expected, err)
		}
		if last, err = env.store.Append(ctx, id, platform.ExactRevision(res1.Revision()), events(itemAdded{SKU: "c"})); err != nil {
			t.Fatal(err)
		}
	}
	got := readStream(t, env.store, id)
	if len(got) != 7 {
		t.Fatalf("%d events stored, want 7: a retry stored a copy", len(got))
	}
	for i, e := range got {
		if e.Version != uint64(i+1) {
			t.Fatalf("event %d has version %d", i, e.Version)
		}
	}
}

// TestRetryAnyWithSameIDs: an append that expects Any names no version,
// so the server's duplicate window (Nats-Msg-Id) is what keeps a retry
// from storing a copy, also after other writers moved the aggregate on.
func TestRetryAnyWithSameIDs(t *testing.T) {
	for _, group := range []bool{false, true} {
		t.Run(map[bool]string{false: "alone", true: "group commit"}[group], func(t *testing.T) {
			env := newR1(t, func(o *lxjs.Options) {
				if group {
					lxjs.AlwaysGroup(o)
				}
			})
			ctx := context.Background()
			id := platform.StreamID{Type: "order", ID: "any"}
			if _, err := env.store.Append(ctx, id, platform.NoStream(), events(orderPlaced{"c"})); err != nil {
				t.Fatal(err)
			}
			one := []platform.Envelope{{ID: platform.NewEventID(), Event: itemAdded{SKU: "a"}}}
			two := []platform.Envelope{{ID: platform.NewEventID(), Event: itemAdded{SKU: "b"}}, {ID: platform.NewEventID(), Event: itemAdded{SKU: "c"}}}
			for _, evs := range [][]platform.Envelope{one, two} {
				res1, err := env.store.Append(ctx, id, platform.Any(), evs)
				if err != nil {
					t.Fatal(err)
				}
				if res2, err := env.store.Append(ctx, id, platform.Any(), evs); err != nil || res2 != res1 {
					t.Fatalf("retry of %d events while they are the newest: %+v, %v; want %+v", len(evs), res2, err, res1)
				}
			}
			// Another writer moves the aggregate on; the single event's
			// retry is still recognised, at its own version.
			three := []platform.Envelope{{ID: platform.NewEventID(), Event: itemAdded{SKU: "d"}}}
			res1, err := env.store.Append(ctx, id, platform.Any(), three)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := env.store.Append(ctx, id, platform.Any(), events(itemAdded{SKU: "other"})); err != nil {
				t.Fatal(err)
			}
			if res2, err := env.store.Append(ctx, id, platform.Any(), three); err != nil || res2 != res1 {
				t.Fatalf("retry after another write: %+v, %v; want %+v", res2, err, res1)
			}
			if got := readStream(t, env.store, id); len(got) != 6 {
				t.Fatalf("%d events stored, want 6: a retry stored a copy", len(got))
			}
		})
	}
}

// TestEventIDHeaders: the event ID is in Lx-Id; Nats-Msg-Id (the server's
// duplicate window) carries it only for Any appends, whose retries have no
// version to stop them; events stored with Nats-Msg-Id alone (before Lx-Id)
// still read with their ID.
func TestEventIDHeaders(t *testing.T) {
	env := newR1(t)
	ctx := context.Background()
	id := platform.StreamID{Type: "order", ID: "headers"}
	stored := func(ev platform.Envelope, expected platform.ExpectedVersion) nats.Header {
		t.Helper()
		if _, err := env.store.Append(ctx, id, expected, []platform.Envelope{ev}); err != nil {
			t.Fatal(err)
		}
		subject, _ := env.store.Subject(id)
		str, err := env.js.Stream(ctx, env.store.StreamName())
		if err != nil {
			t.Fatal(err)
		}
		m, err := str.GetLastMsgForSubject(ctx, subject)
		if err != nil {
			t.Fatal(err)
		}
		return m.Header
	}
	exact := platform.Envelope{ID: platform.NewEventID(), Event: orderPlaced{"c"}}
	h := stored(exact, platform.NoStream())
	if h.Get(lxjs.IDHeader) != exact.ID || h.Get(jetstream.MsgIDHeader) != "" {
		t.Fatalf("conditional append: Lx-Id %q, Nats-Msg-Id %q; want %q and none", h.Get(lxjs.IDHeader), h.Get(jetstream.MsgIDHeader), exact.ID)
	}
	unconditional := platform.Envelope{ID: platform.NewEventID(), Event: itemAdded{SKU: "a"}}
	h = stored(unconditional, platform.Any())
	if h.Get(lxjs.IDHeader) != unconditional.ID || h.Get(jetstream.MsgIDHeader) != unconditional.ID {
		t.Fatalf("Any append: Lx-Id %q, Nats-Msg-Id %q; want %q in both", h.Get(lxjs.IDHeader), h.Get(jetstream.MsgIDHeader), unconditional.ID)
	}

	subject, _ := env.store.Subject(id)
	old := nats.NewMsg(subject)
	for k, v := range map[string]string{"Nats-Msg-Id": "old-id", "Lx-Type": "order.item-added", "Lx-Schema": "1", "Lx-Version": "3", "Lx-Codec": "msgpack"} {
		old.Header.Set(k, v)
	}
	old.Data, _ = platform.Msgpack.Marshal(itemAdded{SKU: "old"})
	if _, err := env.js.PublishMsg(ctx, old); err != nil {
		t.Fatal(err)
	}
	got := readStream(t, env.store, id)
	if len(got) != 3 || got[0].ID != exact.ID || got[1].ID != unconditional.ID || got[2].ID != "old-id" {
		t.Fatalf("read back IDs %v; want %s, %s, old-id", ids(got), exact.ID, unconditional.ID)
	}
}

func ids(evs []platform.Envelope) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func TestStreamConfigContradictionsRefuseToStart(t *testing.T) {
	s := embeddedtest.Server(t)
	js, _ := jetstream.New(embeddedtest.Conn(t, s))
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "WQ", Subjects: []string{"wq.>"}, Retention: jetstream.WorkQueuePolicy}); err != nil {
		t.Fatal(err)
	}
	_, err := lxjs.New(ctx, js, lxjs.Options{Stream: "WQ", SubjectPrefix: "ev"})
	if !errors.Is(err, platform.ErrConfigConflict) {
		t.Fatalf("want ErrConfigConflict, got %v", err)
	}
	for _, want := range []string{"WorkQueue", "limits retention", `"ev.>"`} {
		if !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(want)) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}

	// A stream missing only what the store can set is brought up to date.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "OLD", Subjects: []string{"old.>"}, Discard: jetstream.DiscardOld}); err != nil {
		t.Fatal(err)
	}
	st, err := lxjs.New(ctx, js, lxjs.Options{Stream: "OLD", SubjectPrefix: "old"})
	if err != nil {
		t.Fatal(err)
	}
	info, _ := js.Stream(ctx, "OLD")
	cfg := info.CachedInfo().Config
	if !cfg.AllowDirect || !cfg.AllowAtomicPublish || cfg.Discard != jetstream.DiscardNew {
		t.Fatalf("stream not updated: direct %v atomic %v discard %v", cfg.AllowDirect, cfg.AllowAtomicPublish, cfg.Discard)
	}
	_ = st
}

// TestReadPagesThroughLongHistories reads an aggregate of 2,500 events,
// three pages of direct gets, interleaved with another aggregate's events,
// from the start and from revisions inside the second page.
func TestReadPagesThroughLongHistories(t *testing.T) {
	env := newR1(t)
	ctx := context.Background()
	id, other := platform.StreamID{Type: "order", ID: "long"}, platform.StreamID{Type: "order", ID: "other"}
	var rev, otherRev platform.Revision
	for _, n := range []int{1000, 1000, 500} {
		evs := make([]any, n)
		for i := range evs {
			evs[i] = itemAdded{SKU: "s", Qty: int(rev.Version) + i + 1}
		}
		res, err := env.store.Append(ctx, id, platform.ExactRevision(rev), events(evs...))
		if err != nil {
			t.Fatal(err)
		}
		rev = res.Revision()
		if res, err = env.store.Append(ctx, other, platform.ExactRevision(otherRev), events(orderPlaced{"x"})); err != nil {
			t.Fatal(err)
		}
		otherRev = res.Revision()
	}
	got := readStream(t, env.store, id)
	if len(got) != 2500 {
		t.Fatalf("read %d events, want 2500", len(got))
	}
	for i, e := range got {
		if e.Version != uint64(i+1) || e.Event.(itemAdded).Qty != i+1 || e.Stream != id {
			t.Fatalf("event %d: version %d, %+v of %s", i, e.Version, e.Event, e.Stream)
		}
	}
	for _, after := range []platform.Revision{got[1499].Revision(), {Version: 1500}} {
		n := 0
		for e, err := range env.store.Read(ctx, id, after) {
			if err != nil {
				t.Fatal(err)
			}
			if e.Version != uint64(1501+n) {
				t.Fatalf("read after %+v: event %d has version %d", after, n, e.Version)
			}
			n++
		}
		if n != 1000 {
			t.Fatalf("read after %+v: %d events, want 1000", after, n)
		}
	}
	// Stopping early leaves the store usable.
	for range env.store.Read(ctx, id, platform.Revision{}) {
		break
	}
	if got := readStream(t, env.store, other); len(got) != 3 {
		t.Fatalf("other aggregate: %d events, want 3", len(got))
	}
}

// TestAtomicTurnedOffUnderTheStore: someone switched allow_atomic off after
// the store started. A multi-event append is refused with a config
// conflict that says what to do, and writes nothing, though the batch
// goes out without waiting for an answer to its first message.
func TestAtomicTurnedOffUnderTheStore(t *testing.T) {
	ctx := context.Background()
	r := newR1(t)
	stream, err := r.js.Stream(ctx, r.store.StreamName())
	if err != nil {
		t.Fatal(err)
	}
	cfg := stream.CachedInfo().Config
	cfg.AllowAtomicPublish = false
	if _, err := r.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	id := platform.StreamID{Type: "order", ID: "o-1"}
	_, err = r.store.Append(ctx, id, platform.NoStream(), events(orderPlaced{"c"}, itemAdded{SKU: "a", Qty: 1}))
	if !errors.Is(err, platform.ErrConfigConflict) || !strings.Contains(err.Error(), "allow_atomic") {
		t.Fatalf("append of two events with atomic batches off: %v, want a config conflict naming allow_atomic", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Fatalf("%d messages stored by a refused batch", info.State.Msgs)
	}
}

// TestStreamCreatedAsTheLastOneIsDeleted: nats-server removes an account's
// streams directory in the background once its last stream is deleted; a
// store started at that moment still starts.
func TestStreamCreatedAsTheLastOneIsDeleted(t *testing.T) {
	s := embeddedtest.Server(t)
	js, err := jetstream.New(embeddedtest.Conn(t, s))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for i := range 100 {
		name := "LAST" + strconv.Itoa(i)
		st, err := lxjs.New(ctx, js, lxjs.Options{Stream: name, SubjectPrefix: strings.ToLower(name), Registry: testRegistry(), Logger: embeddedtest.Logger(t)})
		if err != nil {
			t.Fatalf("store %d, created right after the only stream was deleted: %v", i, err)
		}
		if err := js.DeleteStream(ctx, st.StreamName()); err != nil {
			t.Fatal(err)
		}
	}
}
