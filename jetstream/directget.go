package jetstream

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// batchGetter sends batched direct gets (ADR-31) and routes their replies
// over one long-lived subscription. orbit's jetstreamext.GetBatch makes a
// new inbox subscription for every call, which costs about a millisecond
// per read here, more than reading ten events; an aggregate load after a
// snapshot is mostly that.
type batchGetter struct {
	nc      *nats.Conn
	subject string // $JS.API.DIRECT.GET.<stream>
	inbox   string // <inbox prefix>.<request number>

	mu      sync.Mutex
	sub     *nats.Subscription // started on first use
	next    uint64
	waiting map[string]chan *nats.Msg
}

// pageBytes bounds one page, so that a page of large events cannot swamp
// the client; the server stops a page at whichever limit comes first.
const pageBytes = 8 << 20

func newBatchGetter(js jetstream.JetStream, stream string) *batchGetter {
	return &batchGetter{
		nc:      js.Conn(),
		subject: apiPrefix(js) + "DIRECT.GET." + stream,
		inbox:   js.Conn().NewInbox() + ".",
		waiting: map[string]chan *nats.Msg{},
	}
}

// route hands a reply to the read waiting for it. A read that gave up
// leaves no channel, and its late replies are dropped.
func (g *batchGetter) route(m *nats.Msg) {
	g.mu.Lock()
	ch := g.waiting[m.Subject]
	g.mu.Unlock()
	if ch != nil {
		ch <- m // never blocks: the channel holds a whole page
	}
}

// page yields the messages on subject from seq on, at most batch of them,
// and whether the server has more after them.
func (g *batchGetter) page(ctx context.Context, subject string, seq uint64, batch int, more *bool) iter.Seq2[*jetstream.RawStreamMsg, error] {
	req := directRequest{Seq: seq, NextFor: subject, Batch: batch, MaxBytes: pageBytes}
	what := fmt.Sprintf("direct get on %s from %d", subject, seq)
	return func(yield func(*jetstream.RawStreamMsg, error) bool) {
		*more = false
		for m, err := range g.get(ctx, req, what) {
			if err == nil {
				// Nats-Num-Pending counts the matching messages after this one.
				*more = m.Header.Get("Nats-Num-Pending") != "0"
			}
			if !yield(m, err) || err != nil {
				return
			}
		}
	}
}

// lasts yields the last message of each subject that has one, in one
// request. The group committer asks it which aggregates moved under a
// batch that failed.
func (g *batchGetter) lasts(ctx context.Context, subjects []string) iter.Seq2[*jetstream.RawStreamMsg, error] {
	req := directRequest{MultiLast: subjects, Batch: len(subjects), MaxBytes: pageBytes}
	return g.get(ctx, req, fmt.Sprintf("direct get of the last messages of %d subjects", len(subjects)))
}

// directRequest is the body of a batched direct get (ADR-31).
type directRequest struct {
	Seq       uint64   `json:"seq,omitempty"`
	NextFor   string   `json:"next_by_subj,omitempty"`
	MultiLast []string `json:"multi_last,omitempty"`
	Batch     int      `json:"batch"`
	MaxBytes  int      `json:"max_bytes"`
}

// get sends one batched direct get and yields its replies until the
// server's end of batch.
func (g *batchGetter) get(ctx context.Context, req directRequest, what string) iter.Seq2[*jetstream.RawStreamMsg, error] {
	return func(yield func(*jetstream.RawStreamMsg, error) bool) {
		body, _ := json.Marshal(req)
		ch := make(chan *nats.Msg, req.Batch+1)
		reply, err := g.register(ch)
		if err != nil {
			yield(nil, err)
			return
		}
		defer g.unregister(reply)
		if err := g.nc.PublishRequest(g.subject, reply, body); err != nil {
			yield(nil, err)
			return
		}
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
		}
		for {
			var m *nats.Msg
			select {
			case m = <-ch:
			case <-ctx.Done():
				yield(nil, fmt.Errorf("%s: %w", what, ctx.Err()))
				return
			}
			if len(m.Data) == 0 && m.Header.Get("Status") != "" {
				switch status := m.Header.Get("Status"); status {
				case "204": // end of batch
					return
				case "404": // nothing (more) on the subject
					return
				default:
					yield(nil, fmt.Errorf("%s: status %s %s", what, status, m.Header.Get("Description")))
					return
				}
			}
			raw, err := rawStreamMsg(m)
			if !yield(raw, err) || err != nil {
				return
			}
		}
	}
}

func (g *batchGetter) register(ch chan *nats.Msg) (string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.sub == nil {
		sub, err := g.nc.Subscribe(g.inbox+"*", g.route)
		if err != nil {
			return "", fmt.Errorf("subscribe for direct get replies: %w", err)
		}
		// route never blocks, so the subscription's own buffer is not the
		// place to bound memory; pageBytes is.
		if err := sub.SetPendingLimits(-1, -1); err != nil {
			return "", err
		}
		g.sub = sub
	}
	g.next++
	reply := g.inbox + strconv.FormatUint(g.next, 10)
	g.waiting[reply] = ch
	return reply, nil
}

func (g *batchGetter) unregister(reply string) {
	g.mu.Lock()
	delete(g.waiting, reply)
	g.mu.Unlock()
}

// rawStreamMsg reads a direct get reply: the stored message's headers plus
// the server's Nats-Subject, Nats-Sequence and Nats-Time-Stamp.
func rawStreamMsg(m *nats.Msg) (*jetstream.RawStreamMsg, error) {
	seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("direct get reply without a valid %s header: %w", jetstream.SequenceHeader, err)
	}
	tm, err := time.Parse(time.RFC3339Nano, m.Header.Get(jetstream.TimeStampHeaer))
	if err != nil {
		return nil, fmt.Errorf("direct get reply at %d without a valid time stamp: %w", seq, err)
	}
	subject := m.Header.Get(jetstream.SubjectHeader)
	if subject == "" || strings.ContainsAny(subject, " \t") {
		return nil, fmt.Errorf("direct get reply at %d without a subject", seq)
	}
	return &jetstream.RawStreamMsg{Subject: subject, Sequence: seq, Header: m.Header, Data: m.Data, Time: tm}, nil
}
