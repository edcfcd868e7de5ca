package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/handlers/durable"
	"github.com/lexigram/events/platform"
)

// TestDLQBulk: after an "outage" dead-letters 30 events, `dlq ls` and
// `dlq show` describe them, a bulk discard without --yes off a terminal
// changes nothing, and `replay --handler --all --yes` sends every one
// back to the handler, which takes them.
func TestDLQBulk(t *testing.T) {
	t.Setenv("LEXIGRAM_CONFIG", "")
	ctx := context.Background()
	srv, js, store := newInvoiceStore(t)
	var healthy atomic.Bool
	var taken atomic.Int64
	h, err := durable.New(ctx, js, store, "mailer", func(ctx context.Context, e platform.Envelope) error {
		if !healthy.Load() {
			return durable.Permanent(errors.New("mail server down"))
		}
		taken.Add(1)
		return nil
	}, durable.Options{Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Stop(context.Background()) })
	const n = 30
	var first uint64
	for i := range n {
		res, err := store.Append(ctx, platform.StreamID{Type: "invoice", ID: fmt.Sprint("i", i)}, platform.NoStream(),
			[]platform.Envelope{{Event: invoiceIssued{Amount: -i - 1}}})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = res.LastPosition
		}
	}
	q, err := durable.OpenDLQ(ctx, js, store, durable.DLQOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "30 dead letters", func() bool { size, err := q.Size(ctx, "mailer"); return err == nil && size == n })

	url := srv.ClientURL()
	out, err := runDLQ(t, "ls", "--nats-url", url, "--handler", "mailer")
	if err != nil || strings.Count(out, "mail server down") != n {
		t.Fatalf("dlq ls: %v; want %d entries:\n%s", err, n, out)
	}
	id := fmt.Sprint("mailer/", first)
	out, err = runDLQ(t, "show", "--nats-url", url, "--json", id)
	if err != nil {
		t.Fatalf("dlq show: %v\n%s", err, out)
	}
	var shown struct {
		Entry struct {
			ID, Error string
			EventType string `json:"event_type"`
		}
		Event map[string]any
	}
	if err := json.Unmarshal([]byte(out), &shown); err != nil {
		t.Fatalf("dlq show --json is not JSON: %v\n%s", err, out)
	}
	if shown.Event["Amount"] != float64(-1) || shown.Entry.Error != "mail server down" || shown.Entry.ID != id || shown.Entry.EventType != "invoice.issued" {
		t.Fatalf("dlq show --json = %+v, want the first invoice (Amount -1) with its error\n%s", shown, out)
	}
	if out, err = runDLQ(t, "show", "--nats-url", url, id); err != nil || !strings.Contains(out, `"Amount": -1`) || !strings.Contains(out, "invoice.issued") {
		t.Fatalf("dlq show: %v; want the event decoded and its type:\n%s", err, out)
	}

	for args, want := range map[string]string{
		"discard --all":           "--handler NAME",
		"discard":                 "give the entry IDs",
		"replay " + id + " --all": "not both",
		"replay --handler mailer --all --since yesterday": "--since",
	} {
		if out, err := runDLQ(t, append(strings.Fields(args), "--nats-url", url)...); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("dlq %s: err %v, want one naming %q\n%s", args, err, want, out)
		}
	}
	if _, err := runDLQ(t, "discard", "--nats-url", url, "--handler", "mailer", "--all"); err == nil || !strings.Contains(err.Error(), "--yes") {
		t.Fatalf("a bulk discard off a terminal without --yes: err %v, want one asking for --yes", err)
	}
	if size, _ := q.Size(ctx, "mailer"); size != n {
		t.Fatalf("after a refused bulk discard the DLQ holds %d entries, want all %d", size, n)
	}

	healthy.Store(true)
	out, err = runDLQ(t, "replay", "--nats-url", url, "--handler", "mailer", "--all", "--since", "1h", "--yes")
	if err != nil || !strings.Contains(out, fmt.Sprintf("replayed %d dead letters of handler mailer", n)) || !strings.Contains(out, fmt.Sprintf("replayed %d/%d", n, n)) {
		t.Fatalf("dlq replay --all: %v; want %d replayed with progress:\n%s", err, n, out)
	}
	waitUntil(t, 30*time.Second, "the handler to take the 30 replayed events", func() bool { return taken.Load() >= n })
	waitUntil(t, 30*time.Second, "the DLQ to empty", func() bool { size, err := q.Size(ctx, "mailer"); return err == nil && size == 0 })
	if got := taken.Load(); got != n {
		t.Fatalf("the handler took %d events after the replay, want %d", got, n)
	}
	if out, err := runDLQ(t, "replay", "--nats-url", url, "--handler", "mailer", "--all"); err != nil || !strings.Contains(out, "no dead letters for handler mailer") {
		t.Fatalf("a bulk replay of an empty DLQ: %v\n%s", err, out)
	}
}
