package platform

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strconv"
	"strings"
)

// Origin is the stored event that an envelope was read from, when the
// registry upcast it; the zero value means it was read as stored.
type Origin struct {
	Type          string // the type name the event is stored under
	SchemaVersion int    // the schema version it is stored with
	// Part and Parts number the envelopes read from one stored event: 1
	// of 1 when one event upcast to one, 1 to n of n when it was split
	// (UpcastMany), 0 of 0 for the marker of a retired event. All of them
	// carry the stored event's Version and Position; parts after the first
	// get the stored ID with ".<part>" appended.
	Part, Parts int
}

// Retired reports whether e stands for a stored event that reads as no
// event (Retire, or an UpcastMany that returned none): Event is nil, and
// Version and Position say where it was, so that readers move past it.
// Repositories, projections, durable handlers and the event bus skip it.
func (e *Envelope) Retired() bool {
	return e.Event == nil && e.Origin.SchemaVersion != 0 && e.Origin.Parts == 0
}

// EndsStored reports whether e is the last (or only) envelope read from
// its stored event: a reader that records positions may record
// e.Position once it has handled e, and not before.
func (e *Envelope) EndsStored() bool { return e.Origin.Part == e.Origin.Parts }

// DecodeError is a stored event that cannot be read: the registry does
// not know its type or schema version (it matches ErrUnknownEventType), or
// its body or headers do not decode (ErrCorruptEvent). Read, ReadAll and
// Subscribe yield it in place of the event and go on with the next one if
// the caller asks for more, so a reader may skip it: projections and
// durable handlers do with SkipUndecodable.
type DecodeError struct {
	Stream        StreamID // zero if the stored subject names none
	Version       uint64   // 0 if unknown
	Position      uint64
	Type          string // as stored
	SchemaVersion int    // as stored; 0 if unknown
	Err           error  // the cause: an *Error with CodeUnknownEventType or CodeCorruptEvent
}

func (e *DecodeError) Error() string {
	var b strings.Builder
	b.WriteString(string(e.ErrorCode()))
	b.WriteString(": event at position ")
	b.WriteString(strconv.FormatUint(e.Position, 10))
	if e.Stream != (StreamID{}) {
		fmt.Fprintf(&b, " (%s version %d)", e.Stream, e.Version)
	}
	b.WriteString(": ")
	var pe *Error
	if errors.As(e.Err, &pe) && pe.Message != "" {
		b.WriteString(pe.Message)
	} else if e.Err != nil {
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *DecodeError) Unwrap() error { return e.Err }

// ErrorCode is the cause's code; CodeCorruptEvent if it has none.
func (e *DecodeError) ErrorCode() Code {
	if c := CodeOf(e.Err); c != "" {
		return c
	}
	return CodeCorruptEvent
}

// IsDecodeError reports whether err says that one stored event cannot be
// read (a *DecodeError), as opposed to the store failing.
func IsDecodeError(err error) bool {
	var de *DecodeError
	return errors.As(err, &de)
}

// maxSplitDepth bounds how often the events an UpcastMany returns are
// split again: a cycle of splits ends in an error, not a hang.
const maxSplitDepth = 8

// DecodeEnvelope reads one stored event. e is its envelope as stored:
// Type and SchemaVersion as stored, Event nil; data is its body, encoded
// with c. It decodes the body into the stored version's Go type, upcasts
// it to the current version and appends the envelopes it reads as to
// out: one, several (UpcastMany) or the marker of a retired event. Stores
// call it; the appended envelopes are what Read, ReadAll and Subscribe
// yield. An error is a *DecodeError (for a sealed event, see
// DecodeEnvelopeContext); out is then returned as it came.
func (r *Registry) DecodeEnvelope(c Codec, e *Envelope, data []byte, out []Envelope) ([]Envelope, error) {
	return r.DecodeEnvelopeContext(context.Background(), c, e, data, out)
}

// DecodeEnvelopeContext is DecodeEnvelope for a stored event whose body
// may be sealed (e.KeyID set): ctx bounds fetching its data key. The
// registry's Sealer opens the body before the upcasters run, so they see
// the plain event; a shredded one (Envelope.Shredded) is upcast too. Not
// every error is a *DecodeError here: a data key that cannot be fetched
// now (CodeStoreUnavailable) or a process without a sealer
// (CodeConfigConflict) is returned as it is, and readers stop on it
// rather than skip the event.
func (r *Registry) DecodeEnvelopeContext(ctx context.Context, c Codec, e *Envelope, data []byte, out []Envelope) ([]Envelope, error) {
	t := r.t.Load()
	et := t.lookup(e.Type, e.SchemaVersion)
	if et == nil {
		return out, e.decodeError(t.unknown(e.Type, e.SchemaVersion))
	}
	p := t.pathOf(et)
	if p.err != nil {
		return out, e.decodeError(p.err)
	}
	var v any
	var err error
	if e.KeyID != "" {
		if v, err = r.open(ctx, et, c, e, data); err != nil {
			return out, err
		}
	} else if v, err = et.decode(c, data); err != nil {
		return out, e.decodeError(Errorf(CodeCorruptEvent, "decode %q version %d with %s: %w", e.Type, e.SchemaVersion, c.Name(), err))
	}
	if len(p.steps) == 0 && p.end == EndCurrent && et.Name == e.Type {
		out = append(out, *e)
		out[len(out)-1].Event = v
		return out, nil
	}
	return t.upcast(e, et, p, v, out)
}

// upcast appends the envelopes v, decoded as et, reads as.
func (t *tables) upcast(e *Envelope, et *EventType, p *path, v any, out []Envelope) (_ []Envelope, err error) {
	n := len(out)
	defer func() {
		if x := recover(); x != nil {
			out, err = out[:n], e.decodeError(Errorf(CodeCorruptEvent, "upcast %s: an upcaster panicked: %v", et, x))
		}
	}()
	if p.end == EndCurrent {
		for _, step := range p.steps {
			v = step(v)
		}
		m := *e
		m.Type, m.SchemaVersion, m.Event = p.last.Name, p.last.SchemaVersion, v
		m.Origin = Origin{Type: e.Type, SchemaVersion: e.SchemaVersion, Part: 1, Parts: 1}
		return append(out, m), nil
	}
	events, types, err := t.expand(et, p, v, nil, nil, 0)
	if err != nil {
		return out[:n], e.decodeError(err)
	}
	origin := Origin{Type: e.Type, SchemaVersion: e.SchemaVersion, Parts: len(events)}
	if len(events) == 0 {
		m := *e
		m.Type, m.SchemaVersion, m.Origin = p.last.Name, p.last.SchemaVersion, origin
		return append(out, m), nil
	}
	for i, ev := range events {
		m := *e
		m.Type, m.SchemaVersion, m.Event, m.Origin = types[i].Name, types[i].SchemaVersion, ev, origin
		m.Origin.Part = i + 1
		if i > 0 {
			m.ID = e.ID + "." + strconv.Itoa(i+1)
			m.Metadata = maps.Clone(e.Metadata)
		}
		out = append(out, m)
	}
	return out, nil
}

// expand runs v, decoded as et, along p and appends the current events it
// becomes, with their registrations.
func (t *tables) expand(et *EventType, p *path, v any, events []any, types []*EventType, depth int) ([]any, []*EventType, error) {
	for _, step := range p.steps {
		v = step(v)
	}
	switch p.end {
	case EndCurrent:
		return append(events, v), append(types, p.last), nil
	case EndRetired:
		return events, types, nil
	}
	if depth >= maxSplitDepth {
		return nil, nil, Errorf(CodeCorruptEvent, "upcast %s: the events it is split into were split %d times over: the upcasters (platform.UpcastMany) form a cycle", et, maxSplitDepth)
	}
	for i, pv := range p.many(v) {
		gt := reflect.TypeOf(pv)
		pt, ok := t.byType[gt]
		if !ok {
			return nil, nil, Errorf(CodeUnknownEventType, "upcast %s: the upcaster of %s returned a %v as event %d, which is not registered: register it (platform.Register)",
				et, p.last, gt, i+1)
		}
		pp := t.pathOf(pt)
		if pp.err != nil {
			return nil, nil, Errorf(CodeUnknownEventType, "upcast %s: event %d the upcaster of %s returned: %w", et, i+1, p.last, pp.err)
		}
		var err error
		if events, types, err = t.expand(pt, pp, pv, events, types, depth+1); err != nil {
			return nil, nil, err
		}
	}
	return events, types, nil
}

func (e *Envelope) decodeError(err error) *DecodeError {
	return &DecodeError{Stream: e.Stream, Version: e.Version, Position: e.Position, Type: e.Type, SchemaVersion: e.SchemaVersion, Err: err}
}
