package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lexigram/events/node/httpapi"
)

// TestCommandRoundTrip: a command posted as JSON runs its handler, the
// answer says what it changed, the Idempotency-Key reaches the handler,
// and a second open of the same account is a 409.
func TestCommandRoundTrip(t *testing.T) {
	e := start(t, httpapi.Options{})
	var opened result
	e.do(t, "POST", "/api/commands/test.open-account", `{"id":"acc-1","owner":"ada"}`).ok(t, &opened)
	if opened.Aggregate == nil || opened.Aggregate.Type != "account" || opened.Aggregate.ID != "acc-1" || opened.Version != 1 || opened.Position == 0 {
		t.Fatalf("open: %+v", opened)
	}
	if len(opened.Events) != 1 || opened.Events[0].Type != "test.opened" || string(opened.Events[0].Event) != `{"owner":"ada"}` ||
		opened.Events[0].Position != opened.Position || opened.Events[0].ID == "" {
		t.Fatalf("open events: %+v", opened.Events)
	}
	if len(opened.Changes) != 1 || opened.Changes[0].LastPosition != opened.Position || opened.Changes[0].Durability == "" {
		t.Fatalf("open changes: %+v", opened.Changes)
	}

	var dep result
	e.do(t, "POST", "/api/commands/test.deposit", `{"account":"acc-1","amount":5}`, "Idempotency-Key", "key-1").ok(t, &dep)
	if dep.Version != 2 || dep.Position <= opened.Position {
		t.Fatalf("deposit: %+v", dep)
	}
	e.mu.Lock()
	keys := fmt.Sprint(e.keys)
	e.mu.Unlock()
	if keys != "[key-1]" {
		t.Fatalf("the handler saw idempotency keys %s, want [key-1]", keys)
	}

	p := e.do(t, "POST", "/api/commands/test.open-account", `{"id":"acc-1","owner":"bob"}`).problem(t, http.StatusConflict)
	if p.Code != "LXE-004" {
		t.Fatalf("second open: %+v, want LXE-004", p)
	}
}

// TestProblems: every kind of bad request is a problem with the right
// status, code and field, never a 500.
func TestProblems(t *testing.T) {
	e := start(t, httpapi.Options{MaxBodyBytes: 256, WaitTimeout: 300 * time.Millisecond})
	e.do(t, "POST", "/api/commands/test.open-account", `{"id":"acc-1","owner":"ada"}`).ok(t, &result{})
	long := strings.Repeat("x", 300)
	cases := []struct {
		name, method, path, body string
		header                   []string
		status                   int
		code, field              string
	}{
		{"bad JSON", "POST", "/api/commands/test.deposit", `{"account":`, nil, 400, "LXE-001", "body"},
		{"not JSON", "POST", "/api/commands/test.deposit", `{"account" 1}`, nil, 400, "LXE-001", "body"},
		{"wrong field type", "POST", "/api/commands/test.deposit", `{"account":"acc-1","amount":"five"}`, nil, 400, "LXE-001", "amount"},
		{"unknown field", "POST", "/api/commands/test.deposit", `{"account":"acc-1","amount":5,"bogus":1}`, nil, 400, "LXE-001", "bogus"},
		{"an array", "POST", "/api/commands/test.deposit", `[1]`, nil, 400, "LXE-001", "body"},
		{"two values", "POST", "/api/commands/test.deposit", `{"account":"acc-1","amount":5} {}`, nil, 400, "LXE-001", "body"},
		{"not json content", "POST", "/api/commands/test.deposit", `x`, []string{"Content-Type", "text/plain"}, 415, "LXE-001", "Content-Type"},
		{"too large", "POST", "/api/commands/test.deposit", `{"account":"acc-1","amount":5,"note":"` + long + `"}`, nil, 413, "LXE-001", "body"},
		{"unregistered type", "POST", "/api/commands/test.nope", `{}`, nil, 404, "LXE-002", "type"},
		{"no handler", "POST", "/api/commands/test.opened", `{"owner":"x"}`, nil, 404, "LXE-012", ""},
		{"validation", "POST", "/api/commands/test.deposit", `{"account":"acc-1","amount":-1}`, nil, 422, "LXE-001", ""},
		{"handler refuses", "POST", "/api/commands/test.deposit", `{"account":"acc-1","amount":2000000}`, nil, 422, "LXE-005", ""},
		{"unknown aggregate", "POST", "/api/commands/test.deposit", `{"account":"acc-9","amount":1}`, nil, 404, "LXE-007", ""},
		{"long idempotency key", "POST", "/api/commands/test.deposit", `{"account":"acc-1","amount":1}`, []string{"Idempotency-Key", long}, 400, "LXE-001", "Idempotency-Key"},
		{"query unknown param", "GET", "/api/queries/test.get-balance?acount=acc-1", "", nil, 400, "LXE-001", "acount"},
		{"query bad int", "GET", "/api/queries/test.get-balance?account=acc-1&min=many", "", nil, 400, "LXE-001", "min"},
		{"query bad time", "GET", "/api/queries/test.get-balance?since=yesterday", "", nil, 400, "LXE-001", "since"},
		{"query repeated scalar", "GET", "/api/queries/test.get-balance?account=a&account=b", "", nil, 400, "LXE-001", "account"},
		{"query bad wait-for", "GET", "/api/queries/test.get-balance?wait-for=soon", "", nil, 400, "LXE-001", "wait-for"},
		{"query unknown projection", "GET", "/api/queries/test.get-balance?wait-for=1&wait-for-projection=nope", "", nil, 404, "LXE-001", "wait-for-projection"},
		{"query wait times out", "GET", "/api/queries/test.get-balance?wait-for=1000000", "", nil, 504, "LXE-006", "wait-for"},
		{"query unregistered", "GET", "/api/queries/test.nope", "", nil, 404, "LXE-002", "type"},
		{"query no handler", "GET", "/api/queries/test.deposit", "", nil, 404, "LXE-012", ""},
		{"aggregate missing", "GET", "/api/aggregates/account/acc-9/events", "", nil, 404, "LXE-007", "id"},
		{"aggregate bad after", "GET", "/api/aggregates/account/acc-1/events?after=-1", "", nil, 400, "LXE-001", "after"},
		{"aggregate bad limit", "GET", "/api/aggregates/account/acc-1/events?limit=0", "", nil, 400, "LXE-001", "limit"},
		{"aggregate bad type", "GET", "/api/aggregates/acc%20ount/acc-1/events", "", nil, 400, "LXE-001", "id"},
		{"dlq bad limit", "GET", "/api/dlq?limit=5000", "", nil, 400, "LXE-001", "limit"},
		{"unknown route", "GET", "/api/nothing", "", nil, 404, "LXE-001", ""},
		{"wrong method", "GET", "/api/commands/test.deposit", "", nil, 405, "LXE-001", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := e.do(t, c.method, c.path, c.body, c.header...).problem(t, c.status)
			if p.Code != c.code || p.Field != c.field {
				t.Fatalf("problem %+v: want code %s field %q", p, c.code, c.field)
			}
		})
	}
	if r := e.do(t, "GET", "/api/commands/test.deposit", ""); r.header.Get("Allow") != "POST" {
		t.Fatalf("405 Allow %q, want POST", r.header.Get("Allow"))
	}
}

// TestQueryWaitFor: a query with wait-for sees the command it waits for,
// through the projection; parameters fill fields by JSON name, lists
// from repeated or comma-separated values.
func TestQueryWaitFor(t *testing.T) {
	e := start(t, httpapi.Options{})
	e.do(t, "POST", "/api/commands/test.open-account", `{"id":"acc-1","owner":"ada"}`).ok(t, &result{})
	total := 0
	for i := 1; i <= 5; i++ {
		var dep result
		e.do(t, "POST", "/api/commands/test.deposit", fmt.Sprintf(`{"account":"acc-1","amount":%d}`, i)).ok(t, &dep)
		total += i
		var b Balance
		e.do(t, "GET", fmt.Sprintf("/api/queries/test.get-balance?account=acc-1&wait-for=%d&tags=a,b&tags=c", dep.Position), "").ok(t, &b)
		if b.Account != "acc-1" || b.Total != total || fmt.Sprint(b.Tags) != "[a b c]" {
			t.Fatalf("after deposit %d: %+v, want total %d and tags [a b c]", i, b, total)
		}
	}
	var b Balance
	e.do(t, "GET", "/api/queries/test.get-balance?Account=acc-1&wait-for=1&wait-for-projection=balances", "").ok(t, &b)
	if b.Account != "acc-1" {
		t.Fatalf("a field named regardless of case: %+v", b)
	}
}

// TestAggregateHistory: the history pages by version, and the pages
// together are the whole history in order.
func TestAggregateHistory(t *testing.T) {
	e := start(t, httpapi.Options{})
	e.do(t, "POST", "/api/commands/test.open-account", `{"id":"acc 1/ü","owner":"ada"}`).ok(t, &result{})
	for i := 1; i <= 6; i++ {
		e.do(t, "POST", "/api/commands/test.deposit", fmt.Sprintf(`{"account":"acc 1/ü","amount":%d}`, i)).ok(t, &result{})
	}
	var got []event
	after, pages := uint64(0), 0
	for {
		var page struct {
			Aggregate struct{ Type, ID string } `json:"aggregate"`
			Events    []event                   `json:"events"`
			Next      uint64                    `json:"next"`
		}
		e.do(t, "GET", fmt.Sprintf("/api/aggregates/account/acc%%201%%2F%%C3%%BC/events?limit=3&after=%d", after), "").ok(t, &page)
		if page.Aggregate.ID != "acc 1/ü" {
			t.Fatalf("aggregate %+v", page.Aggregate)
		}
		pages++
		got = append(got, page.Events...)
		if page.Next == 0 {
			break
		}
		if len(page.Events) != 3 || page.Next != page.Events[2].Version {
			t.Fatalf("page %d: %d events, next %d", pages, len(page.Events), page.Next)
		}
		after = page.Next
	}
	if pages != 3 || len(got) != 7 {
		t.Fatalf("%d pages, %d events; want 3 pages, 7 events", pages, len(got))
	}
	for i, ev := range got {
		if ev.Version != uint64(i+1) || ev.AggregateID != "acc 1/ü" {
			t.Fatalf("event %d: %+v", i, ev)
		}
		if i > 0 && string(ev.Event) != fmt.Sprintf(`{"amount":%d}`, i) {
			t.Fatalf("event %d: %s", i, ev.Event)
		}
	}
}

// TestListings: streams, projections, sagas and dead letters list what
// the node has.
func TestListings(t *testing.T) {
	e := start(t, httpapi.Options{})
	e.do(t, "POST", "/api/commands/test.open-account", `{"id":"acc-1","owner":"ada"}`).ok(t, &result{})
	var streams struct {
		Streams []struct {
			Name       string `json:"name"`
			Events     bool   `json:"events"`
			Messages   uint64 `json:"messages"`
			Durability string `json:"durability"`
		} `json:"streams"`
	}
	e.do(t, "GET", "/api/streams", "").ok(t, &streams)
	found := false
	for _, s := range streams.Streams {
		if s.Events {
			found = s.Name == e.n.Store().StreamName() && s.Messages == 1 && s.Durability != ""
		}
	}
	if !found {
		t.Fatalf("streams: %+v, want the event stream with 1 message", streams)
	}
	var projs struct {
		Projections []struct {
			Name  string `json:"name"`
			State string `json:"state"`
		} `json:"projections"`
	}
	e.do(t, "GET", "/api/projections", "").ok(t, &projs)
	if len(projs.Projections) != 1 || projs.Projections[0].Name != "balances" || projs.Projections[0].State == "" {
		t.Fatalf("projections: %+v", projs)
	}
	var sg map[string][]json.RawMessage
	e.do(t, "GET", "/api/sagas", "").ok(t, &sg)
	if l, ok := sg["sagas"]; !ok || len(l) != 0 {
		t.Fatalf("sagas: %v", sg)
	}
	var dl map[string][]json.RawMessage
	e.do(t, "GET", "/api/dlq?handler=ledger", "").ok(t, &dl)
	if l, ok := dl["dead_letters"]; !ok || len(l) != 0 {
		t.Fatalf("dlq: %v", dl)
	}
}

// TestToken: with a token every route wants it; a public listener
// without one refuses everything, saying why; the token never shows up
// in answers or logs.
func TestToken(t *testing.T) {
	var logs bytes.Buffer
	const token = "s3cret-token-value"
	e := start(t, httpapi.Options{Token: token, Public: true, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	for _, c := range []struct {
		name   string
		header []string
		err    string
	}{
		{"none", nil, ""},
		{"wrong", []string{"Authorization", "Bearer nope"}, "invalid_token"},
		{"malformed", []string{"Authorization", "Basic " + token}, "invalid_request"},
	} {
		for _, path := range []string{"/api/streams", "/api/openapi.json", "/api/queries/test.get-balance", "/api/nothing"} {
			r := e.do(t, "GET", path, "", c.header...)
			p := r.problem(t, http.StatusUnauthorized)
			want := `Bearer realm="lexigram"`
			if c.err != "" {
				want += `, error="` + c.err + `"`
			}
			if got := r.header.Get("WWW-Authenticate"); got != want {
				t.Fatalf("%s %s: WWW-Authenticate %q, want %q", c.name, path, got, want)
			}
			if strings.Contains(string(r.body), token) || !strings.Contains(p.Fix, "token") {
				t.Fatalf("%s %s: %s", c.name, path, r.body)
			}
		}
	}
	e.do(t, "GET", "/api/streams", "", "Authorization", "Bearer "+token).ok(t, &map[string]any{})
	e.do(t, "POST", "/api/commands/test.open-account", `{"id":"acc-1","owner":"ada"}`, "Authorization", "bearer "+token).ok(t, &result{})
	if strings.Contains(logs.String(), token) {
		t.Fatalf("the logs carry the token: %s", logs.String())
	}

	closed := start(t, httpapi.Options{Public: true})
	p := closed.do(t, "GET", "/api/streams", "").problem(t, http.StatusUnauthorized)
	if !strings.Contains(p.Fix, "http.token") || !strings.Contains(p.Fix, "LEXIGRAM_HTTP_TOKEN") {
		t.Fatalf("a public node without a token: %+v, want the fix to name http.token", p)
	}
	closed.do(t, "GET", "/api/streams", "", "Authorization", "Bearer anything").problem(t, http.StatusUnauthorized)

	open := start(t, httpapi.Options{})
	open.do(t, "GET", "/api/streams", "").ok(t, &map[string]any{})
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "localhost:80": true, "[::1]:8080": true, "127.0.0.2:1": true,
		":8080": false, "0.0.0.0:8080": false, "[::]:80": false, "10.0.0.1:80": false, "example.com:80": false, "": false,
	} {
		if got := httpapi.IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

// TestProjectionActions: pause stops a projection (a deposit meanwhile is
// not applied), resume catches it up, rebuild of a projection that is not
// generational says so, and an unknown one is a 404.
func TestProjectionActions(t *testing.T) {
	e := start(t, httpapi.Options{})
	e.do(t, "POST", "/api/commands/test.open-account", `{"id":"acc-1","owner":"ada"}`).ok(t, &result{})
	type status struct {
		Name     string `json:"name"`
		State    string `json:"state"`
		Position uint64 `json:"position"`
	}
	var s status
	e.do(t, "POST", "/api/projections/balances/pause", "").ok(t, &s)
	if s.State != "STOPPED" {
		t.Fatalf("after pause the projection is %+v, want STOPPED", s)
	}
	var res result
	e.do(t, "POST", "/api/commands/test.deposit", `{"account":"acc-1","amount":5}`).ok(t, &res)
	e.do(t, "GET", "/api/projections/balances", "").ok(t, &s)
	if s.Position >= res.Position {
		t.Fatalf("a paused projection applied position %d (status %+v)", res.Position, s)
	}
	e.do(t, "POST", "/api/projections/balances/resume", "").ok(t, &s)
	var b Balance
	e.do(t, "GET", fmt.Sprintf("/api/queries/test.get-balance?account=acc-1&wait-for=%d", res.Position), "").ok(t, &b)
	if b.Total != 5 {
		t.Fatalf("after resume the balance is %d, want 5", b.Total)
	}
	if r := e.do(t, "POST", "/api/projections/balances/rebuild", ""); r.status < 400 || r.status >= 500 || !strings.Contains(string(r.body), "Generational") {
		t.Fatalf("rebuild of a projection that is not generational: %d %s", r.status, r.body)
	}
	if r := e.do(t, "GET", "/api/projections/nope", ""); r.status != 404 || !strings.Contains(string(r.body), "balances") {
		t.Fatalf("an unknown projection: %d %s, want 404 naming the ones there are", r.status, r.body)
	}
	if r := e.do(t, "POST", "/api/projections/balances/explode", ""); r.status != 404 {
		t.Fatalf("an unknown action: %d %s, want 404", r.status, r.body)
	}
}
