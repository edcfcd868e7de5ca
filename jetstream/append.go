package jetstream

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/lexigram/events/platform"
)

// JetStream error codes the append path acts on (server errors.json).
const (
	codeWrongLastSeq         = 10071 // a conflict, with the current sequence
	codeWrongLastSeqConstant = 10164 // a conflict, or a write in flight on the subject (replicated streams)
	codeClusterNotAvailable  = 10008 // no leader yet
	codeDuplicateInProcess   = 10158 // the same event ID is being stored right now
	codeExpectedNotReady     = 10163 // a new leader has not caught up yet
	codeTooManyRequests      = 10167
	codeBatchTooManyInflight = 10210
	codeBatchDuplicateMsgID  = 10201 // a resent batch whose events are stored already
	codeBatchIncomplete      = 10176 // the server missed a message of the batch and stored none of it
	codeBatchNotEnabled      = 10174
	codeStreamStoreFailed    = 10049 // the server could not create the stream's files
)

// noFirstAck sends a batch without waiting for the server's empty answer
// to its first message, a round trip of its own: the commit's answer
// carries any error of the batch (a conflict is only found at commit), and
// the server needs no reply subject on the first message (nats-server
// 2.15.2 stream.go processJetStreamAtomicBatchMsg).
var noFirstAck = jetstreamext.BatchFlowControl{AckFirst: false}

// retry bounds: the server's retryable answers last as long as an election,
// a few seconds at most.
const (
	maxAttempts  = 12
	firstBackoff = 5 * time.Millisecond
	maxBackoff   = 500 * time.Millisecond
)

// Append stores events at the end of the aggregate's history if its
// version matches expected; several events go in one atomic batch.
func (s *EventStore) Append(ctx context.Context, stream platform.StreamID, expected platform.ExpectedVersion, events []platform.Envelope) (platform.AppendResult, error) {
	dur := s.dur.Load() // the durability this append is sent with
	if dur.refusal != nil {
		return platform.AppendResult{}, dur.refusal
	}
	events = slices.Clone(events) // Prepare completes the envelopes; the caller's stay as they were
	bodies, err := platform.Prepare(ctx, s.registry, s.codec, stream, events)
	if err != nil {
		return platform.AppendResult{}, err
	}
	if len(events) > 1 && !s.caps.AtomicBatch {
		return platform.AppendResult{}, platform.Errorf(platform.CodeUnsupported,
			"append %d events to %s: multi-event appends need atomic batch publish, from nats-server 2.12; this server is %s: upgrade it, or append one event per call",
			len(events), stream, s.caps.ServerVersion)
	}
	if err := ctx.Err(); err != nil {
		return platform.AppendResult{}, err
	}
	subject := subjectOf(s.opts.SubjectPrefix, stream)

	a := &appendOp{s: s, stream: stream, subject: subject, events: events, expected: expected, msgs: make([]*nats.Msg, len(events))}
	for i := range events {
		a.msgs[i] = s.newMsg(subject, &events[i], bodies[i], expected.IsAny(), len(events) > 1)
	}
	if err := a.checkSizes(); err != nil {
		return platform.AppendResult{}, err
	}
	var res platform.AppendResult
	if s.group != nil {
		res, err = s.group.append(ctx, a)
	} else {
		res, err = a.run(ctx)
	}
	if err != nil {
		return platform.AppendResult{}, err
	}
	res.Durability = dur.d
	return res, nil
}

// appendOp is one Append call: what to write and what it expects.
type appendOp struct {
	s        *EventStore
	stream   platform.StreamID
	subject  string
	events   []platform.Envelope
	msgs     []*nats.Msg // one per event; publish sets their versions
	expected platform.ExpectedVersion
	lastSeen tail     // the aggregate's last event when base found a conflict
	prevs    []string // the Lx-Prev values (chain.go)
	head     string   // the last event's ChainHash, as stamp chained them
}

func (a *appendOp) checkSizes() error {
	limit := a.s.MaxEventSize()
	for i, m := range a.msgs {
		if n := len(m.Data); n > limit {
			return platform.Errorf(platform.CodeInvalidArgument,
				"append to %s: event %d (%s) is %d bytes encoded; the limit is %d (the server's max_payload %d less %d for headers): make the event smaller, or raise max_payload",
				a.stream, i+1, a.events[i].Type, n, limit, a.s.maxMsg, headerRoom)
		}
		if n := msgSize(m) + 128 + prevRoom; n > a.s.maxMsg { // 128: the batch and expectation headers added later
			return platform.Errorf(platform.CodeInvalidArgument,
				"append to %s: event %d (%s) is %d bytes with its headers; the server's max_payload is %d: carry less metadata",
				a.stream, i+1, a.events[i].Type, n, a.s.maxMsg)
		}
	}
	return nil
}

// run publishes, retrying the server's transient answers, and turns the
// outcome into a result or a *ConcurrencyError.
func (a *appendOp) run(ctx context.Context) (platform.AppendResult, error) {
	base, res, stored, err := a.start(ctx)
	if stored || err != nil {
		return res, err
	}
	return a.send(ctx, base)
}

// start finds the base the append builds on; stored reports an append
// retried with the same event IDs whose events are the aggregate's newest.
func (a *appendOp) start(ctx context.Context) (base tail, res platform.AppendResult, stored bool, err error) {
	base, err = a.base(ctx)
	if err == nil {
		if a.expected.IsAny() {
			if res, ok := a.alreadyStored(base); ok {
				return tail{}, res, true, nil
			}
		}
		return base, platform.AppendResult{}, false, nil
	}
	if ce := (*platform.ConcurrencyError)(nil); errors.As(err, &ce) {
		if res, ok := a.alreadyStored(a.lastSeen); ok {
			return tail{}, res, true, nil
		}
	}
	return base, platform.AppendResult{}, false, err
}

// send publishes on base until the server decides.
func (a *appendOp) send(ctx context.Context, base tail) (platform.AppendResult, error) {
	backoff := firstBackoff
	for attempt := 1; ; attempt++ {
		attemptCtx, cancel := a.s.attempt(ctx)
		res, err := a.publish(attemptCtx, base)
		cancel()
		if err == nil {
			return res, nil
		}
		code := apiCode(err)
		switch {
		case code == codeWrongLastSeq || code == codeWrongLastSeqConstant || code == codeBatchDuplicateMsgID:
			// The events may be stored already: by an attempt whose answer
			// was lost, or by the caller's earlier call with the same event
			// IDs. On R1 the server checks the expected sequence before the
			// duplicate window, so that shows up as a conflict.
			//
			// The aggregate's last event is read before looking for ours:
			// an attempt of ours stored in between is then found by the
			// look, instead of making the aggregate look moved by someone
			// else (a false conflict, and the caller's retry would store
			// its events twice).
			cur, cerr := a.s.last(ctx, a.subject)
			if res, ok, lerr := a.landed(ctx, base); lerr != nil {
				return platform.AppendResult{}, lerr
			} else if ok {
				return res, nil
			}
			if cerr != nil || cur.seq <= base.seq {
				// The server refused our expected position, yet the
				// aggregate's last event is still the one we built on (or
				// an older one: a leader just elected may not have applied
				// the newest writes yet): on a replicated stream a write to
				// it is in flight (proposed, not yet applied where we read;
				// perhaps our own earlier attempt). Its outcome decides
				// ours: until the aggregate moves past our base, nothing is
				// decided.
				if attempt < maxAttempts {
					break // retry
				}
				return platform.AppendResult{}, platform.Errorf(platform.CodeStoreUnavailable,
					"append to %s: undecided after %d attempts: another write to it is in flight on a stream leader that does not answer (%w); the events are not stored: retry",
					a.stream, attempt, err)
			}
			if a.expected.IsAny() && attempt < maxAttempts {
				// Any accepts whatever version is there: decide again.
				var stored bool
				if base, res, stored, err = a.start(ctx); stored || err != nil {
					return res, err
				}
				continue
			}
			return platform.AppendResult{}, a.conflict(ctx)
		case code == codeBatchNotEnabled:
			return platform.AppendResult{}, platform.Errorf(platform.CodeConfigConflict,
				"append to %s: stream %s does not allow atomic batches: restart the store so it can set allow_atomic, or set it yourself: %w",
				a.stream, a.s.opts.Stream, err)
		case retryable(err):
			if attempt >= maxAttempts || ctx.Err() != nil {
				return platform.AppendResult{}, platform.Errorf(platform.CodeStoreUnavailable,
					"append to %s: gave up after %d attempts: %w (the events may or may not be stored: read the aggregate, or retry with the same event IDs)", a.stream, attempt, err)
			}
		default:
			return platform.AppendResult{}, platform.Errorf(platform.CodeStoreUnavailable, "append to %s: %w", a.stream, err)
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return platform.AppendResult{}, platform.Errorf(platform.CodeStoreUnavailable, "append to %s: %w (the events may or may not be stored: read the aggregate to find out)", a.stream, ctx.Err())
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// tail is an aggregate's last stored event: its version and position,
// and its ChainHash (chain.go).
type tail struct {
	version, seq uint64
	eventID      string
	hash         string
}

// base finds the aggregate's version and the position of its last event,
// which the append builds on and checks. The repository passes both, so
// its appends make no extra round trip.
func (a *appendOp) base(ctx context.Context) (tail, error) {
	want, check := a.expected.Expected()
	switch rev := a.expected.Revision(); {
	case check && want == 0:
		return tail{}, nil
	case check && rev.Position != 0:
		return a.chainedBase(ctx, tail{version: rev.Version, seq: rev.Position})
	}
	cur, err := a.s.last(ctx, a.subject)
	if err != nil {
		return tail{}, err
	}
	if check && cur.version != want {
		a.lastSeen = cur
		return tail{}, &platform.ConcurrencyError{Stream: a.stream, Expected: a.expected, Actual: cur.version}
	}
	return cur, nil
}

// alreadyStored recognises a retried append whose events are the
// aggregate's newest: same last event ID, at the version it would have
// (any version, for Any).
func (a *appendOp) alreadyStored(cur tail) (platform.AppendResult, bool) {
	n := uint64(len(a.events))
	if cur.eventID != a.events[n-1].ID || cur.version < n {
		return platform.AppendResult{}, false
	}
	if want, check := a.expected.Expected(); check && cur.version != want+n {
		return platform.AppendResult{}, false
	}
	// A batch is stored in one piece, so its positions are contiguous.
	return platform.AppendResult{FirstVersion: cur.version - n + 1, LastVersion: cur.version, FirstPosition: cur.seq - n + 1, LastPosition: cur.seq}, true
}

// publish sends the events after base: one conditional publish, or one
// atomic batch with the condition on its first message.
func (a *appendOp) publish(ctx context.Context, base tail) (platform.AppendResult, error) {
	msgs := a.msgs
	a.stamp(base)
	res := platform.AppendResult{FirstVersion: base.version + 1, LastVersion: base.version + uint64(len(msgs))}
	if len(msgs) == 1 {
		ack, err := a.s.js.PublishMsg(ctx, msgs[0])
		if err != nil {
			return platform.AppendResult{}, err
		}
		if ack.Duplicate && ack.Sequence <= base.seq {
			// An Any append called again with the same event ID after
			// others wrote: the event is where the first call put it.
			return a.s.storedAt(ctx, a.stream, ack.Sequence)
		}
		res.FirstPosition, res.LastPosition = ack.Sequence, ack.Sequence
		a.s.chain.put(a.subject, res.LastPosition, a.head)
		return res, nil
	}
	ack, err := jetstreamext.PublishMsgBatch(ctx, a.s.js, msgs, noFirstAck)
	if err != nil {
		return platform.AppendResult{}, err
	}
	// A batch is stored in one piece, so its positions are contiguous.
	res.LastPosition = ack.Sequence
	res.FirstPosition = ack.Sequence - uint64(len(msgs)) + 1
	a.s.chain.put(a.subject, res.LastPosition, a.head)
	return res, nil
}

// stamp readies the messages for a publish on base: their versions and
// previous-hashes, the expected sequence on the first, and none of an
// earlier batch's headers.
func (a *appendOp) stamp(base tail) {
	a.head = a.chain(base)
	for i, m := range a.msgs {
		setVersion(m, base.version+uint64(i)+1)
		m.Reply = ""
		delete(m.Header, jetstreamext.BatchIDHeader)
		delete(m.Header, jetstreamext.BatchSeqHeader)
		delete(m.Header, jetstreamext.BatchCommitHeader)
	}
	a.msgs[0].Header[jetstream.ExpectedLastSubjSeqHeader] = []string{uitoa(base.seq)}
}

// landed reports whether an earlier attempt of this append was stored:
// the aggregate's event right after base is our first event.
func (a *appendOp) landed(ctx context.Context, base tail) (platform.AppendResult, bool, error) {
	m, err := a.s.getMsg(ctx, msgRequest{Seq: base.seq + 1, NextFor: a.subject})
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return platform.AppendResult{}, false, nil
	}
	if err != nil {
		return platform.AppendResult{}, false, platform.Errorf(platform.CodeStoreUnavailable, "append to %s: check whether a retried append landed: %w", a.stream, err)
	}
	if eventID(m.Header) != a.events[0].ID {
		return platform.AppendResult{}, false, nil
	}
	n := uint64(len(a.events))
	return platform.AppendResult{
		FirstVersion: base.version + 1, LastVersion: base.version + n,
		FirstPosition: m.Sequence, LastPosition: m.Sequence + n - 1,
	}, true, nil
}

// storedAt is the result of a single-event append found stored at seq.
func (s *EventStore) storedAt(ctx context.Context, stream platform.StreamID, seq uint64) (platform.AppendResult, error) {
	m, err := s.getMsg(ctx, msgRequest{Seq: seq})
	if err != nil {
		return platform.AppendResult{}, platform.Errorf(platform.CodeStoreUnavailable, "append to %s: the server found the event stored at position %d already, and reading it back failed: %w", stream, seq, err)
	}
	v, err := versionOf(m.Header, m.Sequence)
	if err != nil {
		return platform.AppendResult{}, err
	}
	return platform.AppendResult{FirstVersion: v, LastVersion: v, FirstPosition: seq, LastPosition: seq}, nil
}

// conflict builds the *ConcurrencyError with the version now stored.
func (a *appendOp) conflict(ctx context.Context) error {
	ce := &platform.ConcurrencyError{Stream: a.stream, Expected: a.expected}
	if cur, err := a.s.last(ctx, a.subject); err == nil {
		ce.Actual = cur.version
	}
	return ce
}

// last reads the aggregate's last event's version and position; an
// aggregate without events is the zero tail.
func (s *EventStore) last(ctx context.Context, subject string) (tail, error) {
	m, err := s.getMsg(ctx, msgRequest{LastFor: subject})
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return tail{}, nil
	}
	if err != nil {
		return tail{}, platform.Errorf(platform.CodeStoreUnavailable, "read the last event on %s: %w", subject, err)
	}
	t, err := tailOf(m)
	if err != nil {
		return tail{}, err
	}
	s.chain.put(subject, t.seq, t.hash)
	return t, nil
}

func apiCode(err error) jetstream.ErrorCode {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode
	}
	return 0
}

// retryable reports the server's answers that mean "not now": an
// election, a leader catching up, a full queue, a batch it missed part
// of, or no answer in time.
func retryable(err error) bool {
	switch apiCode(err) {
	case codeClusterNotAvailable, codeDuplicateInProcess, codeExpectedNotReady, codeTooManyRequests, codeBatchTooManyInflight:
		return true
	case codeBatchIncomplete:
		// A batch's messages before the commit go without a reply
		// (noFirstAck); one that reached a replicated stream's leader
		// before it was ready to take it is lost, and the server refuses
		// the batch whole. Seen on a stream created a moment before.
		return true
	}
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded)
}

func isNotFound(err error) bool { return errors.Is(err, jetstream.ErrMsgNotFound) }

func uitoa(n uint64) string { return strconv.FormatUint(n, 10) }
