package storetest

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lexigram/events/platform"
)

// Event types the suite registers in the harness's registry. Their fields
// avoid values whose encoding is not a faithful round trip (empty slices,
// times), so decoded events compare equal with reflect.DeepEqual.
type (
	opened struct {
		Name  string
		Tags  []string
		Count int
	}
	renamed struct {
		From string
		To   string
	}
	noted struct {
		Text string
		Data []byte
	}
	// unregistered is never registered.
	unregistered struct{ X int }
	// renamedAsInt is registered under renamed's name in a reopened store,
	// to read renamed events as a type they do not decode into.
	renamedAsInt struct{ From int }
)

const (
	nameOpened  = "storetest.opened"
	nameRenamed = "storetest.renamed"
	nameNoted   = "storetest.noted"
)

// registerTypes registers the suite's event types in reg, leaving out the
// names in skip.
func registerTypes(reg *platform.Registry, skip ...string) error {
	regs := []struct {
		name string
		f    func() error
	}{
		{nameOpened, func() error { return platform.Register[opened](reg, nameOpened, 1) }},
		{nameRenamed, func() error { return platform.Register[renamed](reg, nameRenamed, 2) }},
		{nameNoted, func() error { return platform.Register[noted](reg, nameNoted, 3) }},
	}
	for _, r := range regs {
		if slices.Contains(skip, r.name) {
			continue
		}
		if err := r.f(); err != nil {
			return err
		}
	}
	return nil
}

// uniqueType returns an aggregate type no other subtest uses.
func uniqueType(prefix string) string {
	return prefix + "-" + strings.ToLower(platform.NewEventID())
}

// events returns n envelopes of the suite's types, tagged with tag so
// their origin shows in failures.
func events(tag string, n int) []platform.Envelope {
	out := make([]platform.Envelope, n)
	for i := range out {
		switch i % 3 {
		case 0:
			out[i].Event = opened{Name: fmt.Sprintf("%s-%d", tag, i), Tags: []string{tag}, Count: i}
		case 1:
			out[i].Event = renamed{From: tag, To: fmt.Sprintf("%s-%d", tag, i)}
		default:
			out[i].Event = noted{Text: fmt.Sprintf("%s-%d", tag, i), Data: []byte{byte(i), 0, 0xff}}
		}
	}
	return out
}

// withIDs gives every envelope a fresh event ID and returns the IDs.
func withIDs(evs []platform.Envelope) []string {
	ids := make([]string, len(evs))
	for i := range evs {
		evs[i].ID = platform.NewEventID()
		ids[i] = evs[i].ID
	}
	return ids
}

func mustAppend(t *testing.T, s platform.EventStore, stream platform.StreamID, exp platform.ExpectedVersion, evs []platform.Envelope) platform.AppendResult {
	t.Helper()
	res, err := s.Append(t.Context(), stream, exp, evs)
	if err != nil {
		t.Fatalf("Append(%v, %v, %d events): %v", stream, exp, len(evs), err)
	}
	if n := uint64(len(evs)); res.LastVersion-res.FirstVersion+1 != n {
		t.Fatalf("Append(%v, %v, %d events) = %+v: the versions do not span %d events", stream, exp, len(evs), res, n)
	}
	return res
}

// collect drains a Read or ReadAll iterator up to its first error.
func collect(seq iter.Seq2[platform.Envelope, error]) ([]platform.Envelope, error) {
	var out []platform.Envelope
	var iterErr error
	for e, err := range seq {
		if err != nil {
			iterErr = err
			break
		}
		out = append(out, e)
	}
	return out, iterErr
}

func read(t *testing.T, s platform.EventStore, stream platform.StreamID, after platform.Revision) []platform.Envelope {
	t.Helper()
	evs, err := collect(s.Read(t.Context(), stream, after))
	if err != nil {
		t.Fatalf("Read(%v, after %+v): %v", stream, after, err)
	}
	return evs
}

func readAll(t *testing.T, s platform.EventStore, after uint64) []platform.Envelope {
	t.Helper()
	evs, err := collect(s.ReadAll(t.Context(), after))
	if err != nil {
		t.Fatalf("ReadAll(after %d): %v", after, err)
	}
	return evs
}

func idsOf(evs []platform.Envelope) []string {
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
	}
	return ids
}

func versionsOf(evs []platform.Envelope) []uint64 {
	vs := make([]uint64, len(evs))
	for i, e := range evs {
		vs[i] = e.Version
	}
	return vs
}

func seqVersions(from, to uint64) []uint64 {
	var vs []uint64
	for v := from; v <= to; v++ {
		vs = append(vs, v)
	}
	return vs
}

// checkPositions fails unless positions increase strictly.
func checkPositions(t *testing.T, what string, evs []platform.Envelope) {
	t.Helper()
	for i := 1; i < len(evs); i++ {
		if evs[i].Position <= evs[i-1].Position {
			t.Fatalf("%s: position %d (version %d of %v) follows position %d: positions must increase strictly",
				what, evs[i].Position, evs[i].Version, evs[i].Stream, evs[i-1].Position)
		}
	}
	for _, e := range evs {
		if e.Position == 0 {
			t.Fatalf("%s: event %s has position 0", what, e.ID)
		}
	}
}

// diffEnvelope describes the first difference between two envelopes read
// from a store, or returns "".
func diffEnvelope(got, want platform.Envelope) string {
	switch {
	case got.ID != want.ID:
		return fmt.Sprintf("ID %q, want %q", got.ID, want.ID)
	case got.Type != want.Type:
		return fmt.Sprintf("Type %q, want %q", got.Type, want.Type)
	case got.SchemaVersion != want.SchemaVersion:
		return fmt.Sprintf("SchemaVersion %d, want %d", got.SchemaVersion, want.SchemaVersion)
	case got.Stream != want.Stream:
		return fmt.Sprintf("Stream %v, want %v", got.Stream, want.Stream)
	case got.Version != want.Version:
		return fmt.Sprintf("Version %d, want %d", got.Version, want.Version)
	case got.Position != want.Position:
		return fmt.Sprintf("Position %d, want %d", got.Position, want.Position)
	case !got.Time.Equal(want.Time):
		return fmt.Sprintf("Time %v, want %v", got.Time, want.Time)
	case got.CorrelationID != want.CorrelationID:
		return fmt.Sprintf("CorrelationID %q, want %q", got.CorrelationID, want.CorrelationID)
	case got.CausationID != want.CausationID:
		return fmt.Sprintf("CausationID %q, want %q", got.CausationID, want.CausationID)
	case !maps.Equal(got.Metadata, want.Metadata):
		return fmt.Sprintf("Metadata %v, want %v", got.Metadata, want.Metadata)
	case !reflect.DeepEqual(got.Event, want.Event):
		return fmt.Sprintf("Event %#v, want %#v", got.Event, want.Event)
	}
	return ""
}

func sameEnvelopes(t *testing.T, what string, got, want []platform.Envelope) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d events %v, want %d %v", what, len(got), idsOf(got), len(want), idsOf(want))
	}
	for i := range got {
		if d := diffEnvelope(got[i], want[i]); d != "" {
			t.Fatalf("%s: event %d: %s", what, i, d)
		}
	}
}

// checkErr fails unless err matches want (errors.Is) and says something.
func checkErr(t *testing.T, what string, err, want error) {
	t.Helper()
	switch {
	case err == nil:
		t.Fatalf("%s: no error, want one matching %v", what, want)
	case !errors.Is(err, want):
		t.Fatalf("%s: error %q (code %q) does not match %v", what, err, platform.CodeOf(err), want)
	case err.Error() == "" || err.Error() == want.Error():
		t.Fatalf("%s: error %q says nothing beyond its code", what, err)
	}
}

// checkConflict fails unless err is a concurrency conflict on stream with
// the expected version exp and the stored version actual.
func checkConflict(t *testing.T, what string, err error, stream platform.StreamID, exp platform.ExpectedVersion, actual uint64) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want a concurrency conflict", what)
	}
	if !errors.Is(err, platform.ErrConcurrency) {
		t.Fatalf("%s: error %q does not match platform.ErrConcurrency", what, err)
	}
	var ce *platform.ConcurrencyError
	if !errors.As(err, &ce) {
		t.Fatalf("%s: error %q (%T) is not a *platform.ConcurrencyError", what, err, err)
	}
	if c := platform.CodeOf(err); c != platform.CodeConcurrency {
		t.Fatalf("%s: CodeOf(%q) = %q, want %q", what, err, c, platform.CodeConcurrency)
	}
	if ce.Stream != stream {
		t.Fatalf("%s: ConcurrencyError.Stream = %v, want %v", what, ce.Stream, stream)
	}
	gv, gok := ce.Expected.Expected()
	wv, wok := exp.Expected()
	if gv != wv || gok != wok {
		t.Fatalf("%s: ConcurrencyError.Expected = %v, want %v", what, ce.Expected, exp)
	}
	if ce.Actual != actual {
		t.Fatalf("%s: ConcurrencyError.Actual = %d, want %d (the stored version)", what, ce.Actual, actual)
	}
}

// checkTime fails unless tm is set and plausible for an event stored now.
func checkTime(t *testing.T, what string, tm time.Time, start time.Time) {
	t.Helper()
	if tm.IsZero() {
		t.Fatalf("%s: Time is zero", what)
	}
	if tm.Before(start.Add(-time.Minute)) || tm.After(time.Now().Add(time.Minute)) {
		t.Fatalf("%s: Time %v is not within a minute of the append (started %v)", what, tm, start)
	}
}

// noPanic runs f and turns a panic into a test failure.
func noPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("%s panicked: %v", what, r)
		}
	}()
	f()
}

// cancelled returns a context that is already cancelled.
func cancelled(parent context.Context) context.Context {
	ctx, cancel := context.WithCancel(parent)
	cancel()
	return ctx
}
