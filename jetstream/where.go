package jetstream

import (
	"context"
	"iter"

	"github.com/lexigram/events/platform"
)

// Where is the store's reads filtered by f. Aggregate types and one
// aggregate are subject tokens, so the server filters them and a reader
// of one type never pulls the others' events; event types are a header,
// filtered here. Several aggregate types need a server that takes several
// filter subjects (2.10+); an older one sends everything and this process
// picks. A filter that names nothing valid yields its error.
func (s *EventStore) Where(f platform.Filter) platform.GlobalReader {
	return &filteredReader{s: s, f: f, subjects: s.filterSubjects(f)}
}

// filterSubjects are the server-side filters f comes to.
func (s *EventStore) filterSubjects(f platform.Filter) []string {
	switch {
	case f.Aggregate != (platform.StreamID{}):
		if subject, err := s.Subject(f.Aggregate); err == nil {
			return []string{subject}
		}
	case len(f.AggregateTypes) == 1 || len(f.AggregateTypes) > 1 && ServerAtLeast(s.caps.ServerVersion, 2, 10):
		out := make([]string, len(f.AggregateTypes))
		for i, t := range f.AggregateTypes {
			out[i] = s.opts.SubjectPrefix + "." + t + ".*"
		}
		return out
	}
	return s.everything()
}

type filteredReader struct {
	s        *EventStore
	f        platform.Filter
	subjects []string
}

func (r *filteredReader) ReadAll(ctx context.Context, after uint64) iter.Seq2[platform.Envelope, error] {
	if err := r.f.Validate(); err != nil {
		return fail(err)
	}
	return platform.FilterSeq(r.s.readAll(ctx, after, r.subjects), r.f)
}

func (r *filteredReader) Subscribe(ctx context.Context, after uint64) iter.Seq2[platform.Envelope, error] {
	if err := r.f.Validate(); err != nil {
		return fail(err)
	}
	return platform.FilterSeq(r.s.subscribe(ctx, after, r.subjects), r.f)
}

func fail(err error) iter.Seq2[platform.Envelope, error] {
	return func(yield func(platform.Envelope, error) bool) { yield(platform.Envelope{}, err) }
}
