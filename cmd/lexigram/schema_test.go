package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/lexigram/events/embedded/embeddedtest"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/jetstream/schemacheck"
	"github.com/lexigram/events/platform"
)

type invoiceIssuedV2 struct{ Cents int }

// runSchema runs `lexigram schema args...` reading with reg and returns
// its stdout and stderr.
func runSchema(t *testing.T, reg *platform.Registry, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := schemaCommandWith(reg)
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = cmd.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

func invoiceRegistry(v2 bool) *platform.Registry {
	reg := platform.NewRegistry()
	platform.MustRegister[invoiceIssued](reg, "invoice.issued", 1)
	if v2 {
		platform.MustRegister[invoiceIssuedV2](reg, "invoice.issued", 2)
	}
	return reg
}

func appendInvoices(t *testing.T, store *lxjs.EventStore, n int) {
	t.Helper()
	for i := range n {
		if _, err := store.Append(t.Context(), platform.StreamID{Type: "invoice", ID: nuid.Next()}, platform.NoStream(), []platform.Envelope{{Event: invoiceIssued{Amount: i}}}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSchemaCheck: a stream the registry reads is clean (no error: exit
// 0), as a table and as JSON; a registry whose v2 has no upcaster from
// v1 fails every event (exit 1), named in the table and the JSON; a
// sample decodes fewer than all; through the binary, exit 1 on a stream
// of types it does not register and 0 on an empty one.
func TestSchemaCheck(t *testing.T) {
	t.Setenv("LEXIGRAM_CONFIG", "")
	srv, js, store := newInvoiceStore(t)
	appendInvoices(t, store, 5)
	url := srv.ClientURL()

	out, progress, err := runSchema(t, invoiceRegistry(false), "check", "--nats-url", url, "--all")
	if err != nil {
		t.Fatalf("a readable stream: %v\n%s", err, out)
	}
	for _, want := range []string{"stream EVENTS: 5 events at positions 1..5, 5 decoded: every event decoded",
		"invoice.issued  1        msgpack  5       5        0       invoice.issued v1", "\nclean\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("the clean report lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(progress, "schema check: read 5 events, decoded 5") {
		t.Errorf("no progress on stderr: %q", progress)
	}

	out, _, err = runSchema(t, invoiceRegistry(true), "check", "--nats-url", url, "--json", "--compat", "backward")
	if err == nil || err.Error() != "schema check of stream EVENTS found 5 failures" {
		t.Fatalf("v2 without an upcaster: %v\n%s", err, out)
	}
	var rep schemacheck.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if rep.FailureCount != 5 || len(rep.Failures) != 5 || rep.Failures[0].Kind != schemacheck.KindNoPath || rep.Failures[0].Position != 1 ||
		rep.Failures[0].Type != "invoice.issued" || rep.Failures[0].SchemaVersion != 1 || !strings.HasPrefix(rep.Failures[0].Aggregate, "invoice/") ||
		!strings.Contains(rep.Failures[0].Cause, "has no upcaster to version 2") || rep.Compat != schemacheck.CompatBackward || rep.Sample != defaultSample {
		t.Fatalf("--json report: %s", out)
	}
	out, _, err = runSchema(t, invoiceRegistry(true), "check", "--nats-url", url)
	if err == nil || !strings.Contains(out, `no-path "invoice.issued" version 1 at position 1 (invoice/`) || strings.Contains(out, "clean") {
		t.Fatalf("the failure in the table: %v\n%s", err, out)
	}

	appendInvoices(t, store, 200)
	out, _, err = runSchema(t, invoiceRegistry(false), "check", "--nats-url", url, "--sample", "3", "--json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Events != 205 || rep.Checked < 3 || rep.Checked >= 100 {
		t.Fatalf("--sample 3: %v %s", err, out)
	}

	empty, err := lxjs.New(t.Context(), js, lxjs.Options{Stream: "EMPTY", SubjectPrefix: "empty", Registry: invoiceRegistry(false)})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		stream string
		code   int
	}{{"EVENTS", 1}, {empty.StreamName(), 0}} {
		cmd := exec.Command(lexigramBinary(t), "schema", "check", "--nats-url", url, "--stream", c.stream, "--json")
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
		var rep schemacheck.Report
		if code != c.code || json.Unmarshal(stdout.Bytes(), &rep) != nil || !strings.Contains(stderr.String(), "schema check: read") {
			t.Fatalf("lexigram schema check --stream %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", c.stream, code, c.code, stdout.String(), stderr.String())
		}
		if c.code == 1 && (rep.FailureCount != 205 || rep.Failures[0].Kind != schemacheck.KindUnknownType ||
			!strings.Contains(stderr.String(), "lexigram: schema check of stream EVENTS found 205 failures")) {
			t.Fatalf("the binary on unregistered types: %+v\n%s", rep, stderr.String())
		}
	}
}

// TestSchemaCheckOldServer: the command against the Debian nats-server
// (2.9.10) on 127.0.0.1:4222, on a stream of its own deleted after.
func TestSchemaCheckOldServer(t *testing.T) {
	t.Setenv("LEXIGRAM_CONFIG", "")
	url := "nats://127.0.0.1:4222"
	nc, err := nats.Connect(url, nats.Timeout(2*time.Second))
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI needs the Debian nats-server at %s: %v", url, err)
		}
		t.Skipf("no nats-server at %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	name := "LXTEST_SCHEMACLI_" + nuid.Next()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := js.DeleteStream(ctx, name); err != nil {
			t.Errorf("delete stream %s: %v", name, err)
		}
	})
	store, err := lxjs.New(t.Context(), js, lxjs.Options{Stream: name, SubjectPrefix: "lxtest." + strings.ToLower(name), Storage: jetstream.MemoryStorage,
		Registry: invoiceRegistry(false), Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	appendInvoices(t, store, 3)
	if out, _, err := runSchema(t, invoiceRegistry(false), "check", "--nats-url", url, "--stream", name); err != nil || !strings.Contains(out, "\nclean\n") {
		t.Fatalf("on %s: %v\n%s", nc.ConnectedServerVersion(), err, out)
	}
	if out, _, err := runSchema(t, invoiceRegistry(true), "check", "--nats-url", url, "--stream", name); err == nil || !strings.Contains(out, "no-path") {
		t.Fatalf("a failure on %s: %v\n%s", nc.ConnectedServerVersion(), err, out)
	}
}

// TestSchemaCheckErrors: what keeps the check from running is an error
// naming the cause and the fix.
func TestSchemaCheckErrors(t *testing.T) {
	t.Setenv("LEXIGRAM_CONFIG", "")
	srv, _, _ := newInvoiceStore(t)
	url := srv.ClientURL()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"check", "--nats-url", "nats://127.0.0.1:1"}, "connect to NATS at nats://127.0.0.1:1"},
		{[]string{"check", "--nats-url", url, "--stream", "NOPE"}, `stream "NOPE" does not exist on this server`},
		{[]string{"check", "--nats-url", url, "--all", "--sample", "5"}, "--all and --sample exclude each other"},
		{[]string{"check", "--nats-url", url, "--sample", "0"}, "--sample 0: use a positive count"},
		{[]string{"check", "--nats-url", url, "--compat", "forward"}, `--compat "forward": use backward`},
		{[]string{"chek"}, `unknown command "chek"`},
	} {
		out, _, err := runSchema(t, invoiceRegistry(false), c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("schema %v: %v, want an error with %q\n%s", c.args, err, c.want, out)
		}
	}
}
