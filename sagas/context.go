package sagas

import (
	"context"
	"encoding/json"
	"strconv"

	"github.com/lexigram/events/handlers"
	"github.com/lexigram/events/platform"
)

// Context is what a step's action or compensation gets: the saga's data,
// which it may change (the change is saved when it succeeds), who the
// instance is, the application's services, and the command bus.
type Context[D any] struct {
	Data *D
	stepEnv
}

// stepEnv is the part of Context that does not depend on the data type.
type stepEnv struct {
	id, sagaType, key, step string
	compensating            bool
	attempt                 int
	correlationID           string
	services                any
	commands                *handlers.CommandBus
	sink                    commandSink // set: takes the commands instead of commands (a Stub)
	sent                    int
	event                   json.RawMessage // the event a wait takes
}

// ID is the saga instance's ID.
func (e *stepEnv) ID() string { return e.id }

// Type is the saga type's name.
func (e *stepEnv) Type() string { return e.sagaType }

// Key is the instance's association key.
func (e *stepEnv) Key() string { return e.key }

// Step is the name of the step running.
func (e *stepEnv) Step() string { return e.step }

// Compensating reports whether this is the step's compensation.
func (e *stepEnv) Compensating() bool { return e.compensating }

// Attempt counts the runs of this action or compensation, from 1. A run
// after a crash counts too: what a step does must bear being done again,
// which Send arranges for commands.
func (e *stepEnv) Attempt() int { return e.attempt }

// CorrelationID is shared by everything the saga's start set off.
func (e *stepEnv) CorrelationID() string { return e.correlationID }

// Services is what the application gave the manager in Options.Services.
func (e *stepEnv) Services() any { return e.services }

// Send dispatches a command on the manager's command bus, correlated with
// what started the saga and caused by the saga. It carries an idempotency
// key made of the instance, the step (and whether it compensates) and the
// command's place among those this run sent, the same in every run of the
// step: with the handlers.Idempotency middleware on the bus, a step run
// again after a crash gets the first run's result instead of applying the
// command twice.
func (e *stepEnv) Send(ctx context.Context, cmd any) (handlers.CommandResult, error) {
	if e.sink != nil {
		e.sent++
		key := e.idempotencyKey(e.sent)
		ctx = platform.WithCorrelationID(ctx, e.correlationID)
		ctx = platform.WithCausationID(ctx, e.id)
		ctx = handlers.WithIdempotencyKey(ctx, key)
		return e.sink(ctx, SentCommand{
			Instance: e.id, SagaType: e.sagaType, Key: e.key, Step: e.step, Compensation: e.compensating,
			Attempt: e.attempt, IdempotencyKey: key, Command: cmd,
		})
	}
	if e.commands == nil {
		return handlers.CommandResult{}, platform.Errorf(platform.CodeInvalidArgument,
			"saga %s step %s: Send needs a command bus: set sagas.Options.Commands", e.id, e.step)
	}
	e.sent++
	ctx = platform.WithCorrelationID(ctx, e.correlationID)
	ctx = platform.WithCausationID(ctx, e.id)
	ctx = handlers.WithIdempotencyKey(ctx, e.idempotencyKey(e.sent))
	return e.commands.Dispatch(ctx, cmd)
}

// idempotencyKey names the nth command of this step's run.
func (e *stepEnv) idempotencyKey(n int) string {
	phase := "do"
	if e.compensating {
		phase = "undo"
	}
	return "saga." + e.id + "." + e.step + "." + phase + "." + strconv.Itoa(n)
}

// SentCommand is a command a step sent, as a Stub records it.
type SentCommand struct {
	Instance     string // the instance's ID
	SagaType     string
	Key          string // the instance's association key
	Step         string
	Compensation bool // sent by the step's compensation
	Attempt      int  // the run of the action or compensation that sent it
	// IdempotencyKey is the key Send gave it: the same in every run of
	// the step, so a bus with handlers.Idempotency applies it once.
	IdempotencyKey string
	Command        any
	Err            error // what dispatching it returned
}

// commandSink takes a step's command in place of the command bus.
type commandSink func(ctx context.Context, c SentCommand) (handlers.CommandResult, error)
