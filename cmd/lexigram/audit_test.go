package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lexigram/events/config"
	"github.com/lexigram/events/jetstream/audit"
	"github.com/lexigram/events/platform"
)

// runAudit runs `lexigram audit args...` and returns its stdout and stderr.
func runAudit(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := auditCommand()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err = cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// TestAudit: a clean stream audits clean (exit 0); after deleting an
// event in the middle of an aggregate the audit names it (exit 1), as a
// table and as JSON; one aggregate can be checked alone, and an expected
// heads file finds a lost postfix. Through the binary too.
func TestAudit(t *testing.T) {
	t.Setenv("LEXIGRAM_CONFIG", "")
	ctx := context.Background()
	srv, js, store := newInvoiceStore(t)
	var positions []uint64
	for i := range 4 {
		for _, id := range []string{"a", "b"} {
			res, err := store.Append(ctx, platform.StreamID{Type: "invoice", ID: id}, platform.Exact(uint64(i)), []platform.Envelope{{Event: invoiceIssued{Amount: i}}})
			if err != nil {
				t.Fatal(err)
			}
			if id == "b" {
				positions = append(positions, res.LastPosition)
			}
		}
	}
	url := srv.ClientURL()

	out, progress, err := runAudit(t, "--nats-url", url)
	if err != nil {
		t.Fatalf("a clean stream: %v\n%s", err, out)
	}
	for _, want := range []string{"stream EVENTS, every aggregate: 8 events in 2 aggregates, positions 1..8 (0 deleted), 8 chained",
		"lost-middle       0", "lost-postfix      not checked (pass --expect-heads)", "hash-mismatch     0", "\nclean\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("the clean report lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(progress, "audit: checked 8 events in") {
		t.Errorf("no progress on stderr: %q", progress)
	}

	stream, err := js.Stream(ctx, "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.DeleteMsg(ctx, positions[1]); err != nil { // b's version 2
		t.Fatal(err)
	}
	out, _, err = runAudit(t, "--nats-url", url)
	if err == nil || err.Error() != "audit of stream EVENTS found 1 problem" {
		t.Fatalf("a lost event: %v\n%s", err, out)
	}
	want := fmt.Sprintf("lost-middle invoice/b version 2 at positions [%d %d]: version 3 at position %d follows version 1 at position %d", positions[0], positions[2], positions[2], positions[0])
	if !strings.Contains(out, "lost-middle       1") || !strings.Contains(out, want) {
		t.Fatalf("the report lacks the lost event (%q):\n%s", want, out)
	}

	out, _, err = runAudit(t, "--nats-url", url, "--json")
	if err == nil {
		t.Fatalf("--json on a lost event: no error\n%s", out)
	}
	var rep audit.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if rep.Counts[audit.LostMiddle] != 1 || len(rep.Findings) != 1 || rep.Findings[0].Aggregate != "invoice/b" ||
		rep.Findings[0].Positions[1] != positions[2] || rep.Events != 7 || rep.Deleted != 1 {
		t.Fatalf("--json report: %s", out)
	}

	if out, _, err := runAudit(t, "--nats-url", url, "--aggregate", "invoice/a"); err != nil || !strings.Contains(out, "stream EVENTS, invoice/a: 4 events in 1 aggregates") {
		t.Fatalf("--aggregate invoice/a: %v\n%s", err, out)
	}
	heads := filepath.Join(t.TempDir(), "heads.json")
	if err := os.WriteFile(heads, []byte(`{"invoice/a": 6}`), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err = runAudit(t, "--nats-url", url, "--aggregate", "invoice/a", "--expect-heads", heads)
	if err == nil || !strings.Contains(out, "lost-postfix invoice/a versions 5..6 at positions [7]") {
		t.Fatalf("--expect-heads: %v\n%s", err, out)
	}

	// The binary exits 1 on the lost event, 0 on a clean aggregate.
	for _, c := range []struct {
		args []string
		code int
	}{{[]string{"--all"}, 1}, {[]string{"--aggregate", "invoice/a"}, 0}} {
		cmd := exec.Command(lexigramBinary(t), append([]string{"audit", "--nats-url", url}, c.args...)...)
		cmd.Env = append(os.Environ(), "LEXIGRAM_CONFIG=")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != c.code || !strings.Contains(stderr.String(), "audit: checked") {
			t.Fatalf("lexigram audit %v: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", c.args, code, c.code, stdout.String(), stderr.String())
		}
		if c.code == 1 && !strings.Contains(stderr.String(), "lexigram: audit of stream EVENTS found 1 problem") {
			t.Fatalf("lexigram audit %v: stderr %s", c.args, stderr.String())
		}
	}
}

// TestAuditErrors: what keeps the audit from running is an error naming
// the cause and the fix.
func TestAuditErrors(t *testing.T) {
	t.Setenv("LEXIGRAM_CONFIG", "")
	srv, _, _ := newInvoiceStore(t)
	url := srv.ClientURL()
	heads := filepath.Join(t.TempDir(), "heads.json")
	if err := os.WriteFile(heads, []byte(`{"invoice": 6}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--nats-url", "nats://127.0.0.1:1"}, "connect to NATS at nats://127.0.0.1:1"},
		{[]string{"--nats-url", url, "--stream", "NOPE"}, `stream "NOPE" does not exist on this server: name the event stream with --stream`},
		{[]string{"--nats-url", url, "--all", "--aggregate", "invoice/a"}, "--all and --aggregate exclude each other"},
		{[]string{"--nats-url", url, "--aggregate", "invoice"}, `--aggregate "invoice": use type/id`},
		{[]string{"--nats-url", url, "--expect-heads", heads}, `"invoice": use type/id`},
		{[]string{"--nats-url", url, "--expect-heads", heads + ".missing"}, "no such file"},
		{[]string{"--nats-url", url, "--rate", "-1"}, "rate -1 events/s: use 0 for no bound"},
	} {
		out, _, err := runAudit(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("audit %v: %v, want an error with %q\n%s", c.args, err, c.want, out)
		}
	}
}

// TestServeScrubs: with store.scrub_rate set, lexigram serve audits in the
// background and /metrics says how it went.
func TestServeScrubs(t *testing.T) {
	cfg := config.Default()
	cfg.NATS.EmbeddedServer.Port = -1
	cfg.NATS.EmbeddedServer.DataDir = t.TempDir()
	cfg.HTTP.Addr = freeAddr(t)
	cfg.Store.ScrubRate = 1000
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("serve did not stop within 15s")
		}
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		metrics := waitGet(t, "http://"+cfg.HTTP.Addr+"/metrics")
		if strings.Contains(metrics, `lexigram_audit_passes_total{stream="EVENTS"} 1`) {
			if !strings.Contains(metrics, `lexigram_audit_findings_total{kind="lost-middle",stream="EVENTS"} 0`) {
				t.Fatalf("/metrics after a pass:\n%s", metrics)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no audit pass within 15s:\n%s", metrics)
		}
		time.Sleep(20 * time.Millisecond) // polling /metrics with a deadline
	}
}
