package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/embedded"
	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/handlers/durable"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

type invoiceIssued struct{ Amount int }

// newInvoiceStore is a throwaway server and an event store on it, with
// the default stream and prefix, as the node's configuration has them.
func newInvoiceStore(t *testing.T) (*embedded.Server, jetstream.JetStream, *lxjs.EventStore) {
	t.Helper()
	srv := embeddedtest.Server(t)
	js, err := jetstream.New(embeddedtest.Conn(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	reg := platform.NewRegistry()
	platform.MustRegister[invoiceIssued](reg, "invoice.issued", 1)
	store, err := lxjs.New(context.Background(), js, lxjs.Options{Registry: reg, Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return srv, js, store
}

// runDLQ runs `lexigram dlq args...` and returns what it printed.
func runDLQ(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := dlqCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// TestDLQCommands: a handler dead-letters an event; the CLI lists it,
// replays it to the running handler (which now takes it) and, for a
// second one, discards it.
func TestDLQCommands(t *testing.T) {
	t.Setenv("LEXIGRAM_CONFIG", "")
	ctx := context.Background()
	srv, js, store := newInvoiceStore(t)
	var fixed atomic.Bool
	handled := make(chan int, 4)
	h, err := durable.New(ctx, js, store, "mailer", func(ctx context.Context, e platform.Envelope) error {
		inv := e.Event.(invoiceIssued)
		if inv.Amount < 0 && !fixed.Load() {
			return durable.Permanent(errors.New("negative amount"))
		}
		handled <- inv.Amount
		return nil
	}, durable.Options{Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Stop(context.Background()) })

	var positions []uint64
	for i, amount := range []int{-1, -2} {
		res, err := store.Append(ctx, platform.StreamID{Type: "invoice", ID: string(rune('a' + i))}, platform.NoStream(),
			[]platform.Envelope{{Event: invoiceIssued{Amount: amount}}})
		if err != nil {
			t.Fatal(err)
		}
		positions = append(positions, res.LastPosition)
	}
	url := srv.ClientURL()
	ids := []string{"mailer/" + strconv.FormatUint(positions[0], 10), "mailer/" + strconv.FormatUint(positions[1], 10)}
	deadline := time.Now().Add(10 * time.Second)
	var out string
	for {
		if out, err = runDLQ(t, "list", "--nats-url", url); err != nil {
			t.Fatalf("dlq list: %v\n%s", err, out)
		}
		if strings.Contains(out, ids[0]) && strings.Contains(out, ids[1]) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dlq list never showed %v:\n%s", ids, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range []string{"invoice.issued", "events.invoice.a", "terminated", `"negative amount"`} {
		if !strings.Contains(out, want) {
			t.Errorf("dlq list lacks %q:\n%s", want, out)
		}
	}

	out, err = runDLQ(t, "list", "--nats-url", url, "--handler", "mailer", "--json")
	if err != nil {
		t.Fatalf("dlq list --json: %v\n%s", err, out)
	}
	var first struct {
		ID, Subject, Error string
		Deliveries         int
	}
	if err := json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &first); err != nil {
		t.Fatalf("dlq list --json: %v\n%s", err, out)
	}
	if first.ID != ids[0] || first.Subject != "events.invoice.a" || first.Error != "negative amount" || first.Deliveries != 1 {
		t.Fatalf("dlq list --json first entry = %+v", first)
	}

	fixed.Store(true)
	if out, err := runDLQ(t, "replay", "--nats-url", url, ids[0]); err != nil || !strings.Contains(out, "replayed "+ids[0]) {
		t.Fatalf("dlq replay: %v\n%s", err, out)
	}
	select {
	case got := <-handled:
		if got != -1 {
			t.Fatalf("the replay delivered amount %d, want -1", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the replayed event did not reach the handler")
	}
	if out, err := runDLQ(t, "discard", "--nats-url", url, ids[1]); err != nil || !strings.Contains(out, "discarded "+ids[1]) {
		t.Fatalf("dlq discard: %v\n%s", err, out)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		out, err = runDLQ(t, "list", "--nats-url", url)
		if err == nil && strings.Contains(out, "no dead letters") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after replay and discard, dlq list = %v\n%s", err, out)
		}
		time.Sleep(20 * time.Millisecond)
	}

	if out, err := runDLQ(t, "discard", "--nats-url", url, "mailer"); err == nil {
		t.Fatalf("dlq discard with a malformed ID succeeded:\n%s", out)
	}
}
