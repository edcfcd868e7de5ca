package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// msgRequest is the body of a JetStream message-get request.
type msgRequest struct {
	Seq     uint64 `json:"seq,omitempty"`
	LastFor string `json:"last_by_subj,omitempty"`
	NextFor string `json:"next_by_subj,omitempty"`
}

// getAttempts bounds how often getMsg asks again after an answer that
// did not come within Options.AttemptTimeout.
const getAttempts = 3

// getMsg reads one message, asking again when an answer does not come
// within Options.AttemptTimeout (lost with a cut connection) while ctx
// allows.
func (s *EventStore) getMsg(ctx context.Context, req msgRequest) (*jetstream.RawStreamMsg, error) {
	for try := 1; ; try++ {
		attemptCtx, cancel := s.attempt(ctx)
		m, err := s.getMsgOnce(attemptCtx, req)
		cancel()
		if err == nil || try == getAttempts || ctx.Err() != nil || !(errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)) {
			return m, err
		}
	}
}

// getMsgOnce reads one message. On a replicated stream it asks the
// stream leader: a direct get may be answered by a follower that is
// behind, and the append path must not mistake an old view for a
// conflict. On R1 the direct get is the same answer, cheaper.
func (s *EventStore) getMsgOnce(ctx context.Context, req msgRequest) (*jetstream.RawStreamMsg, error) {
	if s.opts.Replicas == 1 {
		if req.LastFor != "" {
			return s.stream.GetLastMsgForSubject(ctx, req.LastFor)
		}
		return s.stream.GetMsg(ctx, req.Seq, jetstream.WithGetMsgSubject(req.NextFor))
	}
	return leaderGetMsg(ctx, s.js, s.opts.Stream, req)
}

// MoreAfter reports whether stream holds a message on subject (a filter,
// wildcards allowed) after position seq and at most at last, asking the
// stream's leader. A reader whose ordered consumer reports nothing pending
// asks this before it stops: in a cluster the consumer may sit on a
// replica that has not applied the newest writes, and a direct get may be
// answered by such a replica too.
func MoreAfter(ctx context.Context, js jetstream.JetStream, stream, subject string, seq, last uint64) (bool, error) {
	if seq >= last {
		return false, nil
	}
	m, err := leaderGetMsg(ctx, js, stream, msgRequest{Seq: seq + 1, NextFor: subject})
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return m.Sequence <= last, nil
}

// leaderGetMsg reads one message through the JetStream API, which the
// stream leader answers.
func leaderGetMsg(ctx context.Context, js jetstream.JetStream, stream string, req msgRequest) (*jetstream.RawStreamMsg, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, js.Options().DefaultTimeout)
		defer cancel()
	}
	var resp *nats.Msg
	subject := apiPrefix(js) + "STREAM.MSG.GET." + stream
	for attempt := 0; ; attempt++ {
		resp, err = js.Conn().RequestWithContext(ctx, subject, body)
		// No responders while the stream elects a leader.
		if !errors.Is(err, nats.ErrNoResponders) || attempt == 10 {
			break
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err != nil {
		return nil, err
	}
	var r struct {
		Error   *jetstream.APIError `json:"error"`
		Message *struct {
			Subject  string    `json:"subject"`
			Sequence uint64    `json:"seq"`
			Header   []byte    `json:"hdrs"`
			Data     []byte    `json:"data"`
			Time     time.Time `json:"time"`
		} `json:"message"`
	}
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		return nil, err
	}
	if r.Error != nil {
		if r.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound {
			return nil, jetstream.ErrMsgNotFound
		}
		return nil, r.Error
	}
	if r.Message == nil {
		return nil, jetstream.ErrInvalidJetStreamResponse
	}
	m := &jetstream.RawStreamMsg{Subject: r.Message.Subject, Sequence: r.Message.Sequence, Data: r.Message.Data, Time: r.Message.Time}
	if len(r.Message.Header) > 0 {
		if m.Header, err = nats.DecodeHeadersMsg(r.Message.Header); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// apiPrefix is the JetStream API prefix the connection uses, with a
// domain or an explicit prefix taken into account.
func apiPrefix(js jetstream.JetStream) string {
	o := js.Options()
	switch {
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	case o.APIPrefix != "":
		return strings.TrimSuffix(o.APIPrefix, ".") + "."
	}
	return jetstream.DefaultAPIPrefix
}
