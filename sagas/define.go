package sagas

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lexigram/events/platform"
)

// Definition is a saga type: a name, the type of its data and its ordered
// steps. Build it with Define and Step, then give it to Manager.Register,
// which reports what is wrong with it:
//
//	def := sagas.Define[Order]("order-fulfillment").
//		Step("reserve-inventory", reserve, sagas.Compensation(release)).
//		Step("take-payment", pay, sagas.Compensation(refund)).
//		Step("ship", ship)
//
// An action or compensation returns nil when it succeeded (what it changed
// in Context.Data is saved), Fail(err) when it failed for good, and any
// other error when a retry may succeed.
type Definition[D any] struct {
	name     string
	steps    []step[D]
	starts   []starter
	deadline time.Duration
	notFound NotFoundPolicy
	errs     []error
}

// StepFunc is a step's action or compensation.
type StepFunc[D any] func(ctx context.Context, sc *Context[D]) error

type step[D any] struct {
	name       string
	action     StepFunc[D]
	compensate StepFunc[D]
	wait       *waitSpec // set: the step waits for an event instead of acting
	within     time.Duration
}

// StepOption configures a step.
type StepOption[D any] func(*step[D])

// Compensation is the step's undo: it runs, once, when a later step fails
// for good or the saga times out.
func Compensation[D any](fn StepFunc[D]) StepOption[D] {
	return func(s *step[D]) { s.compensate = fn }
}

// Within bounds the step: an action that has not succeeded within d of
// its first run (its retries included), or a wait whose event has not come
// within d, times the saga out: it goes TimedOut and compensates the steps
// before. An action's context carries the deadline. Waits keep it on a
// durable timer (a JetStream message schedule), so it falls due even while
// no process runs.
func Within[D any](d time.Duration) StepOption[D] {
	return func(s *step[D]) { s.within = d }
}

// Define starts the definition of a saga type named name (letters,
// digits, '-' and '_'), with data of type D.
func Define[D any](name string) *Definition[D] {
	d := &Definition[D]{name: name}
	if tokenProblem(name, maxStoredTypeLen) != "" {
		d.errs = append(d.errs, fmt.Errorf("the saga type name %q is not a subject token: use letters, digits, '-' and '_'", name))
	}
	return d
}

// Step adds a step after those already defined.
func (d *Definition[D]) Step(name string, action StepFunc[D], opts ...StepOption[D]) *Definition[D] {
	if action == nil {
		d.errs = append(d.errs, fmt.Errorf("step %q has a nil action", name))
	}
	return d.add(step[D]{name: name, action: action}, opts)
}

// Wait adds a step that waits for an event correlated with the instance
// (see On), then moves on. With Within, the wait has a deadline.
func (d *Definition[D]) Wait(name string, on Event[D], opts ...StepOption[D]) *Definition[D] {
	if on.spec == nil {
		d.errs = append(d.errs, fmt.Errorf("wait %q has no event: pass sagas.On(...)", name))
	}
	return d.add(step[D]{name: name, wait: on.spec}, opts)
}

// StartOn starts an instance for each event the trigger accepts (see
// When). Starting is idempotent per association key, so an event
// delivered twice starts one instance.
func (d *Definition[D]) StartOn(t Trigger[D]) *Definition[D] {
	if t.start == nil {
		d.errs = append(d.errs, errors.New("StartOn needs a trigger: pass sagas.When(...)"))
		return d
	}
	d.starts = append(d.starts, *t.start)
	return d
}

// Deadline bounds the whole saga: an instance not completed within total
// of its start times out (TimedOut) and compensates what it did.
func (d *Definition[D]) Deadline(total time.Duration) *Definition[D] {
	if total <= 0 {
		d.errs = append(d.errs, fmt.Errorf("the saga's deadline is %v: use a positive duration", total))
	}
	d.deadline = total
	return d
}

// IfNotFound sets what happens to an event that should continue an
// instance of this type that does not exist or has finished. The default
// is IgnoreNotFound.
func (d *Definition[D]) IfNotFound(p NotFoundPolicy) *Definition[D] {
	d.notFound = p
	return d
}

func (d *Definition[D]) add(s step[D], opts []StepOption[D]) *Definition[D] {
	for _, o := range opts {
		o(&s)
	}
	if tokenProblem(s.name, maxStoredTypeLen) != "" {
		d.errs = append(d.errs, fmt.Errorf("step %d's name %q is not a token: use letters, digits, '-' and '_'", len(d.steps)+1, s.name))
	}
	if s.within < 0 {
		d.errs = append(d.errs, fmt.Errorf("step %q: Within(%v): use a positive duration", s.name, s.within))
	}
	name := s.name
	for _, o := range d.steps {
		if o.name == name {
			d.errs = append(d.errs, fmt.Errorf("two steps are named %q: give each its own name", name))
		}
	}
	d.steps = append(d.steps, s)
	return d
}

// SagaType is what Manager.Register takes: a *Definition of any data type.
type SagaType interface {
	kind() (*kind, error)
}

// kind is a Definition with its data type erased, as the manager runs it.
type kind struct {
	name     string
	steps    []kindStep
	starts   []starter
	deadline time.Duration
	notFound NotFoundPolicy
	// check decodes data into the saga's type, to refuse bad data at
	// Start rather than when a step runs.
	check func(data json.RawMessage) error
	// encode turns the data Start is given into the stored form.
	encode func(data any) (json.RawMessage, error)
}

type kindStep struct {
	name       string
	action     stepRun // for a wait, what it does with the event
	compensate stepRun // nil: the step has nothing to undo
	wait       *waitSpec
	within     time.Duration
}

// stepRun runs an action or compensation on the stored data and returns
// the data it left.
type stepRun func(ctx context.Context, env stepEnv, data json.RawMessage) (json.RawMessage, error)

func (d *Definition[D]) kind() (*kind, error) {
	errs := d.errs
	if len(d.steps) == 0 {
		errs = append(errs, errors.New("it has no steps: add at least one with Step"))
	}
	if len(errs) > 0 {
		return nil, platform.Errorf(platform.CodeInvalidArgument, "saga type %q: %w", d.name, errors.Join(errs...))
	}
	k := &kind{
		name: d.name, starts: d.starts, deadline: d.deadline, notFound: d.notFound,
		check: func(data json.RawMessage) error {
			var v D
			return json.Unmarshal(data, &v)
		},
		encode: func(data any) (json.RawMessage, error) {
			v, ok := data.(D)
			if !ok {
				if p, isPtr := data.(*D); isPtr && p != nil {
					v, ok = *p, true
				}
			}
			if !ok {
				var zero D
				return nil, platform.Errorf(platform.CodeInvalidArgument, "saga type %q takes data of type %T, not %T", d.name, zero, data)
			}
			return json.Marshal(v)
		},
	}
	for _, s := range d.steps {
		ks := kindStep{name: s.name, action: run(s.action), compensate: run(s.compensate), wait: s.wait, within: s.within}
		if s.wait != nil {
			ks.action = s.wait.apply
		}
		k.steps = append(k.steps, ks)
	}
	return k, nil
}

// run wraps a typed step function: decode the data, run, encode it back.
func run[D any](fn StepFunc[D]) stepRun {
	if fn == nil {
		return nil
	}
	return func(ctx context.Context, env stepEnv, data json.RawMessage) (json.RawMessage, error) {
		var v D
		if err := json.Unmarshal(data, &v); err != nil {
			return nil, &corruptData{err}
		}
		sc := &Context[D]{Data: &v, stepEnv: env}
		if err := fn(ctx, sc); err != nil {
			return nil, err
		}
		return json.Marshal(v)
	}
}

// corruptData is stored data the saga's type cannot decode: the instance
// is parked.
type corruptData struct{ err error }

func (c *corruptData) Error() string { return "its data does not decode: " + c.err.Error() }
func (c *corruptData) Unwrap() error { return c.err }

// final marks a step failure no retry can fix.
type final struct{ err error }

func (f final) Error() string { return f.err.Error() }
func (f final) Unwrap() error { return f.err }

// Fail marks err as a failure for good: no retry, the saga compensates.
// Fail(nil) is nil.
func Fail(err error) error {
	if err == nil {
		return nil
	}
	return final{err}
}

func isFinal(err error) bool {
	var f final
	return errors.As(err, &f)
}
