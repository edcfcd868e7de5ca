package handlers_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/handlers"
	"github.com/lexigram/events/platform"
)

// TestPlainNATSClientsSpeakJSON is `nats req` without a codec header: a
// JSON body is read as JSON, and every answer (a command's result, a
// query's, an error) comes back as JSON.
func TestPlainNATSClientsSpeakJSON(t *testing.T) {
	srv := embeddedtest.Server(t)
	remote := newRemote(t, embeddedtest.Conn(t, srv))
	server := newApp(t, handlers.Options{Remote: remote})
	nc := embeddedtest.Conn(t, srv) // a raw connection: no lexigram bus
	req := func(kind handlers.Kind, typ, body string) *nats.Msg {
		t.Helper()
		resp, err := nc.Request(remote.Subject(kind, typ), []byte(body), 10*time.Second)
		must(t, err)
		if !json.Valid(resp.Data) {
			t.Fatalf("%s %s %s: the reply is not JSON: %q", kind, typ, body, resp.Data)
		}
		return resp
	}

	// A command answers with its result: the aggregate, versions,
	// position and the events as JSON.
	resp := req(handlers.KindCommand, "test.place-order", `{"OrderID":"o-j1","Customer":"ada"}`)
	if code := resp.Header.Get(micro.ErrorCodeHeader); code != "" {
		t.Fatalf("place-order failed: %s %s: %s", code, resp.Header.Get(micro.ErrorHeader), resp.Data)
	}
	var res struct {
		Aggregate struct{ Type, ID string }
		Version   uint64
		Position  uint64
		Events    []struct {
			Type        string
			AggregateID string          `json:"aggregate_id"`
			Event       json.RawMessage `json:"event"`
		}
		Changes []struct {
			LastVersion  uint64 `json:"last_version"`
			LastPosition uint64 `json:"last_position"`
		}
	}
	must(t, json.Unmarshal(resp.Data, &res))
	if res.Aggregate.Type != "order" || res.Aggregate.ID != "o-j1" || res.Version != 1 || res.Position != 1 ||
		len(res.Events) != 1 || res.Events[0].Type != "test.order-placed" || res.Events[0].AggregateID != "o-j1" ||
		string(res.Events[0].Event) != `{"Customer":"ada"}` || len(res.Changes) != 1 || res.Changes[0].LastPosition != 1 {
		t.Fatalf("command result %s", resp.Data)
	}
	if stored := events(t, server.store); len(stored) != 1 || stored[0].Event != (OrderPlaced{Customer: "ada"}) {
		t.Fatalf("stored %+v", stored)
	}
	// Leading white space (a heredoc, a pretty-printed file) is JSON too.
	req(handlers.KindCommand, "test.add-item", "\n  {\"OrderID\": \"o-j1\", \"SKU\": \"pen\"}\n")

	// A command that changes nothing still answers with an object.
	resp = req(handlers.KindCommand, "test.fail", `{"What":"ok"}`)
	if resp.Header.Get(micro.ErrorCodeHeader) != "" || !strings.Contains(string(resp.Data), `"version":0`) {
		t.Errorf("a command that changed nothing answered %q", resp.Data)
	}

	// A query answers with its result.
	resp = req(handlers.KindQuery, "test.get-order", `{"OrderID":"o-j1"}`)
	var view OrderView
	must(t, json.Unmarshal(resp.Data, &view))
	if view.Customer != "ada" || len(view.Items) != 1 || view.Items[0] != "pen" {
		t.Errorf("query result %s", resp.Data)
	}

	// Errors come back as JSON with their code, in the micro error
	// headers and in the body.
	for _, c := range []struct {
		kind      handlers.Kind
		typ, body string
		code      platform.Code
		mentions  string
	}{
		{handlers.KindQuery, "test.get-order", `{"OrderID":"nobody"}`, platform.CodeQueryExecution, "nobody"},
		{handlers.KindCommand, "test.fail", `{"What":"not-found"}`, platform.CodeCommandExecution, "place it first"},
		{handlers.KindCommand, "test.place-order", `{"OrderID":"o-j2","Custmer":"bob"}`, platform.CodeInvalidArgument, "Custmer"},
		{handlers.KindCommand, "test.place-order", `{"OrderID": 7}`, platform.CodeInvalidArgument, "OrderID"},
		{handlers.KindCommand, "test.place-order", `{"Customer":"bob"}`, platform.CodeCommandExecution, "OrderID is empty"},
	} {
		resp := req(c.kind, c.typ, c.body)
		var w struct {
			Code, Message string
			Cause         *struct{ Code string }
		}
		must(t, json.Unmarshal(resp.Data, &w))
		if got := resp.Header.Get(micro.ErrorCodeHeader); got != string(c.code) || w.Code != string(c.code) || !strings.Contains(w.Message, c.mentions) {
			t.Errorf("%s %s: header code %q, body %s; want %s mentioning %q", c.typ, c.body, got, resp.Data, c.code, c.mentions)
		}
	}
	if c := codeChain(t, req(handlers.KindQuery, "test.get-order", `{"OrderID":"nobody"}`).Data); !strings.Contains(c, string(platform.CodeStreamNotFound)) {
		t.Errorf("the error's chain %s lacks the cause's code %s", c, platform.CodeStreamNotFound)
	}
	if stored := events(t, server.store); len(stored) != 2 {
		t.Errorf("%d events stored; refused commands stored some", len(stored))
	}
}

// codeChain lists the codes of a JSON error's chain.
func codeChain(t *testing.T, data []byte) string {
	t.Helper()
	type wire struct {
		Code  string
		Cause *wire
	}
	var w wire
	must(t, json.Unmarshal(data, &w))
	var codes []string
	for e := &w; e != nil; e = e.Cause {
		codes = append(codes, e.Code)
	}
	return strings.Join(codes, " ")
}

// TestMsgpackRequestsStayMsgpack: a body from a msgpack bus is never
// taken for JSON, and a header that names the codec wins over the body.
func TestMsgpackRequestsStayMsgpack(t *testing.T) {
	srv := embeddedtest.Server(t)
	remote := newRemote(t, embeddedtest.Conn(t, srv))
	server := newApp(t, handlers.Options{Remote: remote})
	nc := embeddedtest.Conn(t, srv)
	body, err := platform.Msgpack.Marshal(PlaceOrder{OrderID: "{[", Customer: "[{"})
	must(t, err)
	resp, err := nc.Request(remote.Subject(handlers.KindCommand, "test.place-order"), body, 10*time.Second)
	must(t, err)
	if code := resp.Header.Get(micro.ErrorCodeHeader); code != "" || json.Valid(resp.Data) {
		t.Fatalf("a msgpack request: code %q, reply %q; want a msgpack result", code, resp.Data)
	}
	if stored := events(t, server.store); len(stored) != 1 || stored[0].Stream.ID != "{[" {
		t.Fatalf("stored %+v", stored)
	}
	// A JSON body with the msgpack header is msgpack: it fails to decode,
	// and the error is msgpack, as the header asked.
	m := nats.NewMsg(remote.Subject(handlers.KindCommand, "test.place-order"))
	m.Header.Set(handlers.HeaderCodec, "msgpack")
	m.Data = []byte(`{"OrderID":"o-x"}`)
	resp, err = nc.RequestMsg(m, 10*time.Second)
	must(t, err)
	if code := resp.Header.Get(micro.ErrorCodeHeader); code != string(platform.CodeInvalidArgument) || json.Valid(resp.Data) {
		t.Errorf("JSON sent as msgpack: code %q, reply %q; want LXE-001 in msgpack", code, resp.Data)
	}
	// An unknown codec is an error, answered in JSON for a JSON body.
	m.Header.Set(handlers.HeaderCodec, "yaml")
	resp, err = nc.RequestMsg(m, 10*time.Second)
	must(t, err)
	if code := resp.Header.Get(micro.ErrorCodeHeader); code != string(platform.CodeInvalidArgument) || !json.Valid(resp.Data) || !strings.Contains(string(resp.Data), "yaml") {
		t.Errorf("an unknown codec: code %q, reply %q; want LXE-001 as JSON naming it", code, resp.Data)
	}
}
