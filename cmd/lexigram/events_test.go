package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lexigram/events/platform"
)

// runEvents runs `lexigram events args...` and returns stdout and stderr.
func runEvents(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	cmd := eventsCommand()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// TestEventsCommands: tail and get print what is stored, decoded without
// the Go types; export then import into another stream copies it, and an
// import cut short finishes when run again, with nothing twice.
func TestEventsCommands(t *testing.T) {
	t.Setenv("LEXIGRAM_CONFIG", "")
	srv, _, store := newInvoiceStore(t)
	ctx := context.Background()
	const invoices = 20
	for i := range invoices {
		id := platform.StreamID{Type: "invoice", ID: fmt.Sprint("inv-", i)}
		if _, err := store.Append(ctx, id, platform.NoStream(), []platform.Envelope{{Event: invoiceIssued{Amount: i}}, {Event: invoiceIssued{Amount: 100 + i}}}); err != nil {
			t.Fatal(err)
		}
	}
	url := srv.ClientURL()

	out, _, err := runEvents(t, "tail", "--nats-url", url)
	if err != nil || strings.Count(out, "invoice.issued") != 10 {
		t.Fatalf("events tail: %v; want the last 10 events:\n%s", err, out)
	}
	out, _, err = runEvents(t, "tail", "invoice/inv-3", "--from", "0", "--json", "--nats-url", url)
	if err != nil {
		t.Fatalf("events tail --json: %v\n%s", err, out)
	}
	var got []struct {
		Version int
		Type    string
		Event   map[string]any
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var e struct {
			Version int
			Type    string
			Event   map[string]any
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("events tail --json line %q: %v", line, err)
		}
		got = append(got, e)
	}
	if len(got) != 2 || got[1].Version != 2 || got[1].Event["Amount"] != float64(103) || got[0].Type != "invoice.issued" {
		t.Fatalf("events tail invoice/inv-3 --json = %+v, want its two events with Amount 3 and 103", got)
	}
	if out, _, err = runEvents(t, "get", "invoice", "inv-7", "--nats-url", url); err != nil || !strings.Contains(out, `{"Amount":107}`) {
		t.Fatalf("events get: %v\n%s", err, out)
	}
	if _, _, err = runEvents(t, "get", "invoice", "nobody", "--nats-url", url); err != nil {
		t.Fatalf("events get of an aggregate with no events: %v", err)
	}

	dir := t.TempDir()
	file := filepath.Join(dir, "events.jsonl")
	if _, errOut, err := runEvents(t, "export", "--output", file, "--nats-url", url); err != nil || !strings.Contains(errOut, fmt.Sprintf("exported %d events", 2*invoices)) {
		t.Fatalf("events export: %v\n%s", err, errOut)
	}
	copyConfig := filepath.Join(dir, "copy.yaml")
	if err := os.WriteFile(copyConfig, []byte("store:\n  stream: COPY\n  subject_prefix: copy\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	part := filepath.Join(dir, "part.jsonl")
	if err := os.WriteFile(part, []byte(strings.Join(lines[:15], "")), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errOut, err := runEvents(t, "import", part, "--config", copyConfig, "--nats-url", url); err != nil || !strings.Contains(errOut, "15 events appended, 0 already stored") {
		t.Fatalf("events import of the first 15 lines: %v\n%s", err, errOut)
	}
	if _, errOut, err := runEvents(t, "import", file, "--config", copyConfig, "--nats-url", url); err != nil || !strings.Contains(errOut, fmt.Sprintf("%d events appended, 15 already stored", 2*invoices-15)) {
		t.Fatalf("events import run again: %v\n%s", err, errOut)
	}
	out, _, err = runEvents(t, "tail", "--from", "0", "--json", "--config", copyConfig, "--nats-url", url)
	if err != nil || strings.Count(out, "\n") != 2*invoices {
		t.Fatalf("the copy holds %d events, want %d (%v)", strings.Count(out, "\n"), 2*invoices, err)
	}
	if _, _, err := runEvents(t, "import", filepath.Join(dir, "missing.jsonl"), "--nats-url", url); err == nil || !strings.Contains(err.Error(), "missing.jsonl") {
		t.Fatalf("import of a missing file: %v, want an error naming it", err)
	}
}

// TestNATSContext: --context connects with a nats CLI context file, as
// the nats CLI would, and an unknown one says how to list them.
func TestNATSContext(t *testing.T) {
	t.Setenv("LEXIGRAM_CONFIG", "")
	srv, _, store := newInvoiceStore(t)
	if _, err := store.Append(context.Background(), platform.StreamID{Type: "invoice", ID: "ctx"}, platform.NoStream(), []platform.Envelope{{Event: invoiceIssued{Amount: 42}}}); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", home)
	if err := os.MkdirAll(filepath.Join(home, "nats", "context"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "nats", "context", "local.json"), []byte(`{"url": "`+srv.ClientURL()+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		t.Cleanup(func() { natsContext = "" })
		root := rootCommand()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(args)
		err := root.ExecuteContext(context.Background())
		return out.String(), err
	}
	if out, err := run("events", "get", "invoice", "ctx", "--context", "local"); err != nil || !strings.Contains(out, `{"Amount":42}`) {
		t.Fatalf("events get --context local: %v\n%s", err, out)
	}
	if _, err := run("events", "get", "invoice", "ctx", "--context", "nowhere"); err == nil || !strings.Contains(err.Error(), "nats context ls") {
		t.Fatalf("an unknown context: %v, want an error saying how to list them", err)
	}
}
