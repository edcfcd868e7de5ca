package sagas

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strconv"
	"time"

	"github.com/lexigram/events/platform"
)

// rest is where an advance left its instance: done for now (finished,
// stuck, or owned by another manager until its lease ends), or due to be
// moved on again after retryIn.
type rest struct {
	retryIn time.Duration
}

// conflictRetry spaces the moves of an instance another process holds or
// just moved.
const conflictRetry = 100 * time.Millisecond

// advance moves the instance with the ID on until it rests. It saves the
// instance before each action or compensation (a run counted, a lease
// taken) and after its result, each save a compare-and-set on the
// revision it read, so two managers never advance one instance at once.
// started is the instance a start message held, whose first run is
// counted already; nil for every other message.
func (m *Manager) advance(ctx context.Context, id string, started *Instance) rest {
	if started != nil {
		if k := m.kindOf(started.Type); k != nil {
			s := &stepper{m: m, k: k, in: *started, stored: started.Updated, saved: restingOf(started), counted: true}
			return s.run(ctx)
		}
	}
	in, err := m.store.Load(ctx, id)
	var corrupt *CorruptError
	switch {
	case errors.As(err, &corrupt):
		m.park(ctx, corrupt.Parked(), corrupt)
		return rest{}
	case errors.Is(err, platform.ErrSagaNotFound):
		m.log.WarnContext(ctx, "sagas: a message names an instance that does not exist; dropped", "id", id)
		return rest{}
	case err != nil:
		m.log.WarnContext(ctx, "sagas: load an instance; retrying", "id", id, "error", err)
		return rest{retryIn: time.Second}
	}
	if in.State.Finished() || in.State.Stuck() {
		return rest{}
	}
	k := m.kindOf(in.Type)
	if k == nil {
		// A manager without the type consumes its messages only if
		// someone shares the type's consumer by mistake.
		m.log.WarnContext(ctx, "sagas: an instance of a type this manager does not know; left for one that does", "id", id, "type", in.Type)
		return rest{retryIn: m.opts.AckWait}
	}
	now := m.now()
	if in.Owner != "" && in.Owner != m.id && now.Before(in.LeaseUntil) {
		return rest{retryIn: in.LeaseUntil.Sub(now) + conflictRetry}
	}
	s := &stepper{m: m, k: k, in: in, stored: in.Updated, saved: restingOf(&in)}
	return s.run(ctx)
}

// stepper advances one instance.
type stepper struct {
	m  *Manager
	k  *kind
	in Instance
	// counted is set when the save of the last step's result also
	// counted the next run, which then starts without a save of its own:
	// one compare-and-set per step instead of two.
	counted bool
	// stored is the Updated of the record as this stepper last read or
	// saved it: a conflicting record with the same Updated changed only
	// by events delivered to its inbox, which the stepper merges.
	stored time.Time
	// cancelTimer is set when a wait ended: its timer is cancelled after
	// the save that ended it.
	cancelTimer bool
	// saved is what of the instance a rest at a wait would write, as it
	// was last read or saved: a wait woken again with nothing new (a
	// resume, a stale timer, a duplicate wake) does not write it again.
	saved resting
}

type resting struct {
	state   State
	step    int
	attempt int
	due     time.Time
	owner   string
	inbox   int
}

func restingOf(in *Instance) resting {
	return resting{state: in.State, step: in.Step, attempt: in.Attempt, due: in.Due, owner: in.Owner, inbox: len(in.Inbox)}
}

// save writes the instance over the revision it was read at, renewing
// this manager's lease, or, resting, giving it up (a retry may be
// delivered to another process); ok is false when another process moved
// it.
func (s *stepper) save(ctx context.Context, resting bool) (ok bool, r rest) {
	now := s.m.now().UTC()
	s.in.Updated = now
	s.in.Owner, s.in.LeaseUntil = s.m.id, now.Add(s.m.opts.AckWait)
	if resting || s.in.State.Finished() || s.in.State.Stuck() {
		s.in.Owner, s.in.LeaseUntil = "", time.Time{}
	}
	for {
		rev, err := s.m.store.Save(ctx, s.in)
		switch {
		case err == nil:
			s.in.Revision, s.stored, s.saved = rev, s.in.Updated, restingOf(&s.in)
			if s.cancelTimer && s.m.alarms != nil && !s.m.keepTimers {
				s.cancelTimer = false
				if err := s.m.alarms.cancel(ctx, &s.in); err != nil {
					s.m.log.DebugContext(ctx, "sagas: cancel a timer; its fire will be found stale", "id", s.in.ID, "error", err)
				}
			}
			if s.in.State.Finished() || s.in.State.Stuck() {
				s.m.opts.Metrics.finished(&s.in)
			}
			return true, rest{}
		case errors.Is(err, platform.ErrSagaConflict):
			if stored, lerr := s.m.store.Load(ctx, s.in.ID); lerr == nil && mergeInbox(&s.in, stored, s.stored) {
				continue // only events were delivered: take them and save again
			}
			return false, rest{retryIn: conflictRetry}
		default:
			s.m.log.WarnContext(ctx, "sagas: save an instance; retrying", "id", s.in.ID, "error", err)
			return false, rest{retryIn: time.Second}
		}
	}
}

func (s *stepper) run(ctx context.Context) rest {
	in := &s.in
	for {
		switch in.State {
		case NotStarted, Started:
			in.State = Running // saved with the first step's run
			continue
		case Running:
			if in.Step >= len(s.k.steps) {
				in.State = Completed
				break
			}
			if s.k.steps[in.Step].wait != nil {
				if r, done := s.wait(ctx); done {
					return r
				}
				continue
			}
			if s.overdue() {
				s.timeOut()
				break
			}
			if r, done := s.try(ctx, false, -1); done {
				return r
			}
			continue
		case Failed, TimedOut:
			// The step at in.Step did not complete: undo the ones
			// before, with no deadline.
			in.State, in.Step, in.Attempt = Compensating, in.Step-1, 0
			in.Due, in.Deadline = time.Time{}, time.Time{}
		case Compensating:
			if in.Step < 0 {
				in.State = Compensated
				break
			}
			if s.k.steps[in.Step].compensate == nil {
				in.Step--
				continue
			}
			if r, done := s.try(ctx, true, -1); done {
				return r
			}
			continue
		default: // Completed, Compensated, CompensationFailed, Parked
			return rest{}
		}
		if ok, r := s.save(ctx, false); !ok {
			return r
		}
		if in.State.Finished() {
			return rest{}
		}
	}
}

// wait handles a wait step: it takes the first event in the inbox that
// the wait is for, if it came before the deadline, or times the saga out
// when the deadline has passed, or rests until one of them comes (with a
// durable timer for the deadline). An event that came after the deadline
// but before the timer fired (timers fire late) times the saga out, as
// it would have had the timer fired on time.
func (s *stepper) wait(ctx context.Context) (r rest, done bool) {
	in := &s.in
	st := s.k.steps[in.Step]
	for {
		if i := s.inboxIndex(st.wait.kind); i >= 0 && s.inTime(i) {
			return s.try(ctx, false, i)
		}
		if s.overdue() {
			s.timeOut()
			if ok, r := s.save(ctx, false); !ok {
				return r, true
			}
			return rest{}, false
		}
		if st.within > 0 && in.Due.IsZero() {
			in.Due = s.m.now().Add(st.within).UTC()
		}
		in.Attempt = 0
		if unchanged := restingOf(in); unchanged.owner != "" || unchanged != s.saved {
			if ok, r := s.save(ctx, true); !ok {
				return r, true
			}
			if i := s.inboxIndex(st.wait.kind); i >= 0 && s.inTime(i) {
				continue // an event came while saving
			}
		}
		if due := in.due(); !due.IsZero() && s.m.alarms != nil {
			if err := s.m.alarms.schedule(ctx, in, due); err != nil {
				s.m.log.WarnContext(ctx, "sagas: set a timer; retrying", "id", in.ID, "error", err)
				return rest{retryIn: time.Second}, true
			}
		}
		return rest{}, true
	}
}

// inboxIndex is the place in the inbox of the first event of kind.
func (s *stepper) inboxIndex(kind string) int {
	for i, r := range s.in.Inbox {
		if r.Kind == kind {
			return i
		}
	}
	return -1
}

// inTime reports whether the inbox's event at i came before the
// instance's deadline.
func (s *stepper) inTime(i int) bool {
	due, at := s.in.due(), s.in.Inbox[i].At
	return due.IsZero() || at.IsZero() || at.Before(due)
}

// overdue reports whether the instance's deadline has passed.
func (s *stepper) overdue() bool {
	due := s.in.due()
	return !due.IsZero() && !s.m.now().Before(due)
}

// timeOut moves the instance, past its deadline, to TimedOut.
func (s *stepper) timeOut() {
	in := &s.in
	st := s.k.steps[in.Step]
	what := "step " + st.name
	if in.Due.IsZero() || !in.Deadline.IsZero() && in.Deadline.Before(in.Due) {
		what = "the saga, at step " + st.name + ","
	}
	in.Error = fmt.Sprintf("%s: %s timed out: its deadline was %s", platform.CodeSagaExecution, what, in.due().Format(time.RFC3339Nano))
	in.History = append(in.History, StepRecord{Step: st.name, Attempt: in.Attempt, Started: s.m.now().UTC(), Outcome: "timed out", Error: in.Error})
	in.State, in.Attempt = TimedOut, 0
	if st.wait != nil {
		s.leaveWait()
	}
	s.m.opts.Metrics.instance(in.Type, "timed_out")
}

// leaveWait ends the current wait: its timer, if it fires, is stale.
func (s *stepper) leaveWait() {
	s.in.Generation++
	s.in.Due = time.Time{}
	s.cancelTimer = true
}

// try runs the current step's action (or compensation, or, for a wait,
// its handling of the inbox's event at index event) once, saving the run
// before it and its outcome after. done is true when the instance rests;
// false when it moved on to its next state.
func (s *stepper) try(ctx context.Context, compensating bool, event int) (r rest, done bool) {
	in := &s.in
	st := s.k.steps[in.Step]
	if !compensating && st.wait == nil && st.within > 0 && in.Due.IsZero() {
		in.Due = s.m.now().Add(st.within).UTC()
	}
	if !s.counted {
		in.Attempt++
		if ok, r := s.save(ctx, false); !ok {
			return r, true
		}
	}
	s.counted = false
	fn := st.action
	if compensating {
		fn = st.compensate
	}
	env := stepEnv{
		id: in.ID, sagaType: in.Type, key: in.Key, step: st.name, compensating: compensating,
		attempt: in.Attempt, correlationID: in.CorrelationID,
		services: s.m.opts.Services, commands: s.m.opts.Commands, sink: s.m.sink,
	}
	var received Received
	if event >= 0 {
		received = in.Inbox[event]
		env.event = received.Event
	}
	stepCtx, cancel := ctx, context.CancelFunc(func() {})
	if due := in.due(); !compensating && st.wait == nil && !due.IsZero() {
		// A timeout from the manager's clock, which a Stub's fake clock
		// may have put anywhere relative to the real one.
		stepCtx, cancel = context.WithTimeout(ctx, due.Sub(s.m.now()))
	}
	stepCtx, span := s.m.startSpan(stepCtx, in, st.name, compensating)
	began := s.m.now()
	data, err := call(stepCtx, fn, env, in.Data)
	cancel()
	rec := StepRecord{Step: st.name, Compensation: compensating, Attempt: in.Attempt, Started: began.UTC(), Took: s.m.now().Sub(began), Outcome: "ok", Event: received.Position}
	defer func() {
		endSpan(span, rec)
		s.m.opts.Metrics.step(in.Type, st.name, rec.Outcome, rec.Took)
	}()

	var corrupt *corruptData
	switch {
	case err == nil:
		in.Data, in.Attempt = data, 0
		if compensating {
			in.Step-- // Error keeps why the saga compensates
		} else {
			if event >= 0 {
				in.Inbox = slices.Delete(in.Inbox, event, event+1)
				s.leaveWait()
			}
			in.Step, in.Error, in.Due = in.Step+1, "", time.Time{}
			if in.Step == len(s.k.steps) {
				in.State = Completed // saved with this result
			}
		}
		if next := s.nextRun(compensating); next {
			in.Attempt, s.counted = 1, true
		}
	case errors.As(err, &corrupt):
		in.Resume = in.State
		in.State, in.Error = Parked, fmt.Sprintf("saga %s (%s): %v: fix the data and retry the instance", in.ID, in.Type, err)
		rec.Outcome, rec.Error = "failed", err.Error()
	case !compensating && errors.Is(err, context.DeadlineExceeded) && s.overdue():
		rec.Outcome, rec.Error = "timed out", err.Error()
		s.timeOut()
	case isFinal(err) || in.Attempt >= s.m.opts.Retry.Attempts:
		rec.Outcome, rec.Error = "failed", err.Error()
		in.Error = describe(in, st.name, compensating, err)
		switch {
		case compensating:
			in.State = CompensationFailed
		default:
			if event >= 0 {
				in.Inbox = slices.Delete(in.Inbox, event, event+1)
				s.leaveWait()
			}
			in.State, in.Attempt = Failed, 0
		}
	default:
		rec.Outcome, rec.Error = "retry", err.Error()
		in.Error = describe(in, st.name, compensating, err)
		in.History = append(in.History, rec)
		if ok, r := s.save(ctx, true); !ok {
			return r, true
		}
		delay := s.m.opts.Retry.delay(in.Attempt)
		if due := in.due(); !compensating && st.wait == nil && !due.IsZero() {
			// The retry's delivery finds the deadline passed.
			delay = min(delay, due.Sub(s.m.now())+conflictRetry)
		}
		return rest{retryIn: max(delay, conflictRetry)}, true
	}
	if rec.Outcome != "timed out" {
		in.History = append(in.History, rec)
	}
	if ok, r := s.save(ctx, false); !ok {
		return r, true
	}
	if in.State.Stuck() {
		s.m.log.WarnContext(ctx, "sagas: an instance waits for an operator", "id", in.ID, "type", in.Type, "state", in.State, "error", in.Error)
		return rest{}, true
	}
	return rest{}, false
}

// nextRun reports whether, after a step's success, another action (or
// compensation) runs next, so that the save of this result counts it.
func (s *stepper) nextRun(compensating bool) bool {
	if !compensating {
		// A wait's run is counted only when its event is there.
		return s.in.State == Running && s.in.Step < len(s.k.steps) && s.k.steps[s.in.Step].wait == nil
	}
	return s.in.Step >= 0 && s.k.steps[s.in.Step].compensate != nil
}

// call runs a step function, turning a panic into a retryable failure.
func call(ctx context.Context, fn stepRun, env stepEnv, data json.RawMessage) (out json.RawMessage, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = platform.Errorf(platform.CodeHandlerPanic, "saga %s step %s panicked: %v\n%s", env.id, env.step, p, debug.Stack())
		}
	}()
	return fn(ctx, env, data)
}

func describe(in *Instance, step string, compensating bool, err error) string {
	what := "step " + step
	if compensating {
		what = "the compensation of step " + step
	}
	return fmt.Sprintf("%s: %s failed on attempt %d: %v", platform.CodeSagaExecution, what, in.Attempt, err)
}

// park saves an instance that cannot be run as Parked, with why.
func (m *Manager) park(ctx context.Context, in Instance, why error) {
	in.State, in.Error, in.Updated = Parked, why.Error(), m.now().UTC()
	in.Owner, in.LeaseUntil = "", time.Time{}
	if _, err := m.store.Save(ctx, in); err != nil {
		m.log.WarnContext(ctx, "sagas: could not park an instance", "id", in.ID, "error", err)
		return
	}
	m.log.WarnContext(ctx, "sagas: parked an instance", "id", in.ID, "type", in.Type, "error", why)
}

func uitoa(n uint64) string { return strconv.FormatUint(n, 10) }
