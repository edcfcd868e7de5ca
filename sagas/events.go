package sagas

import (
	"context"
	"encoding/json"
	"reflect"
	"time"

	"github.com/lexigram/events/platform"
)

// Event is what a Wait step waits for: an event of one Go type from the
// event store, correlated with an instance by its association key. Build
// it with On.
type Event[D any] struct{ spec *waitSpec }

// On is an event a Wait step waits for: events of type E raised by
// aggregates of aggregateType. key names the instance an event belongs to
// (its association key, the key the instance was started with; "" for an
// event that belongs to none), and apply takes the event into the saga's
// data when the instance reaches the wait. apply may be nil.
//
// An event that comes before its instance reaches the wait is kept in the
// instance (Instance.Inbox) and taken when it gets there, so a reply that
// overtakes the step that asked for it is not lost.
func On[D, E any](aggregateType string, key func(e E, env platform.Envelope) string, apply func(ctx context.Context, sc *Context[D], e E) error) Event[D] {
	spec := &waitSpec{
		kind:          reflect.TypeFor[E]().String(),
		aggregateType: aggregateType,
		key: func(env platform.Envelope) (string, bool) {
			e, ok := env.Event.(E)
			if !ok {
				return "", false
			}
			return key(e, env), true
		},
	}
	spec.apply = func(ctx context.Context, env stepEnv, data json.RawMessage) (json.RawMessage, error) {
		var v D
		if err := json.Unmarshal(data, &v); err != nil {
			return nil, &corruptData{err}
		}
		var e E
		if err := json.Unmarshal(env.event, &e); err != nil {
			return nil, &corruptData{err}
		}
		if apply != nil {
			sc := &Context[D]{Data: &v, stepEnv: env}
			if err := apply(ctx, sc, e); err != nil {
				return nil, err
			}
		}
		return json.Marshal(v)
	}
	return Event[D]{spec}
}

// waitSpec is an On with its types erased.
type waitSpec struct {
	kind          string // the event's Go type, as Inbox entries name it
	aggregateType string
	key           func(env platform.Envelope) (key string, ok bool) // ok false: not this event's type
	apply         stepRun
}

// Trigger is what starts instances of a saga type from the event store.
// Build it with When.
type Trigger[D any] struct{ start *starter }

// When starts an instance for events of type E raised by aggregates of
// aggregateType: start returns the instance's association key and its
// data, or ok false for an event that starts nothing. The instance is
// correlated with the event (its correlation ID, or its ID when it has
// none) and caused by it.
func When[D, E any](aggregateType string, start func(e E, env platform.Envelope) (key string, data D, ok bool)) Trigger[D] {
	return Trigger[D]{&starter{
		aggregateType: aggregateType,
		match: func(env platform.Envelope) (string, any, bool) {
			e, isE := env.Event.(E)
			if !isE {
				return "", nil, false
			}
			return start(e, env)
		},
	}}
}

type starter struct {
	aggregateType string
	match         func(env platform.Envelope) (key string, data any, ok bool)
}

// NotFoundPolicy is what happens to an event that should continue an
// instance that does not exist or has finished.
type NotFoundPolicy int

const (
	// IgnoreNotFound acknowledges the event, logs it and counts it
	// (lexigram_saga_events_total{outcome="not_found"}).
	IgnoreNotFound NotFoundPolicy = iota
	// DeadLetterNotFound puts the event in the saga type's dead-letter
	// queue (the DLQ of handlers/durable, handler "saga-<type>"), where
	// an operator can replay it once the instance exists.
	DeadLetterNotFound
)

// Received is an event an instance has been sent and not yet taken: it
// came before the instance reached the wait for it.
type Received struct {
	Kind     string          `json:"kind"` // the event's Go type
	Type     string          `json:"type"` // its registered name
	ID       string          `json:"id"`
	Position uint64          `json:"position"`
	Event    json.RawMessage `json:"event"`
	// At is when it was delivered to the instance, by the manager's
	// clock: a wait takes it only if it came before the wait's deadline,
	// so that whether a saga times out does not depend on how late its
	// timer fires. Zero in records kept before it was: taken as in time.
	At time.Time `json:"at,omitzero"`
}

// waitsFor reports whether a wait at or after step from takes events of
// kind.
func (k *kind) waitsFor(from int, kind string) bool {
	for i := max(from, 0); i < len(k.steps); i++ {
		if w := k.steps[i].wait; w != nil && w.kind == kind {
			return true
		}
	}
	return false
}

// needsTimers reports whether the type's instances can rest at a wait
// with a deadline, which needs durable timers. (An action's deadline
// rides on its retries' redelivery.)
func (k *kind) needsTimers() bool {
	for _, s := range k.steps {
		if s.wait != nil && (s.within > 0 || k.deadline > 0) {
			return true
		}
	}
	return false
}

// listens reports whether instances of the type start or wait on events.
func (k *kind) listens() bool {
	if len(k.starts) > 0 {
		return true
	}
	for _, s := range k.steps {
		if s.wait != nil {
			return true
		}
	}
	return false
}

// aggregateTypes are the aggregates whose events the type's listener reads.
func (k *kind) aggregateTypes() []string {
	seen := map[string]bool{}
	var out []string
	add := func(t string) {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	for _, s := range k.starts {
		add(s.aggregateType)
	}
	for _, s := range k.steps {
		if s.wait != nil {
			add(s.wait.aggregateType)
		}
	}
	return out
}
