package sagas

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/platform"
)

// Operator is what an operator does to instances: list them, show one
// with its pending timer, retry one that waits for an operator, abort one
// (it compensates), and fire a timer now. It needs no saga type
// registered, so the CLI and the dashboard use it beside the managers
// that run the instances; what it changes, it changes with the same
// compare-and-set, and the managers move the instance on.
type Operator struct {
	js     jetstream.JetStream
	store  Store
	opts   Options
	mu     sync.Mutex
	timers *timers // looked up when first needed
}

// NewOperator returns an operator on the instances in store, for managers
// run with opts (their work stream and timer stream; the rest is unused).
func NewOperator(js jetstream.JetStream, store Store, opts Options) (*Operator, error) {
	if store == nil {
		return nil, platform.Errorf(platform.CodeInvalidArgument, "sagas.NewOperator: the store is nil: pass the managers' store")
	}
	return &Operator{js: js, store: store, opts: opts.withDefaults()}, nil
}

// Operator returns the operator on the manager's instances.
func (m *Manager) Operator() *Operator {
	return &Operator{js: m.js, store: m.store, opts: m.opts}
}

// timerStream looks up the timer stream: nil when there is none (no
// manager has needed timers yet).
func (o *Operator) timerStream(ctx context.Context) (*timers, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.timers != nil {
		return o.timers, nil
	}
	s, err := o.js.Stream(ctx, o.opts.TimerStream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return nil, nil
	case err != nil:
		return nil, platform.Errorf(platform.CodeStoreUnavailable, "sagas: look up the timer stream %s: %w", o.opts.TimerStream, err)
	}
	o.timers = &timers{js: o.js, stream: s, prefix: o.opts.TimerSubjectPrefix}
	return o.timers, nil
}

// List returns a page of instances, in ID order (Query.After pages on).
func (o *Operator) List(ctx context.Context, q Query) ([]Instance, error) {
	if q.Limit <= 0 {
		q.Limit = 100
	}
	return o.store.List(ctx, q)
}

// Details is one instance as an operator sees it.
type Details struct {
	Instance
	// Timer is the instance's pending timer; nil when it has none.
	Timer *Timer `json:"timer,omitempty"`
}

// Timer is a pending durable timer.
type Timer struct {
	At         time.Time `json:"at"`
	Generation uint64    `json:"generation"`
	// Stale is set when the timer belongs to a wait that has ended: it
	// will fire and be ignored.
	Stale bool `json:"stale,omitempty"`
}

// Show returns an instance with its pending timer.
func (o *Operator) Show(ctx context.Context, id string) (Details, error) {
	in, err := o.store.Load(ctx, id)
	var corrupt *CorruptError
	if errors.As(err, &corrupt) {
		return Details{Instance: corrupt.Parked()}, nil
	}
	if err != nil {
		return Details{}, err
	}
	d := Details{Instance: in}
	t, err := o.timerStream(ctx)
	if err != nil {
		return Details{}, err
	}
	if t != nil {
		at, generation, ok, err := t.pending(ctx, &in)
		if err != nil {
			return Details{}, platform.Errorf(platform.CodeStoreUnavailable, "saga %s: read its timer: %w", id, err)
		}
		if ok {
			d.Timer = &Timer{At: at, Generation: generation, Stale: generation != in.Generation || in.Due.IsZero() && in.Deadline.IsZero()}
		}
	}
	return d, nil
}

// Retry sends an instance that waits for an operator on: a
// COMPENSATION_FAILED one runs its compensation again, a PARKED one the
// step it was parked at (after its data or record was fixed), each with
// its tries counted afresh.
func (o *Operator) Retry(ctx context.Context, id string) (Instance, error) {
	return o.change(ctx, id, "retry", func(in *Instance) error {
		switch in.State {
		case CompensationFailed:
			in.State = Compensating
		case Parked:
			in.State = in.Resume
			if in.State == "" {
				in.State = Running
			}
		default:
			return fmt.Errorf("it is %s: only PARKED and COMPENSATION_FAILED instances are retried", in.State)
		}
		in.Attempt, in.Resume = 0, ""
		return nil
	})
}

// Abort stops an unfinished instance for good: it goes FAILED with
// reason, and compensates the steps it completed.
func (o *Operator) Abort(ctx context.Context, id, reason string) (Instance, error) {
	if reason == "" {
		reason = "no reason given"
	}
	return o.change(ctx, id, "abort", func(in *Instance) error {
		switch {
		case in.State.Finished():
			return fmt.Errorf("it has finished (%s)", in.State)
		case in.State == Compensating || in.State == CompensationFailed || in.State == Failed || in.State == TimedOut ||
			in.State == Parked && in.Resume == Compensating:
			return fmt.Errorf("it is already compensating (%s): retry it instead", in.State)
		}
		in.State, in.Attempt, in.Resume = Failed, 0, ""
		in.Error = fmt.Sprintf("%s: aborted by an operator: %s", platform.CodeSagaExecution, reason)
		in.Generation++ // a pending timer is stale
		in.Due, in.Deadline = time.Time{}, time.Time{}
		return nil
	})
}

// FireTimer makes the deadline of an instance resting at a wait fall due
// now: it times out and compensates.
func (o *Operator) FireTimer(ctx context.Context, id string) (Instance, error) {
	return o.change(ctx, id, "fire", func(in *Instance) error {
		if in.State != Running || in.due().IsZero() {
			return fmt.Errorf("it has no pending deadline (state %s, due %v)", in.State, in.due())
		}
		now := time.Now().UTC()
		if !in.Due.IsZero() {
			in.Due = now
		} else {
			in.Deadline = now
		}
		return nil
	})
}

// change applies an operator's change to an instance, unless a manager
// is running one of its steps, and wakes it.
func (o *Operator) change(ctx context.Context, id, what string, apply func(*Instance) error) (Instance, error) {
	for {
		in, err := o.store.Load(ctx, id)
		var corrupt *CorruptError
		if errors.As(err, &corrupt) {
			return Instance{}, platform.Errorf(platform.CodeCorruptSaga, "%s saga %s: %w", what, id, err)
		}
		if err != nil {
			return Instance{}, err
		}
		if in.Owner != "" && time.Now().Before(in.LeaseUntil) {
			return Instance{}, platform.Errorf(platform.CodeSagaConflict,
				"%s saga %s: a manager (%s) is running its step %d until %s: try again when it rests", what, id, in.Owner, in.Step, in.LeaseUntil.Format(time.RFC3339))
		}
		if err := apply(&in); err != nil {
			return Instance{}, platform.Errorf(platform.CodeInvalidArgument, "%s saga %s (%s): %v", what, id, in.Type, err)
		}
		in.Updated = time.Now().UTC()
		rev, err := o.store.Save(ctx, in)
		if errors.Is(err, platform.ErrSagaConflict) {
			continue // an event came in; apply to the new record
		}
		if err != nil {
			return Instance{}, err
		}
		in.Revision = rev
		if err := kick(ctx, o.js, o.opts.SubjectPrefix, in, what); err != nil {
			return in, err
		}
		return in, nil
	}
}
