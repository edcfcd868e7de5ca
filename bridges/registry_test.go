package bridges_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/bridges/memory"
	"github.com/lexigram/events/platform"
)

// registered numbers the test's driver names: Register refuses a name
// twice, and -count runs the test again in the same process.
var registered atomic.Int64

func TestRegistry(t *testing.T) {
	outonly := fmt.Sprintf("test-outonly-%d", registered.Add(1))
	opened := bridges.Settings(nil)
	bridges.Register(outonly, bridges.Driver{NewPublisher: func(_ context.Context, s bridges.Settings) (bridges.Publisher, error) {
		opened = s
		return memory.NewBroker().Publisher("x"), nil
	}})
	if !slices.Contains(bridges.Brokers(), outonly) || !slices.Contains(bridges.Brokers(), "memory") {
		t.Fatalf("Brokers() = %v, want test-outonly and memory", bridges.Brokers())
	}
	if _, err := bridges.NewPublisher(t.Context(), outonly, bridges.Settings{"k": "v"}); err != nil || opened["k"] != "v" {
		t.Fatalf("NewPublisher: %v, settings passed %v", err, opened)
	}
	_, err := bridges.NewSubscriber(t.Context(), outonly, nil)
	if !errors.Is(err, platform.ErrInvalidArgument) || !strings.Contains(err.Error(), "cannot subscribe") {
		t.Fatalf("subscribing with a publish-only driver: %v", err)
	}
	_, err = bridges.NewPublisher(t.Context(), "nats-streaming", nil)
	if err == nil || !strings.Contains(err.Error(), `broker "nats-streaming" is not registered`) || !strings.Contains(err.Error(), "memory") {
		t.Fatalf("an unknown broker: %v, want an error naming it and the known ones", err)
	}
	for name, d := range map[string]bridges.Driver{outonly: {NewPublisher: func(context.Context, bridges.Settings) (bridges.Publisher, error) { return nil, nil }}, "test-empty-" + outonly: {}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%q) did not panic", name)
				}
			}()
			bridges.Register(name, d)
		}()
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]bridges.Format{"": bridges.PassThrough, "passthrough": bridges.PassThrough, "CloudEvents-Binary": bridges.CloudEventsBinary, "cloudevents-structured": bridges.CloudEventsStructured} {
		if got, err := bridges.ParseFormat(in); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := bridges.ParseFormat("avro"); err == nil || !strings.Contains(err.Error(), "cloudevents-binary") {
		t.Fatalf("ParseFormat(avro): %v, want an error listing the formats", err)
	}
	if got := bridges.CloudEventsStructured.String(); got != "cloudevents-structured" {
		t.Fatalf("String() = %q", got)
	}
}

func TestErrorsOfAndRefused(t *testing.T) {
	transient, refused := errors.New("timeout"), bridges.Refused(errors.New("too large"))
	errs := bridges.ErrorsOf(&bridges.BatchError{Errs: []error{nil, refused, transient}}, 3)
	if errs[0] != nil || !bridges.IsRefused(errs[1]) || bridges.IsRefused(errs[2]) {
		t.Fatalf("ErrorsOf(BatchError) = %v", errs)
	}
	errs = bridges.ErrorsOf(transient, 2)
	if errs[0] != transient || errs[1] != transient {
		t.Fatalf("ErrorsOf(one error) = %v: every message failed", errs)
	}
	if bridges.Refused(nil) != nil || bridges.IsRefused(nil) {
		t.Fatal("Refused(nil) is not nil")
	}
	if msg := (&bridges.BatchError{Errs: []error{nil, transient}}).Error(); !strings.Contains(msg, "1 of 2") || !strings.Contains(msg, "LXE-025") {
		t.Fatalf("BatchError text %q", msg)
	}
}

func TestBackoff(t *testing.T) {
	b := bridges.Backoff{Min: 10 * time.Millisecond, Max: 80 * time.Millisecond}
	for n, want := range []time.Duration{10, 20, 40, 80, 80, 80} {
		want *= time.Millisecond
		if d := b.Delay(n); d < want || d > want+want/5 {
			t.Errorf("Delay(%d) = %v, want %v plus at most a fifth", n, d, want)
		}
	}
	if d := (bridges.Backoff{}).Delay(100); d < 10*time.Second || d > 12*time.Second {
		t.Errorf("zero Backoff Delay(100) = %v, want 10s to 12s", d)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if (bridges.Backoff{Min: time.Hour}).Sleep(ctx, 0) {
		t.Fatal("Sleep on a cancelled context reported it alive")
	}
}
