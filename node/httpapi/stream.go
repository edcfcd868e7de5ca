package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go/jetstream"

	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// closeGrace is how long a cut-off client's last write and close frame
// may take before the connection is dropped without them.
const closeGrace = 5 * time.Second

// streamFilter is what GET /api/stream asked for.
type streamFilter struct {
	subject    string   // the server-side filter
	eventTypes []string // filtered here; empty: all
	from       uint64
	hasFrom    bool
}

// parseStreamFilter reads aggregate_type, aggregate_id, event_type and
// from.
func (a *api) parseStreamFilter(r *http.Request, store *lxjs.EventStore) (streamFilter, *problem) {
	q := r.URL.Query()
	var f streamFilter
	typ, id := q.Get("aggregate_type"), q.Get("aggregate_id")
	switch {
	case typ == "" || typ == "*":
		typ = "*"
	default:
		if err := (platform.StreamID{Type: typ, ID: "x"}).Validate(); err != nil {
			return f, badRequest("aggregate_type", err.Error(), "give an aggregate type (letters, digits, '-', '_'), or * or nothing for any")
		}
	}
	token := "*"
	if id != "" && id != "*" {
		if err := (platform.StreamID{Type: "x", ID: id}).Validate(); err != nil {
			return f, badRequest("aggregate_id", err.Error(), "give an aggregate ID, or * or nothing for any")
		}
		token = lxjs.EncodeToken(id)
	}
	f.subject = store.SubjectPrefix() + "." + typ + "." + token
	for _, v := range q["event_type"] {
		for t := range strings.SplitSeq(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				f.eventTypes = append(f.eventTypes, t)
			}
		}
	}
	if raw := q.Get("from"); raw != "" {
		n, err := strconv.ParseUint(raw, 10, 64)
		if err != nil {
			return f, badRequest("from", fmt.Sprintf("from=%q is not a position", raw), "give the last position received (events after it are sent), 0 for everything, or nothing for new events only")
		}
		f.from, f.hasFrom = n, true
	}
	return f, nil
}

// outgoing is one message queued for a client.
type outgoing struct {
	position uint64
	data     []byte
}

// stream serves GET /api/stream (see the package documentation).
func (a *api) stream(w http.ResponseWriter, r *http.Request) {
	store, err := a.storeOf(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	f, p := a.parseStreamFilter(r, store)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	js, err := a.n.JetStream().Stream(r.Context(), store.StreamName())
	if err != nil {
		a.fail(w, r, platform.Errorf(platform.CodeStoreUnavailable, "look up the event stream %s: %w", store.StreamName(), err))
		return
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{f.subject}, DeliverPolicy: jetstream.DeliverNewPolicy}
	if f.hasFrom {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, f.from+1
	}
	cons, err := js.OrderedConsumer(r.Context(), cfg)
	if err != nil {
		a.fail(w, r, platform.Errorf(platform.CodeStoreUnavailable, "follow the event stream: %w", err))
		return
	}
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept has answered
	}
	defer conn.CloseNow()
	ctx := conn.CloseRead(r.Context()) // ends when the client goes
	wctx, drop := context.WithCancel(ctx)
	defer drop()
	s := &streamer{a: a, store: store, conn: conn, filter: f, queue: make(chan outgoing, a.opts.StreamBuffer), slow: make(chan struct{}),
		drop: drop, lastSent: f.from}
	readDone := make(chan error, 1)
	go func() { readDone <- s.read(wctx, cons) }()
	s.write(wctx, readDone)
}

// streamer moves one client's events from the consumer to the socket.
type streamer struct {
	a        *api
	store    *lxjs.EventStore // the request's: its tenant's, or the node's
	conn     *websocket.Conn
	filter   streamFilter
	queue    chan outgoing
	slow     chan struct{}      // closed when the client has not kept up
	drop     context.CancelFunc // ends the stream; a write under way drops the connection
	lastSent uint64             // the position last written to the socket; the writer's
}

// read queues the events for the writer; a queue full for longer than
// SlowClientTimeout marks the client slow and stops.
func (s *streamer) read(ctx context.Context, cons jetstream.Consumer) error {
	it, err := cons.Messages(jetstream.PullMaxMessages(min(cap(s.queue), 500) + 1))
	if err != nil {
		return err
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var buf []platform.Envelope
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		md, err := msg.Metadata()
		if err != nil {
			return err
		}
		buf, err = s.store.DecodeAll(msg.Subject(), md.Sequence.Stream, md.Timestamp, msg.Headers(), msg.Data(), buf[:0])
		var out []envelopeJSON
		if err != nil {
			if !s.wanted(msg.Headers().Get(lxjs.TypeHeader)) {
				continue
			}
			out = append(out, undecodable(err))
		}
		for _, e := range buf {
			if s.wanted(e.Type) {
				out = append(out, toJSON(e))
			}
		}
		for _, e := range out {
			data, err := json.Marshal(e)
			if err != nil {
				data, _ = json.Marshal(envelopeJSON{ID: e.ID, Type: e.Type, AggregateType: e.AggregateType, AggregateID: e.AggregateID,
					Version: e.Version, Position: e.Position, Error: "encode the event as JSON: " + err.Error()})
			}
			m := outgoing{position: md.Sequence.Stream, data: data}
			select {
			case s.queue <- m:
				continue
			default:
			}
			timer.Reset(s.a.opts.SlowClientTimeout)
			select {
			case s.queue <- m:
				timer.Stop()
			case <-timer.C:
				// The writer tells the client once its write under way
				// ends; a client that reads nothing more is dropped.
				close(s.slow)
				time.AfterFunc(closeGrace, s.drop)
				if s.a.opts.onSlow != nil {
					s.a.opts.onSlow()
				}
				return nil
			case <-ctx.Done():
				return nil
			}
		}
	}
}

func (s *streamer) wanted(typ string) bool {
	return len(s.filter.eventTypes) == 0 || slices.Contains(s.filter.eventTypes, typ)
}

// write sends what read queues until the client goes, the reading fails
// or the client is slow, which it is told with a close frame naming the
// position to resume from.
func (s *streamer) write(ctx context.Context, readDone <-chan error) {
	for {
		select {
		case <-s.slow:
			s.cutOff()
			return
		default:
		}
		select {
		case m := <-s.queue:
			if err := s.conn.Write(ctx, websocket.MessageText, m.data); err != nil {
				return
			}
			s.lastSent = m.position
		case <-s.slow:
			s.cutOff()
			return
		case err := <-readDone:
			if err != nil {
				s.a.opts.Logger.Warn("httpapi: event stream ended", "err", err)
				_ = s.conn.Close(websocket.StatusInternalError, "the event stream failed: reconnect with from="+strconv.FormatUint(s.lastSent, 10))
				return
			}
			readDone = nil // the reading stopped for the client's slowness or its going
		case <-ctx.Done():
			return
		}
	}
}

// cutOff closes a slow client's connection, naming the position to
// resume from. Close bounds its handshake (5s to write, 5s to hear back).
func (s *streamer) cutOff() {
	reason := "too slow: reconnect with from=" + strconv.FormatUint(s.lastSent, 10)
	if err := s.conn.Close(websocket.StatusPolicyViolation, reason); err != nil {
		s.a.opts.Logger.Debug("httpapi: close a slow client", "err", err)
	}
}
