package handlers_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/handlers"
	"github.com/lexigram/events/platform"
)

// newRemote is one simulated process's link to NATS.
func newRemote(t *testing.T, nc *nats.Conn) *handlers.Remote {
	t.Helper()
	r, err := handlers.NewRemote(nc, handlers.RemoteOptions{Prefix: "t", Logger: quiet()})
	must(t, err)
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// client is a process with buses and no handlers.
func client(t *testing.T, nc *nats.Conn, tp trace.TracerProvider) handlers.Buses {
	o := handlers.Options{Registry: reg, Logger: quiet(), Remote: newRemote(t, nc), TracerProvider: tp}
	return handlers.Buses{Commands: handlers.NewCommandBus(o), Queries: handlers.NewQueryBus(o)}
}

func TestRemoteRoundTripAndMicroService(t *testing.T) {
	ctx := ctxT(t)
	srv := embeddedtest.Server(t)
	serverNC, clientNC := embeddedtest.Conn(t, srv), embeddedtest.Conn(t, srv)
	server := newApp(t, handlers.Options{Remote: newRemote(t, serverNC)})
	c := client(t, clientNC, nil)

	res, err := c.Commands.Dispatch(platform.WithCorrelationID(ctx, "corr-x"), PlaceOrder{OrderID: "o-1", Customer: "ada", CmdID: "cmd-x"})
	must(t, err)
	if res.Aggregate.ID != "o-1" || res.Version != 1 || res.Position != 1 || len(res.Events) != 1 || res.Events[0].Event != (OrderPlaced{Customer: "ada"}) {
		t.Fatalf("result %+v", res)
	}
	stored := events(t, server.store)
	if len(stored) != 1 || stored[0].CausationID != "cmd-x" || stored[0].CorrelationID != "corr-x" || stored[0].ID != res.Events[0].ID {
		t.Fatalf("stored %+v; result %+v", stored, res.Events)
	}
	if e := res.Events[0]; e.CausationID != "cmd-x" || e.CorrelationID != "corr-x" || e.Type != "test.order-placed" {
		t.Errorf("result event %+v", e)
	}
	_, err = c.Commands.Dispatch(ctx, AddItem{OrderID: "o-1", SKU: "pen"})
	must(t, err)
	view, err := handlers.Ask[OrderView](ctx, c.Queries, GetOrder{OrderID: "o-1"})
	must(t, err)
	if view.Customer != "ada" || len(view.Items) != 1 || view.Items[0] != "pen" {
		t.Errorf("view %+v", view)
	}

	// What `nats micro info lexigram` shows: one endpoint per type on its subject, in the queue group.
	subj, err := micro.ControlSubject(micro.InfoVerb, "lexigram", "")
	must(t, err)
	msg, err := clientNC.Request(subj, nil, 5*time.Second)
	must(t, err)
	var info micro.Info
	must(t, json.Unmarshal(msg.Data, &info))
	found := map[string]string{}
	for _, e := range info.Endpoints {
		found[e.Subject] = e.QueueGroup
	}
	for _, s := range []string{"t.cmd.test.place-order", "t.cmd.test.add-item", "t.qry.test.get-order"} {
		if found[s] != "lexigram" {
			t.Errorf("endpoint %s: queue group %q (endpoints %v)", s, found[s], found)
		}
	}
	// `nats micro stats`: micro counts a request after its reply is sent, so poll.
	requests := func() int {
		subj, _ := micro.ControlSubject(micro.StatsVerb, "lexigram", "")
		msg, err := clientNC.Request(subj, nil, 5*time.Second)
		must(t, err)
		var stats micro.Stats
		must(t, json.Unmarshal(msg.Data, &stats))
		n := 0
		for _, e := range stats.Endpoints {
			n += e.NumRequests
		}
		return n
	}
	eventually(t, "micro stats to count 3 requests", func() bool { return requests() == 3 })
}

func TestRemoteErrorsKeepCodeAndMessage(t *testing.T) {
	ctx := ctxT(t)
	srv := embeddedtest.Server(t)
	server := newApp(t, handlers.Options{Remote: newRemote(t, embeddedtest.Conn(t, srv))})
	c := client(t, embeddedtest.Conn(t, srv), nil)

	_, err := c.Commands.Dispatch(ctx, Fail{What: "concurrency"})
	var ce *platform.ConcurrencyError
	if !errors.As(err, &ce) || ce.Actual != 5 || ce.Stream.ID != "o-9" || !errors.Is(err, platform.ErrConcurrency) || !errors.Is(err, platform.ErrCommandExecution) {
		t.Fatalf("conflict across the wire: %#v", err)
	}
	if platform.CodeOf(err) != platform.CodeCommandExecution {
		t.Errorf("code %q", platform.CodeOf(err))
	}
	// The same message as in the serving process.
	_, local := server.buses.Commands.Dispatch(ctx, Fail{What: "concurrency"})
	strip := func(err error) string { // the command IDs differ
		s := err.Error()
		i, j := strings.Index(s, "("), strings.Index(s, ")")
		return s[:i] + s[j:]
	}
	if strip(err) != strip(local) {
		t.Errorf("message across the wire:\n%s\nin process:\n%s", err, local)
	}

	_, err = c.Commands.Dispatch(ctx, PlaceOrder{Customer: "no id"})
	if !errors.Is(err, platform.ErrInvalidArgument) || !errors.Is(err, platform.ErrCommandExecution) || !strings.Contains(err.Error(), "OrderID is empty: give the order an ID") {
		t.Errorf("invalid command across the wire: %v", err)
	}
	_, err = c.Commands.Dispatch(ctx, Fail{What: "panic"})
	if !errors.Is(err, platform.ErrHandlerPanic) {
		t.Errorf("panic across the wire: %v", err)
	}
	_, err = handlers.Ask[OrderView](ctx, c.Queries, GetOrder{OrderID: "o-404"})
	if !errors.Is(err, platform.ErrQueryExecution) || !errors.Is(err, platform.ErrStreamNotFound) {
		t.Errorf("failed query across the wire: %v", err)
	}
}

func TestRemoteNoHandlerAndDuplicates(t *testing.T) {
	ctx := ctxT(t)
	srv := embeddedtest.Server(t)
	c := client(t, embeddedtest.Conn(t, srv), nil)
	if _, err := c.Commands.Dispatch(ctx, PlaceOrder{OrderID: "o-1"}); !errors.Is(err, platform.ErrNoHandler) || !strings.Contains(err.Error(), "t.cmd.test.place-order") {
		t.Errorf("nobody serves the command: %v", err)
	}
	if _, err := handlers.Ask[OrderView](ctx, c.Queries, GetOrder{}); !errors.Is(err, platform.ErrNoHandler) {
		t.Errorf("nobody serves the query: %v", err)
	}

	// A scope closed in the serving process: the endpoint answers no handler, across the wire.
	remote := newRemote(t, embeddedtest.Conn(t, srv))
	cmds := handlers.NewCommandBus(handlers.Options{Registry: reg, Logger: quiet(), Remote: remote})
	scope := handlers.NewScope("orders", handlers.Buses{Commands: cmds})
	must(t, handlers.HandleCommand(scope, func(context.Context, AddItem) error { return nil }))
	if err := handlers.HandleCommand(cmds, func(context.Context, AddItem) error { return nil }); !errors.Is(err, platform.ErrDuplicateHandler) || !strings.Contains(err.Error(), "scope orders") {
		t.Errorf("duplicate in the serving process: %v", err)
	}
	if _, err := c.Commands.Dispatch(ctx, AddItem{OrderID: "o-1"}); err != nil {
		t.Fatal(err)
	}
	scope.Close()
	_, err := c.Commands.Dispatch(ctx, AddItem{OrderID: "o-1"})
	if !errors.Is(err, platform.ErrNoHandler) || platform.CodeOf(err) != platform.CodeNoHandler {
		t.Errorf("after the scope closed: %v", err)
	}
	// Registering again reuses the endpoint.
	must(t, handlers.HandleCommand(cmds, func(context.Context, AddItem) error { return nil }))
	if _, err := c.Commands.Dispatch(ctx, AddItem{OrderID: "o-1"}); err != nil {
		t.Fatal(err)
	}
	if n := len(remote.Service().Info().Endpoints); n != 1 {
		t.Errorf("%d endpoints, want 1", n)
	}
	// A second bus on the same Remote cannot serve the same type.
	other := handlers.NewCommandBus(handlers.Options{Registry: reg, Logger: quiet(), Remote: remote})
	if err := handlers.HandleCommand(other, func(context.Context, AddItem) error { return nil }); !errors.Is(err, platform.ErrDuplicateHandler) {
		t.Errorf("a second bus serving the type on one Remote: %v", err)
	}
	if other.Handles("test.add-item") {
		t.Error("the refused handler stayed registered")
	}
}

func TestRemoteSharedByQueueGroup(t *testing.T) {
	ctx := ctxT(t)
	srv := embeddedtest.Server(t)
	var remotes []*handlers.Remote
	for range 2 { // the same handler in two processes is not a duplicate: they share the load
		r := newRemote(t, embeddedtest.Conn(t, srv))
		remotes = append(remotes, r)
		newApp(t, handlers.Options{Remote: r})
	}
	c := client(t, embeddedtest.Conn(t, srv), nil)
	const n = 40
	for range n {
		if _, err := c.Commands.Dispatch(ctx, Fail{What: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	handledBy := func(r *handlers.Remote) int {
		n := 0
		for _, e := range r.Service().Stats().Endpoints {
			n += e.NumRequests
		}
		return n
	}
	eventually(t, "micro stats to count every command", func() bool { return handledBy(remotes[0])+handledBy(remotes[1]) == n })
	total := 0
	for i, r := range remotes {
		got := 0
		for _, e := range r.Service().Stats().Endpoints {
			got += e.NumRequests
		}
		if got == 0 {
			t.Errorf("process %d handled none of %d commands", i, n)
		}
		total += got
	}
	if total != n {
		t.Errorf("%d handled, want %d", total, n)
	}
}

func TestRemoteDeadlineHonoured(t *testing.T) {
	srv := embeddedtest.Server(t)
	server := newApp(t, handlers.Options{Remote: newRemote(t, embeddedtest.Conn(t, srv))})
	c := client(t, embeddedtest.Conn(t, srv), nil)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Commands.Dispatch(ctx, Sleep{For: time.Minute})
	if !errors.Is(err, platform.ErrHandlerTimeout) {
		t.Fatalf("caller: %v", err)
	}
	// The remote handler's context carried the caller's deadline.
	select {
	case got := <-server.slept:
		if !errors.Is(got, context.DeadlineExceeded) {
			t.Errorf("the remote handler's context ended with %v", got)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("the remote handler ran %s past a 300ms deadline", took)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the remote handler's context never ended: the deadline did not travel")
	}
}

func TestCorrelationFollowsAcrossProcesses(t *testing.T) {
	ctx := ctxT(t)
	srv := embeddedtest.Server(t)
	server := newApp(t, handlers.Options{Remote: newRemote(t, embeddedtest.Conn(t, srv))})
	c := client(t, embeddedtest.Conn(t, srv), nil)
	// In the server process, an event handler sends a follow-up command
	// through a third process's bus, which the server handles again.
	relay := client(t, embeddedtest.Conn(t, srv), nil)
	must(t, handlers.HandleEvent(server.buses.Events, "welcome-gift", func(ctx context.Context, e OrderPlaced) error {
		_, err := relay.Commands.Dispatch(ctx, AddItem{OrderID: "o-1", SKU: "gift"})
		return err
	}))
	server.run(t)

	_, err := c.Commands.Dispatch(platform.WithCorrelationID(ctx, "corr-42"), PlaceOrder{OrderID: "o-1", Customer: "ada", CmdID: "cmd-1"})
	must(t, err)
	var stored []platform.Envelope
	eventually(t, "the follow-up event", func() bool { stored = events(t, server.store); return len(stored) == 2 })
	placed, added := stored[0], stored[1]
	if placed.CorrelationID != "corr-42" || added.CorrelationID != "corr-42" {
		t.Errorf("correlation IDs %q, %q: want corr-42 for both", placed.CorrelationID, added.CorrelationID)
	}
	if placed.CausationID != "cmd-1" || added.CausationID == "" || added.CausationID == "cmd-1" || added.CausationID == placed.ID {
		t.Errorf("causation IDs %q, %q: want cmd-1 and the follow-up command's ID", placed.CausationID, added.CausationID)
	}
}

func TestTraceContextAcrossProcesses(t *testing.T) {
	ctx := ctxT(t)
	tr := newTracing(t)
	srv := embeddedtest.Server(t)
	server := newApp(t, handlers.Options{Remote: newRemote(t, embeddedtest.Conn(t, srv)), TracerProvider: tr.tp})
	handled := make(chan struct{}, 1)
	must(t, handlers.HandleEvent(server.buses.Events, "mailer", func(context.Context, OrderPlaced) error { handled <- struct{}{}; return nil }))
	server.run(t)
	c := client(t, embeddedtest.Conn(t, srv), tr.tp)

	ctx, root := tr.tp.Tracer("test").Start(ctx, "request")
	res, err := c.Commands.Dispatch(platform.WithCorrelationID(ctx, "corr-t"), PlaceOrder{OrderID: "o-1", CmdID: "cmd-t"})
	must(t, err)
	root.End()
	<-handled
	want := []string{"request", "dispatch command test.place-order", "handle command test.place-order", "dispatch event test.order-placed", "handle event test.order-placed"}
	spans := make([]tracetest.SpanStub, len(want))
	eventually(t, "every span to end", func() bool {
		for i, w := range want {
			var ok bool
			if spans[i], ok = tr.span(w); !ok {
				return false
			}
		}
		return true
	})
	traceID := root.SpanContext().TraceID()
	for _, s := range spans {
		if s.SpanContext.TraceID() != traceID {
			t.Fatalf("span %q is in trace %s, want %s", s.Name, s.SpanContext.TraceID(), traceID)
		}
	}
	// Each step is the child of the one before.
	for i := 1; i < len(spans); i++ {
		parent, child := spans[i-1], spans[i]
		if child.Parent.SpanID() != parent.SpanContext.SpanID() {
			t.Errorf("%q's parent is %s, want %q (%s)", child.Name, child.Parent.SpanID(), parent.Name, parent.SpanContext.SpanID())
		}
	}
	// The hops between processes go through NATS headers and the stored
	// event; within a process the parent is the local span.
	for i, remote := range []bool{false, false, true, true, false} {
		if got := spans[i].Parent.IsRemote(); got != remote {
			t.Errorf("%q's parent is remote: %t, want %t", spans[i].Name, got, remote)
		}
	}
	cmd := []attribute.KeyValue{attribute.String("lexigram.kind", "command"), attribute.String("lexigram.type", "test.place-order"),
		attribute.String("lexigram.id", "cmd-t"), attribute.String("lexigram.correlation_id", "corr-t")}
	checkSpan(t, spans[1], trace.SpanKindClient, cmd...)
	checkSpan(t, spans[2], trace.SpanKindServer, cmd...)
	checkSpan(t, spans[3], trace.SpanKindConsumer, attribute.String("lexigram.kind", "event"), attribute.String("lexigram.type", "test.order-placed"),
		attribute.String("lexigram.id", res.Events[0].ID), attribute.Int64("lexigram.position", int64(res.Position)), attribute.Int("lexigram.handlers", 1))
	checkSpan(t, spans[4], trace.SpanKindConsumer, attribute.String("lexigram.kind", "event"), attribute.String("lexigram.type", "test.order-placed"),
		attribute.String("lexigram.id", res.Events[0].ID), attribute.String("lexigram.correlation_id", "corr-t"), attribute.String("lexigram.handler", "mailer"))
}

func TestRemoteWorkersAndJSONCodec(t *testing.T) {
	ctx := ctxT(t)
	srv := embeddedtest.Server(t)
	r, err := handlers.NewRemote(embeddedtest.Conn(t, srv), handlers.RemoteOptions{Prefix: "t", Workers: 2, Logger: quiet()})
	must(t, err)
	t.Cleanup(func() { _ = r.Close() })
	server := newApp(t, handlers.Options{Remote: r})
	if n := len(r.Service().Info().Endpoints); n != 2*5 {
		t.Errorf("%d endpoints for 5 types and 2 workers, want 10", n)
	}
	// Commands of one type run at once in one process. The workers are
	// members of the queue group like other processes' are, and the server
	// picks one at random: of 16 commands, two land on different workers
	// but with a chance of 2^-15.
	const n = 16
	started := make(chan struct{}, n)
	release := make(chan struct{})
	type Hold struct{ N int }
	hreg := platform.NewRegistry()
	platform.MustRegister[Hold](hreg, "test.hold", 1)
	hold := handlers.NewCommandBus(handlers.Options{Registry: hreg, Logger: quiet(), Remote: r})
	must(t, handlers.HandleCommand(hold, func(context.Context, Hold) error { started <- struct{}{}; <-release; return nil }))
	sender := handlers.NewCommandBus(handlers.Options{Registry: hreg, Logger: quiet(), Remote: newRemote(t, embeddedtest.Conn(t, srv)), Codec: platform.JSON})
	errs := make(chan error, n)
	for i := range n {
		go func() { _, err := sender.Dispatch(ctx, Hold{N: i}); errs <- err }()
	}
	for range 2 {
		select {
		case <-started:
		case <-ctx.Done():
			t.Fatal("a second command did not start while the first ran: one worker only")
		}
	}
	close(release)
	for range n {
		must(t, <-errs)
	}
	// The JSON codec travels in a header; the server answers in kind.
	jc := handlers.NewCommandBus(handlers.Options{Registry: reg, Logger: quiet(), Remote: newRemote(t, embeddedtest.Conn(t, srv)), Codec: platform.JSON})
	res, err := jc.Dispatch(ctx, PlaceOrder{OrderID: "o-j", Customer: "jo"})
	must(t, err)
	if len(res.Events) != 1 || res.Events[0].Event != (OrderPlaced{Customer: "jo"}) {
		t.Errorf("JSON round trip: %+v", res)
	}
	if got := events(t, server.store); len(got) != 1 || got[0].Event != (OrderPlaced{Customer: "jo"}) {
		t.Errorf("stored %+v", got)
	}
}

func TestRemoteCloseCancelsRunningHandlers(t *testing.T) {
	srv := embeddedtest.Server(t)
	r, err := handlers.NewRemote(embeddedtest.Conn(t, srv), handlers.RemoteOptions{Prefix: "t", Logger: quiet()})
	must(t, err)
	t.Cleanup(func() { _ = r.Close() })
	type Hold struct{}
	hreg := platform.NewRegistry()
	platform.MustRegister[Hold](hreg, "test.hold", 1)
	started, ended := make(chan struct{}), make(chan error, 1)
	served := handlers.NewCommandBus(handlers.Options{Registry: hreg, Logger: quiet(), Remote: r})
	must(t, handlers.HandleCommand(served, func(ctx context.Context, _ Hold) error {
		close(started)
		<-ctx.Done()
		ended <- ctx.Err()
		return ctx.Err()
	}))
	sender := handlers.NewCommandBus(handlers.Options{Registry: hreg, Logger: quiet(), Remote: newRemote(t, embeddedtest.Conn(t, srv))})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	errs := make(chan error, 1)
	go func() { _, err := sender.Dispatch(ctx, Hold{}); errs <- err }()
	<-started
	must(t, r.Close())
	if got := <-ended; !errors.Is(got, context.Canceled) {
		t.Errorf("the handler's context ended with %v, want cancelled", got)
	}
	if err := <-errs; err == nil {
		t.Error("the cancelled command reported success")
	}
	if err := handlers.HandleQuery(handlers.NewQueryBus(handlers.Options{Registry: reg, Remote: r}), func(context.Context, GetOrder) (int, error) { return 0, nil }); err == nil {
		t.Error("a closed Remote served a new handler")
	}
}

// TestRemoteShutdownLetsRunningHandlersAnswer: Shutdown stops taking
// requests at once but waits for the one under way, whose caller gets its
// answer; a request sent after it finds no responder.
func TestRemoteShutdownLetsRunningHandlersAnswer(t *testing.T) {
	srv := embeddedtest.Server(t)
	r, err := handlers.NewRemote(embeddedtest.Conn(t, srv), handlers.RemoteOptions{Prefix: "t", Logger: quiet()})
	must(t, err)
	type Hold struct{}
	hreg := platform.NewRegistry()
	platform.MustRegister[Hold](hreg, "test.hold", 1)
	started, release := make(chan struct{}), make(chan struct{})
	served := handlers.NewCommandBus(handlers.Options{Registry: hreg, Logger: quiet(), Remote: r})
	must(t, handlers.HandleCommand(served, func(ctx context.Context, _ Hold) error {
		close(started)
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}))
	sender := handlers.NewCommandBus(handlers.Options{Registry: hreg, Logger: quiet(), Remote: newRemote(t, embeddedtest.Conn(t, srv))})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	answered := make(chan error, 1)
	go func() { _, err := sender.Dispatch(ctx, Hold{}); answered <- err }()
	<-started
	shutDown := make(chan error, 1)
	go func() { shutDown <- r.Shutdown(ctx) }()
	select {
	case err := <-shutDown:
		t.Fatalf("Shutdown returned (%v) while a handler was still running", err)
	case <-time.After(100 * time.Millisecond):
	}
	late, lateCancel := context.WithTimeout(ctx, 2*time.Second)
	defer lateCancel()
	if _, err := sender.Dispatch(late, Hold{}); err == nil {
		t.Error("a command sent after Shutdown began was served")
	}
	close(release)
	if err := <-answered; err != nil {
		t.Errorf("the command under way at Shutdown: %v, want its answer", err)
	}
	if err := <-shutDown; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// TestRemoteBadTimeoutHeader: a sender that is not a lexigram bus and
// sends a deadline that is not a duration gets an invalid-argument error
// naming the header, and the handler never runs.
func TestRemoteBadTimeoutHeader(t *testing.T) {
	srv := embeddedtest.Server(t)
	remote := newRemote(t, embeddedtest.Conn(t, srv))
	server := newApp(t, handlers.Options{Remote: remote})
	nc := embeddedtest.Conn(t, srv)
	m := nats.NewMsg(remote.Subject(handlers.KindCommand, "test.place-order"))
	m.Header.Set(handlers.HeaderTimeout, "soon")
	m.Data, _ = platform.Msgpack.Marshal(PlaceOrder{OrderID: "o-bad", Customer: "ada"})
	resp, err := nc.RequestMsg(m, 10*time.Second)
	must(t, err)
	if code, desc := resp.Header.Get(micro.ErrorCodeHeader), resp.Header.Get(micro.ErrorHeader); code != string(platform.CodeInvalidArgument) || !strings.Contains(desc, handlers.HeaderTimeout) || !strings.Contains(desc, `"soon"`) {
		t.Fatalf("reply code %q, error %q: want %s naming %s and its value", code, desc, platform.CodeInvalidArgument, handlers.HeaderTimeout)
	}
	if stored := events(t, server.store); len(stored) != 0 {
		t.Fatalf("%d events stored by a request that was refused", len(stored))
	}
}

// Requests reuse their messages: what one request sent (correlation,
// causation, trace context) must not reach the next. The ID and the time
// left travel in the request prefix.
func TestRemoteRequestsCarryOnlyTheirOwn(t *testing.T) {
	ctx := ctxT(t)
	tr := newTracing(t)
	srv := embeddedtest.Server(t)
	server := newApp(t, handlers.Options{Remote: newRemote(t, embeddedtest.Conn(t, srv))})
	server.run(t)
	c := client(t, embeddedtest.Conn(t, srv), tr.tp)
	watch := embeddedtest.Conn(t, srv)
	seen, err := watch.SubscribeSync("t.cmd.>")
	must(t, err)
	must(t, watch.Flush())

	traced, span := tr.tp.Tracer("test").Start(platform.WithCausationID(platform.WithCorrelationID(ctx, "corr-1"), "cause-1"), "request")
	_, err = c.Commands.Dispatch(traced, PlaceOrder{OrderID: "o-1", Customer: "ada", CmdID: "cmd-1"})
	span.End()
	must(t, err)
	plain, cancel := context.WithTimeout(ctx, 7*time.Second)
	defer cancel()
	_, err = c.Commands.Dispatch(plain, PlaceOrder{OrderID: "o-2", Customer: "bob", CmdID: "cmd-2"})
	must(t, err)

	first, err := seen.NextMsgWithContext(ctx)
	must(t, err)
	for _, h := range []string{handlers.HeaderCorrelationID, handlers.HeaderCausationID, "traceparent"} {
		if first.Header.Get(h) == "" {
			t.Errorf("the first request has no %s header: %v", h, first.Header)
		}
	}
	if id, _, _, ok, err := handlers.CutPrefix(first.Data); !ok || err != nil || id != "cmd-1" {
		t.Errorf("the first request's prefix: ID %q, present %t, %v: want cmd-1", id, ok, err)
	}
	second, err := seen.NextMsgWithContext(ctx)
	must(t, err)
	// The second request starts a trace of its own (its dispatch span),
	// and has nothing else to put in headers.
	traceOf := func(m *nats.Msg) string { // "00-<trace ID>-...": the trace ID, or "" without one
		if tp := m.Header.Get("traceparent"); len(tp) >= 35 {
			return tp[3:35]
		}
		return ""
	}
	if got := len(second.Header); got != 1 || traceOf(second) == "" || traceOf(second) == traceOf(first) {
		t.Errorf("the second request's headers are %v: want only a traceparent of another trace than %s", second.Header, first.Header.Get("traceparent"))
	}
	id, timeLeft, body, ok, err := handlers.CutPrefix(second.Data)
	if !ok || err != nil || id != "cmd-2" {
		t.Fatalf("the second request's prefix: ID %q, present %t, %v: want cmd-2", id, ok, err)
	}
	if left, err := time.ParseDuration(timeLeft); err != nil || left <= 6*time.Second || left > 7*time.Second {
		t.Errorf("time left %q: want the 7s the caller had left, to the millisecond (%v)", timeLeft, err)
	}
	var cmd PlaceOrder
	if err := platform.Msgpack.Unmarshal(body, &cmd); err != nil || cmd.OrderID != "o-2" {
		t.Errorf("the body after the prefix decodes to %+v, %v", cmd, err)
	}
}

// An ID too long for the request prefix (255 bytes with the time left)
// travels in a header.
func TestRemoteLongIDTravelsInAHeader(t *testing.T) {
	ctx := ctxT(t)
	srv := embeddedtest.Server(t)
	server := newApp(t, handlers.Options{Remote: newRemote(t, embeddedtest.Conn(t, srv))})
	c := client(t, embeddedtest.Conn(t, srv), nil)
	long := strings.Repeat("i", 250)
	_, err := c.Commands.Dispatch(ctx, PlaceOrder{OrderID: "o-1", Customer: "ada", CmdID: long})
	must(t, err)
	if stored := events(t, server.store); len(stored) != 1 || stored[0].CausationID != long {
		t.Fatalf("stored %+v: want one event caused by the %d-character ID", stored, len(long))
	}
}

// A foreign sender's malformed prefix is refused with an error that says
// what was wrong, and nothing runs.
func TestRemoteBadPrefix(t *testing.T) {
	srv := embeddedtest.Server(t)
	remote := newRemote(t, embeddedtest.Conn(t, srv))
	server := newApp(t, handlers.Options{Remote: remote})
	nc := embeddedtest.Conn(t, srv)
	body, _ := platform.Msgpack.Marshal(PlaceOrder{OrderID: "o-bad", Customer: "ada"})
	for name, data := range map[string][]byte{
		"truncated":   {0xC1, 'L', 40, 'x'},
		"no space":    append([]byte{0xC1, 'L', 5, 'a', 'b', 'c', 'd', 'e'}, body...),
		"bad seconds": append([]byte{0xC1, 'L', 8, 'i', 'd', ' ', 's', 'o', 'o', 'n', '!'}, body...),
	} {
		resp, err := nc.Request(remote.Subject(handlers.KindCommand, "test.place-order"), data, 10*time.Second)
		must(t, err)
		if code, desc := resp.Header.Get(micro.ErrorCodeHeader), resp.Header.Get(micro.ErrorHeader); code != string(platform.CodeInvalidArgument) || !strings.Contains(desc, "prefix") {
			t.Errorf("%s: reply code %q, error %q: want %s naming the request prefix", name, code, desc, platform.CodeInvalidArgument)
		}
	}
	if stored := events(t, server.store); len(stored) != 0 {
		t.Fatalf("%d events stored by requests that were refused", len(stored))
	}
}
