package platform

import (
	"context"
	"fmt"
	"strings"

	"github.com/oklog/ulid/v2"
)

// MaxAppendEvents is the most events one append may carry: JetStream's
// atomic batch limit, applied by every store so code tested in memory
// behaves the same on JetStream.
const MaxAppendEvents = 1000

// NewEventID returns a new unique, time-sortable event ID (a ULID).
func NewEventID() string { return ulid.Make().String() }

// Prepare checks an append's arguments and completes each event's
// envelope for storage: ID, type, schema version, stream and the
// correlation and causation IDs from ctx where the caller left them empty.
// It returns the encoded bodies, sealed if the registry has a Sealer (the
// envelope's KeyID then names the key). Stores call it; applications don't
// need to.
func Prepare(ctx context.Context, reg *Registry, codec Codec, stream StreamID, events []Envelope) ([][]byte, error) {
	if err := stream.Validate(); err != nil {
		return nil, err
	}
	switch {
	case len(events) == 0:
		return nil, Errorf(CodeInvalidArgument, "append to %s: no events: pass at least one", stream)
	case len(events) > MaxAppendEvents:
		return nil, Errorf(CodeInvalidArgument, "append to %s: %d events: one append takes at most %d; split the work into several commands",
			stream, len(events), MaxAppendEvents)
	}
	correlation, causation := CorrelationID(ctx), CausationID(ctx)
	bodies := make([][]byte, len(events))
	for i := range events {
		e := &events[i]
		et, err := reg.TypeOf(e.Event)
		if err == nil {
			err = reg.current(et) // old versions are only read
		}
		if err != nil {
			return nil, Errorf(CodeOf(err), "append to %s, event %d: %w", stream, i+1, err)
		}
		if e.ID == "" {
			e.ID = NewEventID()
		} else if err := checkHeaderText("event ID", e.ID); err != nil {
			return nil, Errorf(CodeInvalidArgument, "append to %s, event %d: %w", stream, i+1, err)
		}
		for k, v := range e.Metadata {
			if err := checkMetadata(k, v); err != nil {
				return nil, Errorf(CodeInvalidArgument, "append to %s, event %d: %w", stream, i+1, err)
			}
		}
		e.Type, e.SchemaVersion, e.Stream = et.Name, et.SchemaVersion, stream
		if e.CorrelationID == "" {
			e.CorrelationID = correlation
		}
		if e.CausationID == "" {
			e.CausationID = causation
		}
		for _, f := range [...]struct{ what, s string }{{"correlation ID", e.CorrelationID}, {"causation ID", e.CausationID}} {
			if err := checkHeaderText(f.what, f.s); err != nil {
				return nil, Errorf(CodeInvalidArgument, "append to %s, event %d: %w", stream, i+1, err)
			}
		}
		if bodies[i], e.KeyID, err = reg.encode(ctx, stream, et, codec, e.Event); err != nil {
			if c := CodeOf(err); c != "" {
				return nil, Errorf(c, "append to %s: seal %s: %w", stream, et.Name, err)
			}
			return nil, Errorf(CodeInvalidArgument, "append to %s: encode %s with %s: %w", stream, et.Name, codec.Name(), err)
		}
	}
	return bodies, nil
}

// Limits on caller-set envelope text, which travels in message headers.
const (
	maxHeaderText  = 256
	maxMetadataKey = 64
)

func checkHeaderText(what, s string) error {
	if len(s) > maxHeaderText {
		return fmt.Errorf("%s is %d bytes: use at most %d", what, len(s), maxHeaderText)
	}
	for _, c := range []byte(s) {
		if c < ' ' || c == 0x7f {
			return fmt.Errorf("%s %q has a control character: use printable text", what, s)
		}
	}
	// NATS headers lose surrounding white space on the way.
	if strings.TrimSpace(s) != s {
		return fmt.Errorf("%s %q starts or ends with white space: trim it", what, s)
	}
	return nil
}

func checkMetadata(k, v string) error {
	if k == "" || len(k) > maxMetadataKey {
		return fmt.Errorf("metadata key %q: use 1 to %d letters, digits, '-' or '_'", k, maxMetadataKey)
	}
	for _, c := range []byte(k) {
		if !isNameByte(c) {
			return fmt.Errorf("metadata key %q has %q: use letters, digits, '-' and '_'", k, c)
		}
	}
	return checkHeaderText(fmt.Sprintf("metadata value of %q", k), v)
}
