package bridges

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/platform"
)

// Replay moves one of this bridge's dead letters (from
// DeadLetterQueue.List or Get) again, once: the event as it is in the
// bridge's stream while it is still there (a truncated dead letter needs
// that), else the dead letter's copy, encoded as the bridge encodes and
// sent to the broker. Once the broker confirmed, the dead letter is
// removed; if it refuses again, or the event still cannot be encoded, the
// dead letter stays as it was and the error says why. The replayed event
// reaches the broker after the aggregate's later events, which the bridge
// moved meanwhile.
func (o *Outbound) Replay(ctx context.Context, dl DeadLetter) error {
	if dl.Bridge != o.opts.Name || dl.Direction != "outbound" {
		return platform.Errorf(platform.CodeInvalidArgument, "bridge dead letter %d is of %s bridge %q, not of outbound bridge %q: replay it with that bridge", dl.Seq, dl.Direction, dl.Bridge, o.opts.Name)
	}
	s := stored{Stream: o.opts.Stream, Subject: dl.Subject, Seq: dl.Sequence, Time: dl.Time, Header: dl.Header, Data: dl.Data}
	if m, err := o.source(ctx, dl); err == nil {
		s.Time, s.Header, s.Data = m.Time, m.Header, m.Data
	} else if dl.Truncated {
		return platform.Errorf(platform.CodeBridgeDelivery, "replay bridge dead letter %d: its body did not fit in the dead letter and event %d of %s cannot be read again (%w): discard it", dl.Seq, dl.Sequence, o.opts.Stream, err)
	}
	msg, err := o.enc.encode(s)
	if err != nil {
		return platform.Errorf(platform.CodeBridgeDelivery, "replay bridge dead letter %d: %w: the bridge still cannot encode it; the dead letter stays", dl.Seq, err)
	}
	pubCtx, cancel := context.WithTimeout(ctx, o.opts.PublishTimeout)
	err = o.pub.Publish(pubCtx, msg)
	cancel()
	if err != nil {
		if IsRefused(err) {
			return platform.Errorf(platform.CodeBridgeDelivery, "replay bridge dead letter %d: the broker refused it again: %w; the dead letter stays", dl.Seq, err)
		}
		return platform.Errorf(platform.CodeBridgeDelivery, "replay bridge dead letter %d: %w; the dead letter stays: try again once the broker is reachable", dl.Seq, err)
	}
	o.m.movedN(1, len(msg.Data))
	return NewDeadLetterQueue(o.dl.js).remove(ctx, dl.Seq)
}

// source reads a dead letter's event from the bridge's stream.
func (o *Outbound) source(ctx context.Context, dl DeadLetter) (*jetstream.RawStreamMsg, error) {
	if dl.Sequence == 0 {
		return nil, errors.New("the dead letter gives no sequence")
	}
	st, err := o.dl.js.Stream(ctx, o.opts.Stream)
	if err != nil {
		return nil, err
	}
	m, err := st.GetMsg(ctx, dl.Sequence)
	if err != nil {
		return nil, err
	}
	if m.Subject != dl.Subject {
		return nil, errors.New("the stream holds another message at that sequence now")
	}
	return m, nil
}

// Replay stores one of this bridge's dead letters (from
// DeadLetterQueue.List or Get) again, once, as the broker gave it: it is
// decoded and published to JetStream (or appended to the event store) as
// a new delivery would be, with the same Nats-Msg-Id, so that a copy that
// did land is not stored twice. Once stored, the dead letter is removed;
// if it still cannot be decoded or stored, the dead letter stays as it
// was and the error says why.
func (in *Inbound) Replay(ctx context.Context, dl DeadLetter) error {
	if dl.Bridge != in.opts.Name || dl.Direction != "inbound" {
		return platform.Errorf(platform.CodeInvalidArgument, "bridge dead letter %d is of %s bridge %q, not of inbound bridge %q: replay it with that bridge", dl.Seq, dl.Direction, dl.Bridge, in.opts.Name)
	}
	m := Message{ID: dl.MessageID, Subject: dl.Subject, Header: Header{}, Data: dl.Data}
	for k := range dl.Header {
		m.Header[k] = dl.Header.Get(k)
	}
	fail := func(err error) error {
		return platform.Errorf(platform.CodeBridgeDelivery, "replay bridge dead letter %d: %w; the dead letter stays", dl.Seq, err)
	}
	pubCtx, cancel := context.WithTimeout(ctx, in.opts.PublishTimeout)
	defer cancel()
	if in.opts.Events != nil {
		d := &Delivery{Message: m}
		decoded, err := in.dec.decode(&d.Message, "")
		if err != nil {
			return fail(err)
		}
		stream, env, err := in.eventOf(d, decoded)
		if err != nil {
			return fail(err)
		}
		if _, err := in.opts.Events.Store.Append(pubCtx, stream, platform.Any(), []platform.Envelope{env}); err != nil {
			return fail(err)
		}
		in.m.movedN(1, len(decoded.Data))
	} else {
		msg, err := in.prepare(&Delivery{Message: m})
		if err != nil {
			return fail(err)
		}
		if _, err := in.js.PublishMsg(pubCtx, msg); err != nil {
			return fail(err)
		}
		in.m.movedN(1, len(msg.Data))
	}
	return NewDeadLetterQueue(in.js).remove(ctx, dl.Seq)
}
