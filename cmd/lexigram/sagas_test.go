package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/sagas"
)

// runSagas runs `lexigram sagas args...` and returns what it printed.
func runSagas(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := sagasCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

type parcel struct{ ID string }

// TestSagasCommands: a saga whose compensation fails waits for an
// operator; the CLI lists it by state, shows its history, retries it once
// its cause is fixed, and aborts another that is still running.
func TestSagasCommands(t *testing.T) {
	t.Setenv("LEXIGRAM_CONFIG", "")
	ctx := context.Background()
	srv := embeddedtest.Server(t)
	js, err := jetstream.New(embeddedtest.Conn(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	store, err := sagas.NewKVStore(ctx, js, sagas.KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := sagas.NewManager(ctx, js, store, sagas.Options{Retry: sagas.Retry{Attempts: 1000, Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond}, Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	var undoFixed atomic.Bool
	undone := make(chan string, 4)
	def := sagas.Define[parcel]("delivery").
		Step("pick", func(context.Context, *sagas.Context[parcel]) error { return nil },
			sagas.Compensation(func(_ context.Context, sc *sagas.Context[parcel]) error {
				if !undoFixed.Load() && sc.Data.ID == "p-1" {
					return sagas.Fail(errors.New("the shelf is locked"))
				}
				undone <- sc.Data.ID
				return nil
			})).
		Step("drive", func(_ context.Context, sc *sagas.Context[parcel]) error {
			if sc.Data.ID == "p-1" {
				return sagas.Fail(errors.New("no driver"))
			}
			return errors.New("waiting for a van") // retried until aborted
		})
	if err := m.Register(def); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })

	stuck, err := m.Start(ctx, "delivery", "p-1", parcel{ID: "p-1"})
	if err != nil {
		t.Fatal(err)
	}
	url := srv.ClientURL()
	var out string
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, err = runSagas(t, "ls", "--nats-url", url, "--state", "compensation_failed")
		if err != nil {
			t.Fatalf("sagas ls: %v\n%s", err, out)
		}
		if strings.Contains(out, stuck.ID) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sagas ls never listed %s as COMPENSATION_FAILED:\n%s", stuck.ID, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range []string{"delivery", "p-1", "COMPENSATION_FAILED", "the shelf is locked"} {
		if !strings.Contains(out, want) {
			t.Errorf("sagas ls lacks %q:\n%s", want, out)
		}
	}

	out, err = runSagas(t, "show", "--nats-url", url, stuck.ID)
	if err != nil {
		t.Fatalf("sagas show: %v\n%s", err, out)
	}
	for _, want := range []string{"History:", "pick (compensation)", "no driver", "failed", "Timer", "none"} {
		if !strings.Contains(out, want) {
			t.Errorf("sagas show lacks %q:\n%s", want, out)
		}
	}
	out, err = runSagas(t, "show", "--nats-url", url, "--json", stuck.ID)
	var shown sagas.Details
	if err != nil || json.Unmarshal([]byte(out), &shown) != nil || shown.ID != stuck.ID || len(shown.History) < 3 {
		t.Fatalf("sagas show --json: %v\n%s", err, out)
	}

	undoFixed.Store(true)
	if out, err := runSagas(t, "retry", "--nats-url", url, stuck.ID); err != nil || !strings.Contains(out, "retried "+stuck.ID) {
		t.Fatalf("sagas retry: %v\n%s", err, out)
	}
	select {
	case id := <-undone:
		if id != "p-1" {
			t.Fatalf("compensated %s, want p-1", id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the retried compensation did not run")
	}

	// Abort an instance between its retries (resting, not leased).
	second, err := m.Start(ctx, "delivery", "p-2", parcel{ID: "p-2"})
	if err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		out, err = runSagas(t, "abort", "--nats-url", url, "--reason", "address unknown", second.ID)
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "try again when it rests") || time.Now().After(deadline) {
			t.Fatalf("sagas abort: %v\n%s", err, out)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !strings.Contains(out, "aborted "+second.ID) {
		t.Errorf("sagas abort printed %q", out)
	}

	// Wrong use: a state that does not exist, an ID that does not, a
	// timer where there is none, a server that is not there.
	if _, err := runSagas(t, "ls", "--nats-url", url, "--state", "STUCK"); err == nil || !strings.Contains(err.Error(), "COMPENSATION_FAILED") {
		t.Errorf("sagas ls --state STUCK: %v, want the list of states", err)
	}
	if _, err := runSagas(t, "show", "--nats-url", url, "nope"); err == nil || !strings.Contains(err.Error(), "LXE-022") {
		t.Errorf("sagas show nope: %v, want LXE-022", err)
	}
	if _, err := runSagas(t, "fire", "--nats-url", url, stuck.ID); err == nil || !strings.Contains(err.Error(), "no pending deadline") {
		t.Errorf("sagas fire without a timer: %v", err)
	}
	if _, err := runSagas(t, "ls", "--nats-url", "nats://127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "is the node running?") {
		t.Errorf("sagas ls against nothing: %v", err)
	}
	if _, err := runSagas(t, "ls", "--nats-url", url, "--bucket", "elsewhere"); err == nil || !strings.Contains(err.Error(), "--bucket") {
		t.Errorf("sagas ls --bucket elsewhere: %v, want an error pointing at --bucket", err)
	}
}

// A mistyped subcommand is an error naming the ones there are, not the
// help with exit 0.
func TestUnknownSubcommandIsAnError(t *testing.T) {
	if _, err := runSagas(t, "lst"); err == nil || !strings.Contains(err.Error(), `unknown command "lst"`) || !strings.Contains(err.Error(), "ls, retry") {
		t.Errorf("sagas lst: %v, want an unknown-command error naming ls", err)
	}
	if _, err := runDLQ(t, "lst"); err == nil || !strings.Contains(err.Error(), `unknown command "lst"`) || !strings.Contains(err.Error(), "list") {
		t.Errorf("dlq lst: %v, want an unknown-command error naming list", err)
	}
	if out, err := runSagas(t); err != nil || !strings.Contains(out, "Available Commands") {
		t.Errorf("sagas with no subcommand: %v, %q; want the help", err, out)
	}
}
