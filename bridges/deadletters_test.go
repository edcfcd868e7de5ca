package bridges_test

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/bridges/memory"
	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/platform"
)

// listDeadLetters lists a bridge's dead letters through the operator API.
func listDeadLetters(t *testing.T, q *bridges.DeadLetterQueue, bridge string) []bridges.DeadLetter {
	t.Helper()
	var out []bridges.DeadLetter
	for dl, err := range q.List(t.Context(), bridge) {
		if err != nil {
			t.Fatalf("list the dead letters of %q: %v", bridge, err)
		}
		out = append(out, dl)
	}
	return out
}

// TestOutboundDeadLettersListReplayDiscard: the operator API lists a
// bridge's dead letters with their reason, subject, sequence and the
// event; a replay the broker refuses again leaves the dead letter as it
// was; once the broker takes it, a replay delivers the event and removes
// the dead letter; discard removes one for good; a second discard, or a
// dead letter that does not exist, is an invalid argument.
func TestOutboundDeadLettersListReplayDiscard(t *testing.T) {
	js := newJS(t)
	st := newStore(t, js, platform.JSON)
	q := bridges.NewDeadLetterQueue(js)
	if got := listDeadLetters(t, q, ""); len(got) != 0 {
		t.Fatalf("before any bridge ran: %d dead letters", len(got))
	}
	b := memory.NewBroker()
	var refusing atomic.Bool
	refusing.Store(true)
	b.Refuse(func(_ string, m *bridges.Message) error {
		if refusing.Load() && (strings.Contains(string(m.Data), `"b-2"`) || strings.Contains(string(m.Data), `"a-3"`)) {
			return errors.New("message too large for the queue")
		}
		return nil
	})
	out, err := bridges.NewOutbound(t.Context(), js, b.Publisher("q"), bridges.OutboundOptions{
		Name: "refusing", Stream: st.StreamName(), SubjectPrefix: st.SubjectPrefix(), Logger: embeddedtest.Logger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	stopped(t, out.Stop)
	appendEvents(t, st, []string{"a", "b"}, 3)
	ch, _ := b.Subscriber("q", 100).Subscribe(t.Context())
	collect(t, ch, 4)
	deadLetters(t, js, "refusing", 2)

	dls := listDeadLetters(t, q, "refusing")
	if len(dls) != 2 {
		t.Fatalf("%d dead letters listed, want 2", len(dls))
	}
	first := dls[0]
	if first.Bridge != "refusing" || first.Direction != "outbound" || !strings.Contains(first.Reason, "too large") ||
		first.Subject != "events.order.b" || first.Sequence == 0 || first.MessageID == "" || first.Header.Get("Lx-Type") != "order.item-added" ||
		!strings.Contains(string(first.Data), `"b-2"`) || first.Time.IsZero() || first.Header.Get(bridges.HeaderReason) != "" {
		t.Fatalf("first dead letter: %+v (body %s)", first, first.Data)
	}
	if all := listDeadLetters(t, q, ""); len(all) != 2 {
		t.Errorf("every bridge's dead letters: %d, want 2", len(all))
	}
	var listErr error
	for _, err := range q.List(t.Context(), "not.a.name") {
		listErr = err
	}
	if platform.CodeOf(listErr) != platform.CodeInvalidArgument || !strings.Contains(listErr.Error(), "one subject token") {
		t.Errorf("listing a bad bridge name: %v", listErr)
	}

	if err := out.Replay(t.Context(), first); platform.CodeOf(err) != platform.CodeBridgeDelivery || !strings.Contains(err.Error(), "refused it again") {
		t.Fatalf("a replay the broker refuses again: %v", err)
	}
	if again, err := q.Get(t.Context(), first.Seq); err != nil || again.Reason != first.Reason {
		t.Fatalf("after a refused replay the dead letter is %+v, %v: want it as it was", again, err)
	}

	refusing.Store(false)
	if err := out.Replay(t.Context(), first); err != nil {
		t.Fatalf("replay: %v", err)
	}
	if got := collect(t, ch, 1); !strings.Contains(string(got[0].Data), `"b-2"`) || got[0].ID != first.MessageID {
		t.Fatalf("the replay delivered %s (id %s), want event b-2 (id %s)", got[0].Data, got[0].ID, first.MessageID)
	}
	if _, err := q.Get(t.Context(), first.Seq); platform.CodeOf(err) != platform.CodeInvalidArgument {
		t.Fatalf("the replayed dead letter is still there: %v", err)
	}

	second := listDeadLetters(t, q, "refusing")
	if len(second) != 1 || !strings.Contains(string(second[0].Data), `"a-3"`) {
		t.Fatalf("after the replay: %+v", second)
	}
	if err := q.Discard(t.Context(), second[0].Seq); err != nil {
		t.Fatal(err)
	}
	if err := q.Discard(t.Context(), second[0].Seq); platform.CodeOf(err) != platform.CodeInvalidArgument || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("a second discard: %v", err)
	}
	if left := listDeadLetters(t, q, ""); len(left) != 0 {
		t.Errorf("%d dead letters left", len(left))
	}
	if b.Len("q") != 0 {
		t.Errorf("the discarded event reached the broker")
	}
}

// TestInboundDeadLetterReplay: an inbound dead letter keeps the message
// as the broker gave it, headers and body, so that once the cause is
// fixed (here the subject function learns the message's topic) a replay
// stores it as a new delivery would have, and removes the dead letter; a
// dead letter of another bridge is refused.
func TestInboundDeadLetterReplay(t *testing.T) {
	js := newJS(t)
	s := inStream(t, js)
	b := memory.NewBroker()
	var known atomic.Bool
	in := startInbound(t, js, b.Subscriber("q", 0), bridges.InboundOptions{Name: "picky", Format: bridges.CloudEventsBinary,
		SubjectFunc: func(m *bridges.Message) string {
			if m.Header["ce-type"] == "thing.new" && !known.Load() {
				return ""
			}
			return "in.things"
		}})
	h := bridges.Header{"ce-specversion": "1.0", "ce-id": "e9", "ce-source": "urn:x", "ce-type": "thing.new", "Content-Type": "application/json"}
	if err := b.Publisher("q").Publish(t.Context(), &bridges.Message{ID: "9", Header: h, Data: []byte(`{"new":true}`)}); err != nil {
		t.Fatal(err)
	}
	deadLetters(t, js, "picky", 1)
	q := bridges.NewDeadLetterQueue(js)
	dls := listDeadLetters(t, q, "picky")
	if len(dls) != 1 || dls[0].Direction != "inbound" || dls[0].MessageID != "9" || dls[0].Header.Get("ce-type") != "thing.new" || string(dls[0].Data) != `{"new":true}` {
		t.Fatalf("inbound dead letter: %+v", dls)
	}
	if err := in.Replay(t.Context(), dls[0]); platform.CodeOf(err) != platform.CodeBridgeDelivery || !strings.Contains(err.Error(), "no subject") {
		t.Fatalf("a replay that still cannot be stored: %v", err)
	}
	known.Store(true)
	if err := in.Replay(t.Context(), dls[0]); err != nil {
		t.Fatalf("replay: %v", err)
	}
	got := stored(t, s, "in.things", 1)
	if h := got[0].Headers(); h.Get("Lx-Id") != "e9" || h.Get("Lx-Type") != "thing.new" || string(got[0].Data()) != `{"new":true}` {
		t.Fatalf("the replayed message stored as %v %s", h, got[0].Data())
	}
	if left := listDeadLetters(t, q, "picky"); len(left) != 0 {
		t.Fatalf("%d dead letters left after the replay", len(left))
	}
	other := dls[0]
	other.Bridge = "someone-else"
	if err := in.Replay(t.Context(), other); platform.CodeOf(err) != platform.CodeInvalidArgument {
		t.Errorf("replaying another bridge's dead letter: %v", err)
	}
}
