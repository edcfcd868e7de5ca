package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/lexigram/events/node/httpapi"
	"github.com/lexigram/events/platform"
)

// dial opens the event stream with the query.
func (e *env) dial(t *testing.T, query string, header http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.srv.URL, "http")+"/api/stream?"+query, &websocket.DialOptions{HTTPHeader: header})
	if err == nil {
		c.SetReadLimit(1 << 20)
		t.Cleanup(func() { _ = c.CloseNow() })
	}
	return c, resp, err
}

// next reads one event from the stream, within 20s.
func next(t *testing.T, c *websocket.Conn) event {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	typ, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read the stream: %v", err)
	}
	if typ != websocket.MessageText {
		t.Fatalf("message type %v, want text", typ)
	}
	var ev event
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return ev
}

func (e *env) deposit(t *testing.T, account string, amount int) result {
	t.Helper()
	var r result
	e.do(t, "POST", "/api/commands/test.deposit", fmt.Sprintf(`{"account":%q,"amount":%d}`, account, amount)).ok(t, &r)
	return r
}

// TestStreamFilters: the aggregate filters work on the server's subjects
// and the event type filter here; a client resumes from a position; one
// without from gets only new events.
func TestStreamFilters(t *testing.T) {
	e := start(t, httpapi.Options{})
	live, _, err := e.dial(t, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	e.do(t, "POST", "/api/commands/test.open-account", `{"id":"acc-1","owner":"ada"}`).ok(t, &result{})
	e.do(t, "POST", "/api/commands/test.open-account", `{"id":"acc 2","owner":"bob"}`).ok(t, &result{})
	var mine []uint64
	for i := 1; i <= 3; i++ {
		mine = append(mine, e.deposit(t, "acc-1", i).Position)
		e.deposit(t, "acc 2", i)
	}
	if ev := next(t, live); ev.Type != "test.opened" || ev.AggregateID != "acc-1" || ev.Position != 1 || string(ev.Event) != `{"owner":"ada"}` {
		t.Fatalf("the first live event: %+v", ev)
	}

	filtered, _, err := e.dial(t, "aggregate_type=account&aggregate_id=acc-1&event_type=test.deposited,test.other&from=0", nil)
	if err != nil {
		t.Fatal(err)
	}
	last := e.deposit(t, "acc-1", 100).Position // the end marker
	for _, want := range append(mine, last) {
		if ev := next(t, filtered); ev.Position != want || ev.AggregateID != "acc-1" || ev.Type != "test.deposited" {
			t.Fatalf("filtered: %+v, want the deposit on acc-1 at %d", ev, want)
		}
	}

	other, _, err := e.dial(t, "aggregate_id=acc%202", nil) // any type, one ID, new events only
	if err != nil {
		t.Fatal(err)
	}
	e.deposit(t, "acc-1", 7)
	d := e.deposit(t, "acc 2", 8)
	if ev := next(t, other); ev.Position != d.Position || ev.AggregateID != "acc 2" {
		t.Fatalf("by ID, new only: %+v, want the deposit at %d", ev, d.Position)
	}

	resumed, _, err := e.dial(t, fmt.Sprintf("aggregate_type=account&event_type=test.deposited&from=%d", mine[1]), nil)
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(t, resumed); ev.Position != mine[1]+1 {
		t.Fatalf("resumed after %d: %+v, want position %d", mine[1], ev, mine[1]+1)
	}

	for q, field := range map[string]string{"from=x": "from", "aggregate_type=a.b": "aggregate_type", "aggregate_id=" + strings.Repeat("x", 2000): "aggregate_id"} {
		p := e.do(t, "GET", "/api/stream?"+q, "").problem(t, http.StatusBadRequest)
		if p.Field != field {
			t.Fatalf("%s: %+v, want field %s", q, p, field)
		}
	}
}

// TestStreamToken: the stream takes the token as a header or a query
// parameter and refuses a missing or wrong one before upgrading.
func TestStreamToken(t *testing.T) {
	e := start(t, httpapi.Options{Token: "tok", Public: true})
	for _, q := range []string{"", "token=wrong"} {
		_, resp, err := e.dial(t, q, nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
			t.Fatalf("dial with %q: %v %v, want 401", q, err, resp)
		}
	}
	byHeader, _, err := e.dial(t, "", http.Header{"Authorization": {"Bearer tok"}})
	if err != nil {
		t.Fatal(err)
	}
	byQuery, _, err := e.dial(t, "token=tok", nil)
	if err != nil {
		t.Fatal(err)
	}
	e.do(t, "POST", "/api/commands/test.open-account", `{"id":"acc-1","owner":"ada"}`, "Authorization", "Bearer tok").ok(t, &result{})
	for _, c := range []*websocket.Conn{byHeader, byQuery} {
		if ev := next(t, c); ev.Type != "test.opened" {
			t.Fatalf("%+v", ev)
		}
	}
	// The query parameter is for the stream only.
	e.do(t, "GET", "/api/streams?token=tok", "").problem(t, http.StatusUnauthorized)
}

// TestStreamSlowClient: a client that stops reading is cut off with a
// policy violation naming the position to resume from, which is the
// last one it got; resuming there goes on with the next event.
func TestStreamSlowClient(t *testing.T) {
	slow := make(chan struct{}, 1)
	opts := httpapi.Options{StreamBuffer: 2, SlowClientTimeout: 200 * time.Millisecond}
	httpapi.OnSlow(&opts, func() { slow <- struct{}{} })
	e := start(t, opts)
	c, _, err := e.dial(t, "from=0", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Big events fill the socket buffers, then the queue, while the
	// client reads nothing.
	note := strings.Repeat("n", 64<<10)
	stream := platform.StreamID{Type: "ledger", ID: "big"}
	const events = 400
	appended := 0
	for ; appended < events; appended++ {
		select {
		case <-slow:
		default:
			if _, err := e.n.Store().Append(t.Context(), stream, platform.Any(), []platform.Envelope{{Event: Deposited{Amount: appended, Note: note}}}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		break
	}
	if appended == events {
		select {
		case <-slow:
		case <-time.After(30 * time.Second):
			t.Fatalf("%d events of 64 KiB unread, and the client was not found slow within 30s", events)
		}
	}
	t.Logf("found slow after %d appends", appended)
	var last uint64
	var closeErr error
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		_, b, err := c.Read(ctx)
		cancel()
		if err != nil {
			closeErr = err
			break
		}
		var ev event
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Position != last+1 {
			t.Fatalf("position %d after %d", ev.Position, last)
		}
		last = ev.Position
	}
	var ce websocket.CloseError
	if !errors.As(closeErr, &ce) || ce.Code != websocket.StatusPolicyViolation {
		t.Fatalf("the stream ended with %v, want a close with status %d", closeErr, websocket.StatusPolicyViolation)
	}
	if want := fmt.Sprintf("too slow: reconnect with from=%d", last); ce.Reason != want {
		t.Fatalf("close reason %q, want %q", ce.Reason, want)
	}
	if last >= uint64(appended) {
		t.Fatalf("the client got all %d events before it was cut off", last)
	}
	again, _, err := e.dial(t, fmt.Sprintf("from=%d", last), nil)
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(t, again); ev.Position != last+1 {
		t.Fatalf("resumed: position %d, want %d", ev.Position, last+1)
	}
}
