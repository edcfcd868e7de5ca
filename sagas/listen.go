package sagas

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/lexigram/events/handlers/durable"
	"github.com/lexigram/events/platform"
)

// maxInbox bounds the events an instance keeps for waits it has not
// reached: past it, an event is counted unhandled rather than letting one
// instance's record grow without end.
const maxInbox = 64

// listen starts the durable handler that reads the event store for a saga
// type that starts or waits on events: one consumer, "saga-<type>",
// shared by every manager that registers the type and filtered on the
// aggregate types its triggers and waits name.
func (m *Manager) listen(ctx context.Context, k *kind) (*durable.Handler, error) {
	if m.opts.Events == nil {
		return nil, platform.Errorf(platform.CodeInvalidArgument,
			"saga type %q starts or waits on events, and sagas.Options.Events is nil: pass the event store (*jetstream.EventStore)", k.name)
	}
	opts := durable.Options{
		AggregateTypes: k.aggregateTypes(),
		Start:          *m.opts.ListenFrom,
		AckWait:        m.opts.AckWait,
		Logger:         m.log,
		// One process at a time reads the type's events, one by one in
		// the store's order, so an instance's start is handled before an
		// event that continues it.
		// Priority groups need nats-server 2.11.
		Exclusive: m.priorityGroups,
		DLQ:       m.opts.DLQ,
	}
	return durable.New(ctx, m.js, m.opts.Events, "saga-"+k.name, func(ctx context.Context, env platform.Envelope) error {
		return m.onEvent(ctx, k, env)
	}, opts)
}

// onEvent starts the instances an event starts and hands it to those
// waiting for it.
func (m *Manager) onEvent(ctx context.Context, k *kind, env platform.Envelope) error {
	for _, st := range k.starts {
		key, data, ok := st.match(env)
		if !ok || key == "" {
			continue
		}
		correlation := env.CorrelationID
		if correlation == "" {
			correlation = env.ID
		}
		sctx := platform.WithCausationID(platform.WithCorrelationID(ctx, correlation), env.ID)
		if _, err := m.Start(sctx, k.name, key, data); err != nil {
			if errors.Is(err, platform.ErrInvalidArgument) {
				return durable.Permanent(err)
			}
			return err
		}
	}
	var kinds []string
	for _, s := range k.steps {
		if s.wait == nil || slices.Contains(kinds, s.wait.kind) {
			continue
		}
		kinds = append(kinds, s.wait.kind)
		key, ok := s.wait.key(env)
		if !ok || key == "" {
			continue
		}
		if err := m.deliver(ctx, k, s.wait.kind, key, env); err != nil {
			return err
		}
	}
	return nil
}

// deliver puts the event in the inbox of the instance with the key, where
// the wait for it takes it, and wakes the instance.
func (m *Manager) deliver(ctx context.Context, k *kind, kind, key string, env platform.Envelope) error {
	body, err := json.Marshal(env.Event)
	if err != nil {
		return durable.Permanent(platform.Errorf(platform.CodeInvalidArgument, "saga type %q: event %s (%s) does not encode as JSON for the instance's inbox: %w", k.name, env.ID, env.Type, err))
	}
	for {
		in, err := m.store.FindByKey(ctx, k.name, key)
		var corrupt *CorruptError
		switch {
		case errors.Is(err, platform.ErrSagaNotFound):
			return m.notFound(ctx, k, key, env, "no instance has the key")
		case errors.As(err, &corrupt):
			m.opts.Metrics.event(k.name, "unhandled")
			m.log.WarnContext(ctx, "sagas: an event for an instance that cannot be read; it is parked, the event is not kept", "type", k.name, "key", key, "event", env.ID, "error", err)
			return nil
		case err != nil:
			return err
		}
		if in.State.Finished() {
			return m.notFound(ctx, k, key, env, "its instance "+in.ID+" has finished ("+string(in.State)+")")
		}
		if seen(&in, env.Position) {
			m.opts.Metrics.event(k.name, "duplicate")
			return nil
		}
		switch {
		case in.State != Started && in.State != Running && !in.State.Stuck(), !k.waitsFor(in.Step, kind):
			m.opts.Metrics.event(k.name, "unhandled")
			m.log.InfoContext(ctx, "sagas: an event the instance does not wait for in its state; not kept",
				"id", in.ID, "type", k.name, "state", in.State, "step", in.Step, "event", env.ID, "event_type", env.Type)
			return nil
		case len(in.Inbox) >= maxInbox:
			m.opts.Metrics.event(k.name, "unhandled")
			m.log.WarnContext(ctx, "sagas: an instance has as many events waiting as it keeps; this one is not kept",
				"id", in.ID, "type", k.name, "kept", maxInbox, "event", env.ID, "event_type", env.Type)
			return nil
		}
		in.Inbox = append(in.Inbox, Received{Kind: kind, Type: env.Type, ID: env.ID, Position: env.Position, Event: body, At: m.now().UTC()})
		// Updated is left as it was: a manager advancing the instance
		// recognises a save that only added to the inbox by it, and
		// merges instead of starting its step over.
		rev, err := m.store.Save(ctx, in)
		if errors.Is(err, platform.ErrSagaConflict) {
			continue
		}
		if err != nil {
			return err
		}
		in.Revision = rev
		m.opts.Metrics.event(k.name, "delivered")
		return m.kick(ctx, in, "event."+uitoa(env.Position))
	}
}

// seen reports whether the instance has had the event at position.
func seen(in *Instance, position uint64) bool {
	for _, r := range in.Inbox {
		if r.Position == position {
			return true
		}
	}
	for _, h := range in.History {
		if h.Event == position {
			return true
		}
	}
	return false
}

// notFound applies the type's policy to an event whose instance is gone.
func (m *Manager) notFound(ctx context.Context, k *kind, key string, env platform.Envelope, why string) error {
	m.opts.Metrics.event(k.name, "not_found")
	err := platform.Errorf(platform.CodeSagaNotFound, "saga type %q, key %q: event %s (%s at position %d) continues no instance: %s", k.name, key, env.ID, env.Type, env.Position, why)
	if k.notFound == DeadLetterNotFound {
		return durable.Permanent(err)
	}
	m.log.InfoContext(ctx, "sagas: an event for no instance; ignored (IfNotFound(DeadLetterNotFound) keeps such events)", "error", err)
	return nil
}

// mergeInbox takes into the instance a stepper holds the events that were
// delivered to it since the stepper's last read (stored): only when
// stored differs from what the stepper last saved by its inbox alone.
func mergeInbox(held *Instance, stored Instance, heldUpdated time.Time) bool {
	if !stored.Updated.Equal(heldUpdated) {
		return false
	}
	for _, r := range stored.Inbox {
		if !seen(held, r.Position) {
			held.Inbox = append(held.Inbox, r)
		}
	}
	held.Revision = stored.Revision
	return true
}
