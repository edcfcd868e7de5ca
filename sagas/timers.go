package sagas

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// Durable timers are JetStream message schedules (nats-server 2.12 or
// newer) in a stream of their own, LEXIGRAM_SAGA_TIMERS: enabling
// schedules on a stream turns on rollup and purge for good, which the
// event store's stream must never have, and a work queue would delete a
// schedule when it is acknowledged. An instance resting at a wait with a
// deadline has one schedule, on <prefix>.at.<type>.<id>, that fires once
// onto <prefix>.fire.<type>.<id>; publishing again on the subject
// replaces it (the server rolls the subject up), and leaving the wait
// purges it.
//
// A cancel can lose the race with the fire, and a fire can come twice
// (after a replace), so a fire only wakes the instance: it carries the
// generation the instance had when it was scheduled, and a fire whose
// generation has moved on is ignored and counted. The instance itself
// decides, by its stored Due, whether it has timed out. A timer that falls
// due while no manager runs fires into the stream and waits there; the
// managers also look at every unfinished instance when they start.
type timers struct {
	js     jetstream.JetStream
	stream jetstream.Stream
	prefix string
}

// timerGenerationHeader carries the instance's generation on a schedule
// and so on its fire; the fire loses every Nats- header but this.
const timerGenerationHeader = "Lexigram-Saga-Generation"

// fireTTL is how long a fire waits in the stream for a manager. Managers
// starting later also find overdue instances by themselves.
const fireTTL = 7 * 24 * time.Hour

// schedulesSupported reports whether the server has message schedules.
func schedulesSupported(js jetstream.JetStream) bool {
	return lxjs.ServerAtLeast(js.Conn().ConnectedServerVersion(), 2, 12)
}

func openTimers(ctx context.Context, js jetstream.JetStream, o Options) (*timers, error) {
	subjects := o.TimerSubjectPrefix + ".>"
	want := jetstream.StreamConfig{
		Name:              o.TimerStream,
		Description:       "lexigram saga timers: one message schedule per instance waiting with a deadline, and its fires",
		Subjects:          []string{subjects},
		Retention:         jetstream.LimitsPolicy,
		Replicas:          o.Replicas,
		Storage:           o.Storage,
		AllowMsgSchedules: true,
		AllowMsgTTL:       true,
		AllowRollup:       true,
	}
	s, err := js.Stream(ctx, o.TimerStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = js.CreateStream(ctx, want)
	}
	if err != nil {
		return nil, platform.Errorf(platform.CodeStoreUnavailable, "sagas: open the timer stream %s: %w", o.TimerStream, err)
	}
	got := s.CachedInfo().Config
	if !got.AllowMsgSchedules || len(got.Subjects) != 1 || got.Subjects[0] != subjects {
		return nil, platform.Errorf(platform.CodeConfigConflict,
			"sagas: stream %s exists with subjects %q and message schedules %v, not schedules on %q: delete it, or set sagas.Options.TimerStream and TimerSubjectPrefix to another",
			o.TimerStream, got.Subjects, got.AllowMsgSchedules, subjects)
	}
	return &timers{js: js, stream: s, prefix: o.TimerSubjectPrefix}, nil
}

func (t *timers) scheduleSubject(in *Instance) string {
	return t.prefix + ".at." + in.Type + "." + in.ID
}

func (t *timers) fireSubject(in *Instance) string {
	return t.prefix + ".fire." + in.Type + "." + in.ID
}

// schedule sets the instance's timer to fire at due, replacing the one it
// had. The time goes in with milliseconds, rounded up: the server parses
// @at as RFC 3339, fractions included, while nats.go's WithScheduleAt
// writes whole seconds, which would make a timeout up to a second late.
func (t *timers) schedule(ctx context.Context, in *Instance, due time.Time) error {
	at := due.Truncate(time.Millisecond)
	if at.Before(due) {
		at = at.Add(time.Millisecond)
	}
	msg := nats.NewMsg(t.scheduleSubject(in))
	msg.Header.Set(timerGenerationHeader, strconv.FormatUint(in.Generation, 10))
	msg.Header.Set(jetstream.ScheduleHeader, "@at "+at.UTC().Format(scheduleTimeLayout))
	_, err := t.js.PublishMsg(ctx, msg, jetstream.WithScheduleTarget(t.fireSubject(in)), jetstream.WithScheduleTTL(fireTTL))
	if err != nil {
		return platform.Errorf(platform.CodeStoreUnavailable, "saga %s (%s): set its timer for %s: %w", in.ID, in.Type, at.Format(time.RFC3339Nano), err)
	}
	return nil
}

// scheduleTimeLayout is RFC 3339 with milliseconds.
const scheduleTimeLayout = "2006-01-02T15:04:05.000Z07:00"

// cancel removes the instance's schedule. A fire already on its way still
// comes, and is found stale.
func (t *timers) cancel(ctx context.Context, in *Instance) error {
	return t.stream.Purge(ctx, jetstream.WithPurgeSubject(t.scheduleSubject(in)))
}

// pending reports the instance's schedule: when it fires and with which
// generation, ok false when it has none.
func (t *timers) pending(ctx context.Context, in *Instance) (at time.Time, generation uint64, ok bool, err error) {
	msg, err := t.stream.GetLastMsgForSubject(ctx, t.scheduleSubject(in))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return time.Time{}, 0, false, nil
	}
	if err != nil {
		return time.Time{}, 0, false, err
	}
	spec := strings.TrimPrefix(msg.Header.Get(jetstream.ScheduleHeader), "@at ")
	at, err = time.Parse(time.RFC3339, spec)
	if err != nil {
		return time.Time{}, 0, false, err
	}
	generation, _ = strconv.ParseUint(msg.Header.Get(timerGenerationHeader), 10, 64)
	return at, generation, true, nil
}

// consumeFires wakes the instances whose timers fire, for one saga type.
func (m *Manager) consumeFires(ctx context.Context, k *kind) (jetstream.ConsumeContext, error) {
	cons, err := m.timers.stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       "saga-timers-" + k.name,
		FilterSubject: m.opts.TimerSubjectPrefix + ".fire." + k.name + ".>",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       m.opts.AckWait,
		MaxDeliver:    -1,
	})
	if err != nil {
		return nil, platform.Errorf(platform.CodeStoreUnavailable, "sagas: the timer consumer of saga type %q: %w", k.name, err)
	}
	return cons.Consume(func(msg jetstream.Msg) {
		if err := m.onFire(ctx, k, msg); err != nil {
			m.log.WarnContext(ctx, "sagas: a timer fired and the instance could not be woken; retrying", "subject", msg.Subject(), "error", err)
			_ = msg.NakWithDelay(time.Second)
			return
		}
		_ = msg.Ack()
		// The fire has done its work; a Limits stream would keep it.
		if meta, err := msg.Metadata(); err == nil {
			_ = m.timers.stream.DeleteMsg(context.WithoutCancel(ctx), meta.Sequence.Stream)
		}
	})
}

// onFire wakes the instance a fire names, unless the fire is stale.
func (m *Manager) onFire(ctx context.Context, k *kind, msg jetstream.Msg) error {
	id := msg.Subject()[strings.LastIndexByte(msg.Subject(), '.')+1:]
	generation, _ := strconv.ParseUint(msg.Headers().Get(timerGenerationHeader), 10, 64)
	return m.fire(ctx, k, id, generation)
}

// fire wakes the instance with the ID, whose timer set at generation
// fired, unless the wait it was set for has ended. A Stub's fake clock
// fires its timers here too.
func (m *Manager) fire(ctx context.Context, k *kind, id string, generation uint64) error {
	in, err := m.store.Load(ctx, id)
	switch {
	case errors.Is(err, platform.ErrSagaNotFound), errors.Is(err, platform.ErrCorruptSaga):
		m.opts.Metrics.staleFire(k.name)
		return nil
	case err != nil:
		return err
	}
	atWait := in.State == Running && in.Step < len(k.steps) && k.steps[in.Step].wait != nil
	if !atWait || in.Generation != generation {
		m.opts.Metrics.staleFire(k.name)
		m.log.DebugContext(ctx, "sagas: a timer fired for a wait that has ended; ignored", "id", id, "generation", generation, "now", in.Generation)
		return nil
	}
	return m.kick(ctx, in, "timer")
}
