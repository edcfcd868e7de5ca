package handlers

import (
	"context"
	"encoding/binary"
	"math/rand/v2"

	"github.com/oklog/ulid/v2"

	"github.com/lexigram/events/platform"
)

// newID returns a ULID, like platform.NewEventID, in one allocation: the
// 80 random bits come from math/rand/v2's per-thread ChaCha8 source
// instead of an entropy reader the ID escapes into. IDs are unique, and
// sortable by millisecond.
func newID() string {
	var id ulid.ULID
	_ = id.SetTime(ulid.Now()) // fails only after the year 10889
	binary.BigEndian.PutUint64(id[6:14], rand.Uint64())
	binary.BigEndian.PutUint16(id[14:16], uint16(rand.Uint32()))
	return id.String()
}

// The keys under which package platform keeps the correlation and causation
// IDs, learnt by asking its getters once. A dispatch context answers them
// itself, which saves four allocations per dispatch over
// platform.WithCorrelationID and platform.WithCausationID. If platform ever
// stops reading a single key, the keys are nil and the contexts fall back
// to those functions.
var correlationKey, causationKey = probeKey(platform.CorrelationID), probeKey(platform.CausationID)

type keyProbe struct {
	context.Context
	key  any
	hits int
}

func (p *keyProbe) Value(k any) any {
	p.key = k
	p.hits++
	return nil
}

func probeKey(get func(context.Context) string) any {
	p := &keyProbe{Context: context.Background()}
	get(p)
	if p.hits != 1 {
		return nil
	}
	return p.key
}

// dispatch is the context of one command or query dispatch in this
// process: it carries the message, the bus's options (the middleware's way
// to its registry and codec) and, for commands, the command's ID as
// causation and its correlation ID, in one allocation. It hides the
// idempotency key of WithIdempotencyKey, which names this dispatch's
// effect and not those of the commands its handler sends: they would wait
// for the very claim their sender holds.
type dispatch struct {
	context.Context
	msg     Message
	o       *Options
	command bool
}

func (d *dispatch) Value(k any) any {
	switch {
	case k == messageKey:
		return d
	case d.command && k == causationKey && causationKey != nil && d.msg.ID != "":
		return d.msg.ID
	case d.command && k == correlationKey && correlationKey != nil && d.msg.CorrelationID != "":
		return d.msg.CorrelationID
	case k == idempotencyCtxKey{}:
		return nil
	}
	return d.Context.Value(k)
}

// newDispatch returns the handler's context.
func newDispatch(ctx context.Context, m Message, o *Options, command bool) context.Context {
	d := &dispatch{Context: ctx, msg: m, o: o, command: command}
	if command && (causationKey == nil || correlationKey == nil) {
		return commandContext(d, m)
	}
	return d
}
