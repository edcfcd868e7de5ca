package platform

import (
	"context"
	"errors"
	"iter"
	"slices"
)

// Filter picks the events of a filtered read (a store's Where): those of
// some aggregate types, or of one aggregate, and of some event types. The
// zero Filter picks every event.
type Filter struct {
	AggregateTypes []string // any of these; empty: every type
	Aggregate      StreamID // this one aggregate; zero: any (then AggregateTypes applies)
	EventTypes     []string // any of these (the names after upcasting); empty: every type
}

// Validate reports a filter that names nothing a store could hold.
func (f Filter) Validate() error {
	if f.Aggregate != (StreamID{}) {
		if err := f.Aggregate.Validate(); err != nil {
			return Errorf(CodeInvalidArgument, "filter: aggregate: %w", err)
		}
		if len(f.AggregateTypes) > 0 {
			return Errorf(CodeInvalidArgument, "filter: an aggregate (%s) and aggregate types %q: give one aggregate or the types, not both", f.Aggregate, f.AggregateTypes)
		}
	}
	for _, t := range f.AggregateTypes {
		if err := (StreamID{Type: t, ID: "x"}).Validate(); err != nil {
			return Errorf(CodeInvalidArgument, "filter: aggregate type %q: %w", t, err)
		}
	}
	for _, t := range f.EventTypes {
		if t == "" {
			return Errorf(CodeInvalidArgument, "filter: an empty event type: name each, e.g. \"order.placed\"")
		}
	}
	return nil
}

// Matches reports whether e is one of the events f picks.
func (f Filter) Matches(e Envelope) bool {
	return f.matchesStream(e.Stream) && (len(f.EventTypes) == 0 || slices.Contains(f.EventTypes, e.Type))
}

func (f Filter) matchesStream(s StreamID) bool {
	switch {
	case f.Aggregate != (StreamID{}):
		return s == f.Aggregate
	case len(f.AggregateTypes) > 0:
		return slices.Contains(f.AggregateTypes, s.Type)
	}
	return true
}

// matchesUndecodable reports whether a read filtered by f must pass on
// an event that did not decode: one that may be among those f picks.
func (f Filter) matchesUndecodable(de *DecodeError) bool {
	if de.Stream != (StreamID{}) && !f.matchesStream(de.Stream) {
		return false
	}
	return len(f.EventTypes) == 0 || slices.Contains(f.EventTypes, de.Type)
}

// GlobalReader reads the global order: what a store's Where returns, and
// what projections and the event bus read from.
type GlobalReader interface {
	ReadAll(ctx context.Context, after uint64) iter.Seq2[Envelope, error]
	Subscribe(ctx context.Context, after uint64) iter.Seq2[Envelope, error]
}

// Where filters src's reads by f in this process. A store that can
// filter on its server (jetstream.EventStore) offers its own Where; this
// is for the rest, and what they fall back on.
func Where(src GlobalReader, f Filter) GlobalReader { return filtered{src, f} }

type filtered struct {
	src GlobalReader
	f   Filter
}

func (r filtered) ReadAll(ctx context.Context, after uint64) iter.Seq2[Envelope, error] {
	if err := r.f.Validate(); err != nil {
		return failed(err)
	}
	return FilterSeq(r.src.ReadAll(ctx, after), r.f)
}

func (r filtered) Subscribe(ctx context.Context, after uint64) iter.Seq2[Envelope, error] {
	if err := r.f.Validate(); err != nil {
		return failed(err)
	}
	return FilterSeq(r.src.Subscribe(ctx, after), r.f)
}

func failed(err error) iter.Seq2[Envelope, error] {
	return func(yield func(Envelope, error) bool) { yield(Envelope{}, err) }
}

// FilterSeq passes on the events of seq that f picks, its errors, and the
// decode errors of events f may pick.
func FilterSeq(seq iter.Seq2[Envelope, error], f Filter) iter.Seq2[Envelope, error] {
	return func(yield func(Envelope, error) bool) {
		for e, err := range seq {
			if err != nil {
				var de *DecodeError
				if errors.As(err, &de) && !f.matchesUndecodable(de) {
					continue
				}
				if !yield(e, err) {
					return
				}
				continue
			}
			if f.Matches(e) && !yield(e, nil) {
				return
			}
		}
	}
}

// Where is the store's reads filtered by f.
func (s *MemoryEventStore) Where(f Filter) GlobalReader { return Where(s, f) }
