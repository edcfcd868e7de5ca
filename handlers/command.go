package handlers

import (
	"context"

	"github.com/lexigram/events/platform"
)

// CommandBus routes each command to its one handler, in this process or,
// with a Remote, in whichever process serves its type.
type CommandBus struct {
	c *core[CommandResult]
}

// NewCommandBus returns a command bus.
func NewCommandBus(opts Options) *CommandBus {
	return &CommandBus{c: newCore(KindCommand, opts,
		func(h call[Message, CommandResult], mw []Middleware) call[Message, CommandResult] {
			return call[Message, CommandResult](chainCommand(CommandHandlerFunc(h), mw))
		},
		encodeResult)}
}

// CommandRegistrar is what HandleCommand registers with: a *CommandBus or
// a *Scope.
type CommandRegistrar interface {
	commandTarget() (*CommandBus, *Scope)
}

func (b *CommandBus) commandTarget() (*CommandBus, *Scope) { return b, nil }

// HandleCommand registers fn as the handler of command type C, which
// must be registered in the bus's registry. fn changes aggregates through
// the unit of work (Load, Track); the Transaction middleware saves them
// and builds the CommandResult. With a Remote, the handler also serves
// other processes.
func HandleCommand[C any](r CommandRegistrar, fn func(ctx context.Context, cmd C) error) error {
	b, sc := r.commandTarget()
	if b == nil {
		return platform.Errorf(platform.CodeInvalidArgument, "handlers.HandleCommand: the scope has no command bus: give NewScope one in Buses.Commands")
	}
	var zero C
	name, err := b.c.typeName(zero, "handlers.HandleCommand: command")
	if err != nil {
		return err
	}
	h := func(ctx context.Context, m Message) (CommandResult, error) {
		cmd, ok := m.Body.(C)
		if !ok {
			return CommandResult{}, platform.Errorf(platform.CodeInvalidArgument, "command %s: the body is a %T, the handler takes a %T", m.Type, m.Body, zero)
		}
		return CommandResult{}, fn(ctx, cmd)
	}
	return b.c.register(sc, name, h, decoder[C], b.c.served(name))
}

// Dispatch runs cmd's handler and returns what it changed: in this
// process when the handler is registered here, else, with a Remote, in
// the process that serves its type. cmd is a value
// of a registered command type; it gets a new ID (or its MessageID()), which
// becomes the causation ID of the events it produces, and the correlation
// ID of ctx, or else its own ID. Its idempotency key is its
// IdempotencyKey() or else that of WithIdempotencyKey (see Idempotency).
// A command nobody handles is platform.ErrNoHandler; a failing handler's
// error is wrapped in platform.ErrCommandExecution.
func (b *CommandBus) Dispatch(ctx context.Context, cmd any) (CommandResult, error) {
	name, err := b.c.typeName(cmd, "dispatch command")
	if err != nil {
		return CommandResult{}, err
	}
	m := newMessage(ctx, KindCommand, name, cmd)
	if m.IdempotencyKey != "" {
		if err := checkIdempotencyKey(m); err != nil {
			return CommandResult{}, err
		}
	}
	ctx, span := b.c.startSpan(ctx, m)
	res, err := b.dispatch(ctx, m)
	endSpan(span, err)
	return res, err
}

func (b *CommandBus) dispatch(ctx context.Context, m Message) (CommandResult, error) {
	if e := b.c.lookup(m.Type); e != nil {
		return b.c.run(ctx, e, m)
	}
	resp, err := b.c.send(ctx, m)
	if err != nil {
		return CommandResult{}, err
	}
	res, err := decodeResult(b.c.o.Codec, b.c.o.Registry, resp.Data)
	if err != nil {
		return CommandResult{}, platform.Errorf(platform.CodeCommandExecution, "command %s (%s): decode the result: %w", m.Type, m.ID, err)
	}
	return res, nil
}

// Handles reports whether a handler of the command type runs in this process.
func (b *CommandBus) Handles(typ string) bool { return b.c.Handles(typ) }
