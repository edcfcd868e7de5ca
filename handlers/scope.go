package handlers

import "sync"

// Buses are the three buses of a process.
type Buses struct {
	Commands *CommandBus
	Queries  *QueryBus
	Events   *EventBus
}

// Scope registers one feature module's handlers (the seed's
// EventsModule.scope): they run the scope's middleware inside the bus's,
// and Close removes them all. Pass a Scope wherever HandleCommand,
// HandleQuery or HandleEvent takes a bus.
//
// Close removes the handlers from this process; a type's NATS endpoint
// stays until the Remote closes, and answers platform.ErrNoHandler.
type Scope struct {
	name   string
	buses  Buses
	mw     []Middleware
	mu     sync.Mutex
	undo   []func()
	closed bool
}

// NewScope returns a scope named after its module. A nil bus in buses is
// fine until something registers on it.
func NewScope(module string, buses Buses, mw ...Middleware) *Scope {
	return &Scope{name: module, buses: buses, mw: mw}
}

// Name is the module's name.
func (s *Scope) Name() string { return s.name }

func (s *Scope) commandTarget() (*CommandBus, *Scope) { return s.buses.Commands, s }
func (s *Scope) queryTarget() (*QueryBus, *Scope)     { return s.buses.Queries, s }
func (s *Scope) eventTarget() (*EventBus, *Scope)     { return s.buses.Events, s }

func (s *Scope) onClose(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		f()
		return
	}
	s.undo = append(s.undo, f)
}

// Close unregisters every handler registered through the scope.
func (s *Scope) Close() {
	s.mu.Lock()
	undo := s.undo
	s.undo, s.closed = nil, true
	s.mu.Unlock()
	for i := len(undo) - 1; i >= 0; i-- {
		undo[i]()
	}
}

// describe names the scope in error messages.
func (s *Scope) describe() string {
	if s == nil {
		return ""
	}
	return " (registered by scope " + s.name + ")"
}
