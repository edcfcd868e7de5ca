package durable

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// Headers a DLQ entry adds to the original event's headers.
const (
	hdrDLQHandler    = "Lx-Dlq-Handler"
	hdrDLQError      = "Lx-Dlq-Error"
	hdrDLQReason     = "Lx-Dlq-Reason"
	hdrDLQDeliveries = "Lx-Dlq-Deliveries"
	hdrDLQTime       = "Lx-Dlq-Time"
	hdrDLQStream     = "Lx-Dlq-Stream"
	hdrDLQSubject    = "Lx-Dlq-Subject"
	hdrDLQSequence   = "Lx-Dlq-Sequence"
	hdrDLQMsgID      = "Lx-Dlq-Msg-Id"     // the event's Nats-Msg-Id, if any: an entry must not carry it, or the DLQ stream would de-duplicate two handlers' entries for one event
	hdrDLQEventTime  = "Lx-Dlq-Event-Time" // when the event was stored
	hdrDLQRecordedBy = "Lx-Dlq-Recorded-By"
)

// Reason says why an event was dead-lettered.
type Reason string

const (
	// ReasonMaxDeliveries: the handler failed on every one of MaxDeliver deliveries.
	ReasonMaxDeliveries Reason = "max_deliveries"
	// ReasonTerminated: the event can never succeed (it does not decode, its
	// type is unknown, or the handler returned a Permanent error), so it was
	// terminated on the delivery that found out.
	ReasonTerminated Reason = "terminated"
)

// ID names one DLQ entry: the handler and the event's position in the
// event stream. One event has at most one entry per handler.
type ID struct {
	Handler  string
	Position uint64
}

// String is "<handler>/<position>", the form ParseID reads.
func (id ID) String() string { return id.Handler + "/" + strconv.FormatUint(id.Position, 10) }

// ParseID reads an ID written by ID.String, e.g. "billing/1234".
func ParseID(s string) (ID, error) {
	h, p, ok := strings.Cut(s, "/")
	pos, err := strconv.ParseUint(p, 10, 64)
	if !ok || err != nil || pos == 0 || validateName(h) != nil {
		return ID{}, platform.Errorf(platform.CodeInvalidArgument, "DLQ entry ID %q: use <handler>/<event position>, e.g. \"billing/1234\"", s)
	}
	return ID{Handler: h, Position: pos}, nil
}

// Entry is one dead-lettered event for one handler.
type Entry struct {
	ID         ID
	Stream     string      // the event stream the event is in
	Subject    string      // the event's subject there: <prefix>.<aggregate type>.<id token>
	Header     nats.Header // the event's stored headers (the envelope), Nats-Msg-Id included where the event has one
	Data       []byte      // the encoded event; nil if it was gone when the entry was written from an advisory
	EventTime  time.Time   // when the event was stored; zero if unknown
	Error      string      // the handler's last error, or the advisory's account of it
	Reason     Reason
	Deliveries int       // how many times the handler got the event
	Time       time.Time // when the entry was written
	// RecordedBy is "handler" when the handler wrote the entry with its
	// error, or "advisory" when a JetStream advisory did because the
	// handler could not (its process stopped, or the DLQ was unreachable).
	RecordedBy string
}

// EventType is the stored event's type name.
func (e Entry) EventType() string { return e.Header.Get(lxjs.TypeHeader) }

// DLQOptions configure a DLQ. The zero value works.
type DLQOptions struct {
	Stream        string                // default "LEXIGRAM_DLQ"
	SubjectPrefix string                // default "lexigram.dlq"
	Replicas      int                   // default 1
	Storage       jetstream.StorageType // default file
	// AdvisoryMaxAge is how long captured advisories are kept; a handler
	// down for longer than this can miss writing an entry for an event
	// whose last delivery its process did not finish. Default 7 days.
	AdvisoryMaxAge time.Duration
}

// DLQ is the dead-letter queue of the durable handlers on one event
// stream: a JetStream stream with one subject per entry,
// <prefix>.<handler>.<event position>, holding at most one message each,
// plus <prefix>.<handler>.replay.<position> for replays on their way to
// the handler. A second stream, <Stream>_ADVISORIES, captures the
// max-deliveries and terminated advisories of the handlers' consumers.
type DLQ struct {
	js      jetstream.JetStream
	opts    DLQOptions
	events  jetstream.Stream
	stream  jetstream.Stream
	advName string
}

// OpenDLQ creates the DLQ's streams for the store's event stream, or
// connects to them.
func OpenDLQ(ctx context.Context, js jetstream.JetStream, store Store, opts DLQOptions) (*DLQ, error) {
	if opts.Stream == "" {
		opts.Stream = "LEXIGRAM_DLQ"
	}
	if opts.SubjectPrefix == "" {
		opts.SubjectPrefix = "lexigram.dlq"
	}
	if opts.Replicas == 0 {
		opts.Replicas = 1
	}
	if opts.AdvisoryMaxAge == 0 {
		opts.AdvisoryMaxAge = 7 * 24 * time.Hour
	}
	if strings.ContainsAny(opts.Stream, " \t.*>/\\") {
		return nil, platform.Errorf(platform.CodeInvalidArgument, "DLQ stream name %q: use letters, digits, '-' and '_'", opts.Stream)
	}
	for _, tok := range strings.Split(opts.SubjectPrefix, ".") {
		if tok == "" || strings.ContainsAny(tok, " \t*>") {
			return nil, platform.Errorf(platform.CodeInvalidArgument, "DLQ subject prefix %q: use dot-separated tokens without spaces or wildcards, e.g. \"lexigram.dlq\"", opts.SubjectPrefix)
		}
	}
	q := &DLQ{js: js, opts: opts, advName: opts.Stream + "_ADVISORIES"}
	var err error
	if q.events, err = js.Stream(ctx, store.StreamName()); err != nil {
		return nil, platform.Errorf(platform.CodeStoreUnavailable, "DLQ: look up event stream %s: %w", store.StreamName(), err)
	}
	q.stream, err = ensureStream(ctx, js, jetstream.StreamConfig{
		Name:        opts.Stream,
		Description: "lexigram dead-letter queue: one message per dead-lettered event and handler",
		Subjects:    []string{opts.SubjectPrefix + ".>"},
		Retention:   jetstream.LimitsPolicy,
		// One entry per subject: a newer entry for the same handler and
		// event replaces the older one.
		MaxMsgsPerSubject: 1,
		Storage:           opts.Storage,
		Replicas:          opts.Replicas,
		AllowDirect:       true,
	})
	if err != nil {
		return nil, err
	}
	// Advisories are core NATS messages sent only while someone listens:
	// a stream listening keeps them for handlers that are not running.
	_, err = ensureStream(ctx, js, jetstream.StreamConfig{
		Name:        q.advName,
		Description: "max-deliveries and terminated advisories of lexigram durable handlers",
		Subjects:    slices.Concat(advisorySubjects(store.StreamName(), "*"), advisorySubjects(opts.Stream, "*")),
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      opts.AdvisoryMaxAge,
		Storage:     opts.Storage,
		Replicas:    opts.Replicas,
	})
	if err != nil {
		return nil, err
	}
	return q, nil
}

const (
	advMaxDeliveries = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES."
	advTerminated    = "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED."
)

func advisorySubjects(stream, consumer string) []string {
	return []string{advMaxDeliveries + stream + "." + consumer, advTerminated + stream + "." + consumer}
}

// ensureStream creates a stream, or adds the subjects it lacks to an
// existing one, restores its one-message-per-subject limit, and otherwise
// leaves the operator's settings alone.
func ensureStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig) (jetstream.Stream, error) {
	st, err := js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		var createErr error
		if st, createErr = js.CreateStream(ctx, want); createErr == nil {
			return st, nil
		}
		// Another process may have created it in the meantime.
		if st, err = js.Stream(ctx, want.Name); errors.Is(err, jetstream.ErrStreamNotFound) {
			err = createErr // the reason it is not there
		}
	}
	if err != nil {
		return nil, platform.Errorf(platform.CodeStoreUnavailable, "create or look up stream %s: %w", want.Name, err)
	}
	have := st.CachedInfo().Config
	missing := false
	for _, s := range want.Subjects {
		if !slices.Contains(have.Subjects, s) {
			have.Subjects = append(have.Subjects, s)
			missing = true
		}
	}
	// The DLQ's one entry per subject is what makes its entries unique.
	if want.MaxMsgsPerSubject != 0 && have.MaxMsgsPerSubject != want.MaxMsgsPerSubject {
		have.MaxMsgsPerSubject = want.MaxMsgsPerSubject
		missing = true
	}
	if missing {
		if st, err = js.UpdateStream(ctx, have); err != nil {
			return nil, platform.Errorf(platform.CodeConfigConflict, "update stream %s to subjects %q and max msgs per subject %d: %w", want.Name, have.Subjects, have.MaxMsgsPerSubject, err)
		}
	}
	return st, nil
}

// StreamName is the name of the stream holding the entries.
func (q *DLQ) StreamName() string { return q.opts.Stream }

func (q *DLQ) entrySubject(id ID) string {
	return q.opts.SubjectPrefix + "." + id.Handler + "." + strconv.FormatUint(id.Position, 10)
}

func (q *DLQ) replaySubject(id ID) string {
	return q.opts.SubjectPrefix + "." + id.Handler + ".replay." + strconv.FormatUint(id.Position, 10)
}

// entriesFilter matches the entries of one handler, or of all with "".
// Replays have one token more, so it never matches them.
func (q *DLQ) entriesFilter(handler string) string {
	if handler == "" {
		handler = "*"
	}
	return q.opts.SubjectPrefix + "." + handler + ".*"
}

// write stores an entry. With ifAbsent it writes only if the handler has
// no entry for the event yet, atomically on the server, so an advisory
// never overwrites the error text the handler recorded.
func (q *DLQ) write(ctx context.Context, e Entry, ifAbsent bool) error {
	h := make(nats.Header, len(e.Header)+12)
	for k, v := range e.Header {
		if !strings.HasPrefix(k, "Nats-") && !strings.HasPrefix(k, "Lx-Dlq-") {
			h[k] = v
		}
	}
	if id := e.Header.Get(jetstream.MsgIDHeader); id != "" {
		h.Set(hdrDLQMsgID, id)
	}
	h.Set(hdrDLQHandler, e.ID.Handler)
	h.Set(hdrDLQError, e.Error)
	h.Set(hdrDLQReason, string(e.Reason))
	h.Set(hdrDLQDeliveries, strconv.Itoa(e.Deliveries))
	h.Set(hdrDLQTime, e.Time.UTC().Format(time.RFC3339Nano))
	h.Set(hdrDLQStream, e.Stream)
	h.Set(hdrDLQSubject, e.Subject)
	h.Set(hdrDLQSequence, strconv.FormatUint(e.ID.Position, 10))
	h.Set(hdrDLQRecordedBy, e.RecordedBy)
	if !e.EventTime.IsZero() {
		h.Set(hdrDLQEventTime, e.EventTime.UTC().Format(time.RFC3339Nano))
	}
	var opts []jetstream.PublishOpt
	if ifAbsent {
		opts = append(opts, jetstream.WithExpectLastSequencePerSubject(0))
	}
	_, err := q.js.PublishMsg(ctx, &nats.Msg{Subject: q.entrySubject(e.ID), Header: h, Data: e.Data}, opts...)
	var apiErr *jetstream.APIError
	if ifAbsent && errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
		return nil
	}
	if err != nil {
		return platform.Errorf(platform.CodeStoreUnavailable, "write DLQ entry %s: %w", e.ID, err)
	}
	return nil
}

// entryOf reads an entry (or a replay, which has the same headers) back.
func entryOf(m *jetstream.RawStreamMsg) (Entry, error) {
	h := m.Header
	pos, err := strconv.ParseUint(h.Get(hdrDLQSequence), 10, 64)
	if err != nil {
		return Entry{}, platform.Errorf(platform.CodeCorruptEvent, "DLQ message %d on %s: bad %s header: %w", m.Sequence, m.Subject, hdrDLQSequence, err)
	}
	e := Entry{
		ID:         ID{Handler: h.Get(hdrDLQHandler), Position: pos},
		Stream:     h.Get(hdrDLQStream),
		Subject:    h.Get(hdrDLQSubject),
		Data:       m.Data,
		Error:      h.Get(hdrDLQError),
		Reason:     Reason(h.Get(hdrDLQReason)),
		RecordedBy: h.Get(hdrDLQRecordedBy),
		Header:     make(nats.Header, len(h)),
	}
	e.Deliveries, _ = strconv.Atoi(h.Get(hdrDLQDeliveries))
	e.Time, _ = time.Parse(time.RFC3339Nano, h.Get(hdrDLQTime))
	e.EventTime, _ = time.Parse(time.RFC3339Nano, h.Get(hdrDLQEventTime))
	for k, v := range h {
		if !strings.HasPrefix(k, "Lx-Dlq-") && !strings.HasPrefix(k, "Nats-") {
			e.Header[k] = v
		}
	}
	if id := h.Get(hdrDLQMsgID); id != "" {
		e.Header.Set(jetstream.MsgIDHeader, id)
	}
	return e, nil
}

// listPage is how many entries one batched direct get asks for.
const listPage = 256

// List yields the DLQ entries of a handler, or of every handler when
// handler is "", oldest entry first. It reads with batched direct gets
// (server 2.11+), so listing creates no consumer.
func (q *DLQ) List(ctx context.Context, handler string) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		if handler != "" {
			if err := validateName(handler); err != nil {
				yield(Entry{}, err)
				return
			}
		}
		fail := func(err error) {
			yield(Entry{}, platform.Errorf(platform.CodeStoreUnavailable, "list DLQ entries: %w", err))
		}
		for m, err := range lxjs.DirectRead(ctx, q.js, q.opts.Stream, q.entriesFilter(handler), listPage) {
			if err != nil {
				fail(err)
				return
			}
			e, err := entryOf(m)
			if !yield(e, err) {
				return
			}
		}
	}
}

// Get returns one entry.
func (q *DLQ) Get(ctx context.Context, id ID) (Entry, error) {
	if err := validateName(id.Handler); err != nil {
		return Entry{}, err
	}
	m, err := q.stream.GetLastMsgForSubject(ctx, q.entrySubject(id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Entry{}, platform.Errorf(platform.CodeInvalidArgument, "DLQ entry %s does not exist: list the handler's entries to see which do", id)
	}
	if err != nil {
		return Entry{}, platform.Errorf(platform.CodeStoreUnavailable, "read DLQ entry %s: %w", id, err)
	}
	return entryOf(m)
}

// Replay sends the entry's event back to its handler, on the handler's
// replay subject, which the running handler consumes alongside its
// events. The event is not written to the event store again: that would
// give its aggregate a second copy. The entry stays until the handler
// has handled the event; if it fails again, the entry is replaced with
// the new error.
func (q *DLQ) Replay(ctx context.Context, id ID) error {
	m, err := q.stream.GetLastMsgForSubject(ctx, q.entrySubject(id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return platform.Errorf(platform.CodeInvalidArgument, "replay DLQ entry %s: it does not exist: list the handler's entries to see which do", id)
	}
	if err != nil {
		return platform.Errorf(platform.CodeStoreUnavailable, "replay DLQ entry %s: %w", id, err)
	}
	h := make(nats.Header, len(m.Header))
	for k, v := range m.Header {
		if !strings.HasPrefix(k, "Nats-") {
			h[k] = v
		}
	}
	if _, err := q.js.PublishMsg(ctx, &nats.Msg{Subject: q.replaySubject(id), Header: h, Data: m.Data}); err != nil {
		return platform.Errorf(platform.CodeStoreUnavailable, "replay DLQ entry %s: %w", id, err)
	}
	return nil
}

// Discard removes an entry for good.
func (q *DLQ) Discard(ctx context.Context, id ID) error {
	if _, err := q.Get(ctx, id); err != nil {
		return err
	}
	return q.purge(ctx, id)
}

func (q *DLQ) purge(ctx context.Context, id ID) error {
	if err := q.stream.Purge(ctx, jetstream.WithPurgeSubject(q.entrySubject(id))); err != nil {
		return platform.Errorf(platform.CodeStoreUnavailable, "remove DLQ entry %s: %w", id, err)
	}
	return nil
}

// Size counts the entries of a handler, or of every handler with "".
func (q *DLQ) Size(ctx context.Context, handler string) (int, error) {
	info, err := q.stream.Info(ctx, jetstream.WithSubjectFilter(q.entriesFilter(handler)))
	if err != nil {
		return 0, platform.Errorf(platform.CodeStoreUnavailable, "count DLQ entries: %w", err)
	}
	n := 0
	for _, c := range info.State.Subjects {
		n += int(c)
	}
	return n, nil
}

// termRecorded starts the reason of a termination whose DLQ entry the
// handler has written, so that the advisory path leaves it alone.
const termRecorded = "in DLQ: "

// advisory is the part of a max-deliveries or terminated advisory the
// DLQ needs.
type advisory struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries int    `json:"deliveries"`
	Reason     string `json:"reason"`
}

// recordAdvisory writes the entry an advisory announces, unless the
// handler already wrote one with its error.
func (q *DLQ) recordAdvisory(ctx context.Context, subject string, data []byte, handler string) error {
	var a advisory
	if err := json.Unmarshal(data, &a); err != nil {
		return Permanent(fmt.Errorf("advisory on %s: %w", subject, err))
	}
	e := Entry{ID: ID{Handler: handler}, Deliveries: a.Deliveries, Time: time.Now(), RecordedBy: "advisory"}
	if strings.HasPrefix(subject, advTerminated) {
		if strings.HasPrefix(a.Reason, termRecorded) {
			// The handler wrote the entry before it terminated the
			// delivery. Writing it again here could bring back an entry
			// that was replayed or discarded while this advisory waited.
			return nil
		}
		e.Reason, e.Error = ReasonTerminated, a.Reason
		if e.Error == "" {
			e.Error = "terminated without a reason"
		}
	} else {
		e.Reason = ReasonMaxDeliveries
		e.Error = fmt.Sprintf("delivered %d times without success; the handler recorded no error (its process may have stopped during the last delivery)", a.Deliveries)
	}
	switch a.Stream {
	case q.opts.Stream:
		// A replay ran out: the handler deletes a replay once it has
		// recorded its outcome, so a replay that is gone needs nothing.
		m, err := q.stream.GetMsg(ctx, a.StreamSeq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		r, err := entryOf(m)
		if err != nil {
			return err
		}
		e.ID.Position, e.Stream, e.Subject, e.Header, e.Data, e.EventTime = r.ID.Position, r.Stream, r.Subject, r.Header, r.Data, r.EventTime
		if err := q.write(ctx, e, true); err != nil {
			return err
		}
		return ignoreNotFound(q.stream.DeleteMsg(ctx, a.StreamSeq))
	default:
		e.ID.Position, e.Stream = a.StreamSeq, a.Stream
		m, err := q.events.GetMsg(ctx, a.StreamSeq)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			e.Error += " (the event was deleted from the stream before the entry was written)"
		case err != nil:
			return err
		default:
			e.Subject, e.Header, e.Data, e.EventTime = m.Subject, m.Header, m.Data, m.Time
		}
		return q.write(ctx, e, true)
	}
}

func ignoreNotFound(err error) error {
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	return err
}
