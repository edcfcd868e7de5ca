package jetstream

import (
	"context"
	"errors"
	"iter"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/platform"
)

// readPage is how many events one batched direct get asks for. The server
// streams them without flow control, so a page is bounded to keep a huge
// aggregate from flooding the client.
const readPage = 1000

// Read yields the aggregate's events after the given revision. With
// after.Position known, the server starts right there; otherwise it starts
// at the aggregate's first event and the store skips what is not wanted.
func (s *EventStore) Read(ctx context.Context, stream platform.StreamID, after platform.Revision) iter.Seq2[platform.Envelope, error] {
	return func(yield func(platform.Envelope, error) bool) {
		if err := stream.Validate(); err != nil {
			yield(platform.Envelope{}, err)
			return
		}
		subject := subjectOf(s.opts.SubjectPrefix, stream)
		names := subjects{prefix: s.opts.SubjectPrefix}
		start := after.Position + 1
		var buf []platform.Envelope
		for m, err := range s.readSubject(ctx, subject, start) {
			if err != nil {
				yield(platform.Envelope{}, platform.Errorf(platform.CodeStoreUnavailable, "read %s: %w", stream, err))
				return
			}
			if after.Version > 0 {
				v, err := versionOf(m.Header, m.Sequence)
				if err != nil {
					yield(platform.Envelope{}, err)
					return
				}
				if v <= after.Version {
					continue
				}
			}
			if buf, err = s.decode(ctx, &names, m.Subject, m.Sequence, m.Time, m.Header, m.Data, buf[:0]); !yieldAll(yield, buf, err) {
				return
			}
		}
	}
}

// yieldAll yields the envelopes one stored message read as, or its decode
// error. It reports whether to go on: the caller did not stop, and the
// message was read or merely undecodable (the next one may be fine).
func yieldAll(yield func(platform.Envelope, error) bool, envs []platform.Envelope, err error) bool {
	if err != nil {
		return yield(platform.Envelope{}, err) && platform.IsDecodeError(err)
	}
	for _, e := range envs {
		if !yield(e, nil) {
			return false
		}
	}
	return true
}

// readDirect pages through the subject with batched direct gets: no
// consumer is created, and each page is one request.
//
// Any replica answers a direct get, and a follower may not have applied
// the newest appends and deletes yet, so on a replicated stream a read
// could miss the caller's own append or return events it just deleted.
// There the read first asks the leader for the aggregate's first and last
// positions, skips what lies before the first (deletes only remove the
// oldest events) and reads until it has reached the last, asking again
// while a follower is behind.
func (s *EventStore) readDirect(ctx context.Context, subject string, start uint64) iter.Seq2[*jetstream.RawStreamMsg, error] {
	return func(yield func(*jetstream.RawStreamMsg, error) bool) {
		var first, fence uint64 // the leader's first position from start, and last, on subject
		if s.opts.Replicas > 1 {
			var err error
			if first, fence, err = s.span(ctx, subject, start); err != nil {
				yield(nil, err)
				return
			}
		}
		backoff := time.Millisecond
		for more := true; more || start <= fence; {
			if !more {
				// The replica that answered is behind the leader.
				if backoff > followerWait {
					yield(nil, platform.Errorf(platform.CodeStoreUnavailable,
						"read %s: the replicas that answered have not caught up with the stream leader's position %d in %v: check the cluster's health (nats stream report)", subject, fence, 2*followerWait))
					return
				}
				select {
				case <-time.After(backoff):
				case <-ctx.Done():
					yield(nil, ctx.Err())
					return
				}
				backoff *= 2
				// Deleted or truncated meanwhile, the position may be gone.
				last, err := s.last(ctx, subject)
				if err != nil {
					yield(nil, err)
					return
				}
				fence = min(fence, last.seq)
			}
			for m, err := range s.getter.page(ctx, subject, start, readPage, &more) {
				if err == nil && m.Sequence < first {
					start = m.Sequence + 1 // deleted on the leader
					continue
				}
				if !yield(m, err) || err != nil {
					return
				}
				start = m.Sequence + 1
			}
		}
	}
}

// span asks the stream leader for the positions of the aggregate's first
// event from start and of its last event; none gives 0, 0.
func (s *EventStore) span(ctx context.Context, subject string, start uint64) (first, last uint64, err error) {
	tail, err := s.last(ctx, subject)
	if err != nil || tail.seq < start {
		return 0, 0, err
	}
	m, err := s.getMsg(ctx, msgRequest{Seq: start, NextFor: subject})
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, 0, nil // deleted meanwhile
	}
	if err != nil {
		return 0, 0, platform.Errorf(platform.CodeStoreUnavailable, "read the first event on %s: %w", subject, err)
	}
	return m.Sequence, tail.seq, nil
}

// followerWait bounds the last wait for a replica to catch up with the
// leader; the waits double from 1 ms, about twice this in all.
const followerWait = 512 * time.Millisecond

// readSubject yields one aggregate's stored messages from start on:
// batched direct gets where the server has them (2.11+), an ordered
// consumer before that.
// A read to the end remembers the hash of the last event (chain.go).
func (s *EventStore) readSubject(ctx context.Context, subject string, start uint64) iter.Seq2[*jetstream.RawStreamMsg, error] {
	var read iter.Seq2[*jetstream.RawStreamMsg, error]
	if s.caps.BatchGet {
		read = s.readDirect(ctx, subject, start)
	} else {
		read = s.consume(ctx, []string{subject}, start, 0, false)
	}
	return func(yield func(*jetstream.RawStreamMsg, error) bool) {
		var last *jetstream.RawStreamMsg
		for m, err := range read {
			if !yield(m, err) || err != nil {
				return
			}
			last = m
		}
		if last != nil {
			if t, err := tailOf(last); err == nil {
				s.chain.put(subject, t.seq, t.hash)
			}
		}
	}
}

// consume yields the stream's messages on subjects from start through end
// (0: through the last matching message when the call starts).
// consume reads the subjects from start through end in stream order. With
// follow it does not stop at the head but waits for new messages until ctx
// ends.
func (s *EventStore) consume(ctx context.Context, subjects []string, start, end uint64, follow bool) iter.Seq2[*jetstream.RawStreamMsg, error] {
	return func(yield func(*jetstream.RawStreamMsg, error) bool) {
		cons, err := s.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
			FilterSubjects: subjects,
			DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
			OptStartSeq:    start,
		})
		if err != nil {
			yield(nil, err)
			return
		}
		// The consumer's pending count says how many messages there are to
		// read; a new consumer with nothing pending has nothing to give.
		info := cons.CachedInfo()
		if info.NumPending == 0 && !follow && !s.beyond(ctx, subjects, start, end) {
			return
		}
		it, err := cons.Messages(jetstream.PullMaxMessages(2000))
		if err != nil {
			yield(nil, err)
			return
		}
		defer it.Stop()
		stop := context.AfterFunc(ctx, it.Stop)
		defer stop()
		for {
			msg, err := it.Next()
			if err != nil {
				if ctx.Err() != nil {
					err = ctx.Err()
				}
				yield(nil, err)
				return
			}
			md, err := msg.Metadata()
			if err != nil {
				yield(nil, err)
				return
			}
			if end != 0 && md.Sequence.Stream > end {
				return
			}
			m := &jetstream.RawStreamMsg{Subject: msg.Subject(), Sequence: md.Sequence.Stream, Header: msg.Headers(), Data: msg.Data(), Time: md.Timestamp}
			if !yield(m, nil) || md.Sequence.Stream == end {
				return
			}
			if !follow && md.NumPending == 0 && !s.beyond(ctx, subjects, md.Sequence.Stream+1, end) {
				return
			}
		}
	}
}

// beyond reports whether a message on the subject is stored from start
// through end, asking the stream leader. A consumer's pending count comes
// from the server that holds it, which in a cluster may be a replica a
// write behind the leader that acknowledged it: a bounded read checks
// before it believes there is nothing more.
func (s *EventStore) beyond(ctx context.Context, subjects []string, start, end uint64) bool {
	if end == 0 || start > end || len(subjects) != 1 {
		return false
	}
	// getMsg, not Stream.GetMsg: on a stream that allows direct gets
	// that would be a direct get, which any replica answers, the lagging
	// one too (the fault suite's seed 3807528542878316376: a read all
	// ended after 18 of 93 events).
	m, err := s.getMsg(ctx, msgRequest{Seq: start, NextFor: subjects[0]})
	return err == nil && m.Sequence <= end
}

// ReadAll yields every event after the position, in global order, through
// the last event stored when the call starts. Positions of deleted events
// are simply absent.
func (s *EventStore) ReadAll(ctx context.Context, after uint64) iter.Seq2[platform.Envelope, error] {
	return s.readAll(ctx, after, s.everything())
}

func (s *EventStore) everything() []string { return []string{s.opts.SubjectPrefix + ".>"} }

// readAll is ReadAll of the events on the filter's subjects.
func (s *EventStore) readAll(ctx context.Context, after uint64, filter []string) iter.Seq2[platform.Envelope, error] {
	return func(yield func(platform.Envelope, error) bool) {
		info, err := s.stream.Info(ctx)
		if err != nil {
			yield(platform.Envelope{}, platform.Errorf(platform.CodeStoreUnavailable, "read all: stream info: %w", err))
			return
		}
		end := info.State.LastSeq
		if end <= after {
			return
		}
		names := subjects{prefix: s.opts.SubjectPrefix}
		var buf []platform.Envelope
		for m, err := range s.consume(ctx, filter, after+1, end, false) {
			if err != nil {
				yield(platform.Envelope{}, platform.Errorf(platform.CodeStoreUnavailable, "read all after %d: %w", after, err))
				return
			}
			if buf, err = s.decode(ctx, &names, m.Subject, m.Sequence, m.Time, m.Header, m.Data, buf[:0]); !yieldAll(yield, buf, err) {
				return
			}
		}
	}
}

// Subscribe yields every event after position after in stream order, then
// each new event as it is stored, until ctx ends (its error is the last
// thing yielded) or the caller stops. It reads through an ordered
// consumer, so it sees only events the stream accepted: a rejected batch
// never shows up here. Holes left by deleted aggregates are skipped.
func (s *EventStore) Subscribe(ctx context.Context, after uint64) iter.Seq2[platform.Envelope, error] {
	return s.subscribe(ctx, after, s.everything())
}

// subscribe is Subscribe to the events on the filter's subjects.
func (s *EventStore) subscribe(ctx context.Context, after uint64, filter []string) iter.Seq2[platform.Envelope, error] {
	return func(yield func(platform.Envelope, error) bool) {
		names := subjects{prefix: s.opts.SubjectPrefix}
		var buf []platform.Envelope
		for m, err := range s.consume(ctx, filter, after+1, 0, true) {
			if err != nil {
				if ctx.Err() == nil {
					err = platform.Errorf(platform.CodeStoreUnavailable, "subscribe after %d: %w", after, err)
				}
				yield(platform.Envelope{}, err)
				return
			}
			if buf, err = s.decode(ctx, &names, m.Subject, m.Sequence, m.Time, m.Header, m.Data, buf[:0]); !yieldAll(yield, buf, err) {
				return
			}
		}
	}
}

// Delete purges the aggregate's subject.
func (s *EventStore) Delete(ctx context.Context, stream platform.StreamID) error {
	if err := stream.Validate(); err != nil {
		return err
	}
	subject := subjectOf(s.opts.SubjectPrefix, stream)
	if err := s.stream.Purge(ctx, jetstream.WithPurgeSubject(subject)); err != nil {
		return platform.Errorf(platform.CodeStoreUnavailable, "delete %s: %w", stream, err)
	}
	s.chain.forget(subject)
	return nil
}

// Truncate purges the aggregate's events up to and including through.
// The aggregate's last event always stays: it carries the version that
// later appends continue from.
func (s *EventStore) Truncate(ctx context.Context, stream platform.StreamID, through platform.Revision) error {
	if err := stream.Validate(); err != nil {
		return err
	}
	subject := subjectOf(s.opts.SubjectPrefix, stream)
	last, err := s.last(ctx, subject)
	if err != nil {
		return err
	}
	switch {
	case last.version == 0:
		return nil
	case through.Version > last.version:
		return platform.Errorf(platform.CodeInvalidArgument, "truncate %s through version %d: the aggregate is at version %d: truncate only what is stored",
			stream, through.Version, last.version)
	case through.Version == last.version:
		through.Position = last.seq - 1 // keep the last event
	case through.Position == 0:
		if through.Position, err = s.positionOf(ctx, subject, through.Version); err != nil {
			return err
		}
	default:
		m, err := s.getMsg(ctx, msgRequest{Seq: through.Position})
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			// Gone already, e.g. a repeated truncate: find where the
			// aggregate's history starts now instead.
			if through.Position, err = s.positionOf(ctx, subject, through.Version); err != nil {
				return err
			}
			break
		}
		if err == nil && m.Subject != subject {
			err = errors.New("it belongs to " + m.Subject)
		}
		if err == nil {
			var v uint64
			if v, err = versionOf(m.Header, m.Sequence); err == nil && v != through.Version {
				err = errors.New("it holds version " + strconv.FormatUint(v, 10))
			}
		}
		if err != nil {
			return platform.Errorf(platform.CodeInvalidArgument, "truncate %s: position %d is not version %d of it: %w: pass the revision of a stored event, or Position 0",
				stream, through.Position, through.Version, err)
		}
	}
	if err := s.stream.Purge(ctx, jetstream.WithPurgeSubject(subject), jetstream.WithPurgeSequence(through.Position+1)); err != nil {
		return platform.Errorf(platform.CodeStoreUnavailable, "truncate %s through version %d: %w", stream, through.Version, err)
	}
	return nil
}

// positionOf finds the position of one version of the aggregate by reading
// its versions from the start.
func (s *EventStore) positionOf(ctx context.Context, subject string, version uint64) (uint64, error) {
	for m, err := range s.readSubject(ctx, subject, 1) {
		if err != nil {
			return 0, platform.Errorf(platform.CodeStoreUnavailable, "find version %d on %s: %w", version, subject, err)
		}
		v, err := versionOf(m.Header, m.Sequence)
		if err != nil {
			return 0, err
		}
		switch {
		case v == version:
			return m.Sequence, nil
		case v > version: // already truncated: purge nothing more
			return m.Sequence - 1, nil
		}
	}
	return 0, platform.Errorf(platform.CodeInvalidArgument, "version %d on %s is not stored", version, subject)
}
