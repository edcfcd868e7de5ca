package bridges

import (
	"context"
	"errors"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/platform"
)

// Defaults of DeadLetterOptions.
const (
	DefaultDeadLetterStream = "LX_BRIDGES_DLQ"
	deadLetterPrefix        = "lxbridge.dlq"
)

// DeadLetterOptions say where a bridge puts the messages it cannot move.
// The zero value uses subject lxbridge.dlq.<bridge> in the stream
// LX_BRIDGES_DLQ, which the bridge creates (file storage, kept until
// deleted) when it does not exist.
type DeadLetterOptions struct {
	// Subject replaces lxbridge.dlq.<bridge>. A stream must capture it:
	// the bridge checks that when it starts.
	Subject string
}

// deadLetters writes dead-lettered messages.
type deadLetters struct {
	js        jetstream.JetStream
	subject   string
	bridge    string
	direction string
	maxBytes  int
}

func openDeadLetters(ctx context.Context, js jetstream.JetStream, nc *nats.Conn, bridge, direction string, o DeadLetterOptions) (*deadLetters, error) {
	d := &deadLetters{js: js, subject: o.Subject, bridge: bridge, direction: direction, maxBytes: int(nc.MaxPayload())}
	if d.subject != "" {
		if _, err := js.StreamNameBySubject(ctx, d.subject); err != nil {
			return nil, platform.Errorf(platform.CodeInvalidArgument, "bridge %s: dead-letter subject %q: no stream captures it (%w): create one, or leave the subject empty for %s", bridge, d.subject, err, DefaultDeadLetterStream)
		}
		return d, nil
	}
	d.subject = deadLetterPrefix + "." + bridge
	st, err := js.Stream(ctx, DefaultDeadLetterStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = js.CreateStream(ctx, jetstream.StreamConfig{
			Name:        DefaultDeadLetterStream,
			Description: "lexigram bridges: messages a bridge could not move, with the reason in " + HeaderReason,
			Subjects:    []string{deadLetterPrefix + ".>"},
			Storage:     jetstream.FileStorage,
			AllowDirect: true, // DeadLetterQueue lists with direct gets, creating no consumer
		})
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			err = nil // another bridge made it first
		}
	} else if err == nil {
		err = allowDirect(ctx, js, st)
	}
	if err != nil {
		return nil, platform.Errorf(platform.CodeStoreUnavailable, "bridge %s: dead-letter stream %s: %w", bridge, DefaultDeadLetterStream, err)
	}
	return d, nil
}

// allowDirect turns on direct gets on a dead-letter stream made before
// they were asked for.
func allowDirect(ctx context.Context, js jetstream.JetStream, st jetstream.Stream) error {
	cfg := st.CachedInfo().Config
	if cfg.AllowDirect {
		return nil
	}
	cfg.AllowDirect = true
	_, err := js.UpdateStream(ctx, cfg)
	return err
}

// put stores one message with the reason. Headers that JetStream would act
// on have already been dropped by the caller's mapping; put drops them
// again so a dead letter can never carry one.
func (d *deadLetters) put(ctx context.Context, id, subject string, seq uint64, h nats.Header, data []byte, reason error) error {
	out := nats.Header{}
	for k, v := range h {
		if !natsReserved(k) && validHeaderName(k) {
			out[k] = v
		}
	}
	out[HeaderBridge] = []string{d.bridge}
	out[HeaderDirection] = []string{d.direction}
	out[HeaderReason] = []string{oneLine(reason.Error())}
	out[HeaderMessageID] = []string{oneLine(id)}
	out[HeaderSubject] = []string{oneLine(subject)}
	if seq > 0 {
		out[HeaderSequence] = []string{strconv.FormatUint(seq, 10)}
	}
	// Once per message: the same failure seen again after a crash is not
	// a second dead letter.
	out[nats.MsgIdHdr] = []string{"dlq:" + d.bridge + ":" + id}
	msg := &nats.Msg{Subject: d.subject, Header: out, Data: data}
	if size(msg) > d.maxBytes {
		msg.Data = nil
		out[HeaderTruncated] = []string{"true"}
	}
	if _, err := d.js.PublishMsg(ctx, msg); err != nil {
		return platform.Errorf(platform.CodeStoreUnavailable, "bridge %s: dead-letter message %s on %s: %w", d.bridge, id, d.subject, err)
	}
	return nil
}

// size estimates what a message counts against max_payload.
func size(m *nats.Msg) int {
	n := len(m.Data) + 16
	for k, vs := range m.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}
