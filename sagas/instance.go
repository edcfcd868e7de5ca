package sagas

import (
	"encoding/json"
	"time"
)

// State is where a saga instance is in its life.
type State string

// The states of an instance. A run goes NotStarted → Started → Running →
// Completed; a step that fails for good goes Failed → Compensating →
// Compensated, a deadline TimedOut → Compensating → Compensated. Two
// states wait for an operator: CompensationFailed (a compensation kept
// failing after its retries) and Parked (the instance could not be read
// or run; its Error says why).
const (
	NotStarted         State = "NOT_STARTED"
	Started            State = "STARTED"
	Running            State = "RUNNING"
	Completed          State = "COMPLETED"
	Failed             State = "FAILED"
	TimedOut           State = "TIMED_OUT"
	Compensating       State = "COMPENSATING"
	Compensated        State = "COMPENSATED"
	CompensationFailed State = "COMPENSATION_FAILED"
	Parked             State = "PARKED"
)

// Finished reports a state no run leaves: Completed or Compensated.
func (s State) Finished() bool { return s == Completed || s == Compensated }

// due is when the instance times out: the earlier of Due and Deadline.
func (in *Instance) due() time.Time {
	switch {
	case in.Due.IsZero():
		return in.Deadline
	case in.Deadline.IsZero() || in.Due.Before(in.Deadline):
		return in.Due
	}
	return in.Deadline
}

// Stuck reports a state that waits for an operator.
func (s State) Stuck() bool { return s == CompensationFailed || s == Parked }

// Instance is one run of a saga, as its store keeps it: enough to resume
// it in any process after a crash. Stores treat it as a record; the
// manager alone decides what its fields mean.
type Instance struct {
	ID    string `json:"id"`   // unique across all types; a token (letters, digits, '-', '_')
	Type  string `json:"type"` // the saga type's name
	Key   string `json:"key"`  // the association key, unique within the type
	State State  `json:"state"`
	// Step is the index of the step to run next, or, compensating, of
	// the step whose compensation runs next; Attempt counts the tries of
	// that action or compensation so far.
	Step    int `json:"step"`
	Attempt int `json:"attempt"`
	// Data is the saga's typed data, encoded as JSON.
	Data json.RawMessage `json:"data,omitempty"`
	// Generation grows whenever the instance sets or clears a timer, so
	// a timer that fires after it was cancelled is recognised as stale.
	Generation uint64 `json:"generation"`
	// Due is when the current step times out (Within), Deadline when
	// the whole saga does (Definition.Deadline); zero: never.
	Due      time.Time `json:"due,omitzero"`
	Deadline time.Time `json:"deadline,omitzero"`
	// Inbox holds the events sent to the instance that a wait ahead of
	// it will take, in the order they came.
	Inbox         []Received `json:"inbox,omitempty"`
	CorrelationID string     `json:"correlation_id,omitempty"`
	CausationID   string     `json:"causation_id,omitempty"`
	// Trace is the W3C trace context (traceparent) of what started the
	// instance: every step's span links to it.
	Trace string `json:"trace,omitempty"`
	Error string `json:"error,omitempty"` // the last failure, for operators
	// Resume is the state a PARKED instance goes back to when an
	// operator retries it.
	Resume State `json:"resume,omitempty"`
	// Owner is the manager advancing the instance, until LeaseUntil: no
	// other process advances it before then, and after it (the owner
	// died) another resumes it.
	Owner      string       `json:"owner,omitempty"`
	LeaseUntil time.Time    `json:"lease_until,omitzero"`
	History    []StepRecord `json:"history,omitempty"`
	Created    time.Time    `json:"created"`
	Updated    time.Time    `json:"updated"`
	// Revision is the store's revision of this record: Save writes only
	// over the revision the instance was read at. Stores set it; it is
	// not part of the encoded record.
	Revision uint64 `json:"-"`
}

// StepRecord is one try of a step's action or compensation.
type StepRecord struct {
	Step         string        `json:"step"`
	Compensation bool          `json:"compensation,omitempty"`
	Attempt      int           `json:"attempt"`
	Started      time.Time     `json:"started"`
	Took         time.Duration `json:"took"`
	Outcome      string        `json:"outcome"` // "ok", "retry", "failed", "timed out"
	Error        string        `json:"error,omitempty"`
	// Event is the position of the event a wait took.
	Event uint64 `json:"event,omitempty"`
}
