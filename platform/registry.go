package platform

import (
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
)

// EventType is one registered event: its stable name and schema version,
// and a decoder made for its Go type at registration.
type EventType struct {
	Name          string
	SchemaVersion int
	goType        reflect.Type
	decode        func(c Codec, data []byte) (any, error)
}

// Registry maps Go event types to stable names and back. Register every
// event type once at start-up; lookups afterwards take no lock.
type Registry struct {
	mu     sync.Mutex // serialises registrations
	byName atomic.Pointer[map[string]*EventType]
	byType atomic.Pointer[map[reflect.Type]*EventType]
}

// DefaultRegistry is the registry stores and repositories use when their
// options name none.
var DefaultRegistry = NewRegistry()

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	r := &Registry{}
	r.byName.Store(&map[string]*EventType{})
	r.byType.Store(&map[reflect.Type]*EventType{})
	return r
}

// MaxTypeNameLen bounds event type names; they travel in a header of every event.
const MaxTypeNameLen = 128

// Register registers E, a struct type, under name and schemaVersion
// (1 or more). Events are raised and read as E values, not pointers.
func Register[E any](r *Registry, name string, schemaVersion int) error {
	t := reflect.TypeFor[E]()
	if t.Kind() == reflect.Interface {
		return Errorf(CodeInvalidArgument, "register event %q: %v is an interface type: register a struct type", name, t)
	}
	if t.Kind() == reflect.Pointer {
		return Errorf(CodeInvalidArgument, "register event %q: %v is a %v: register the struct type itself (Register[%v])",
			name, t, t.Kind(), t.Elem())
	}
	if err := validateTypeName(name); err != nil {
		return Errorf(CodeInvalidArgument, "register event %v: %w", t, err)
	}
	if schemaVersion < 1 {
		return Errorf(CodeInvalidArgument, "register event %q: schema version %d: use 1 or more", name, schemaVersion)
	}
	et := &EventType{
		Name:          name,
		SchemaVersion: schemaVersion,
		goType:        t,
		decode: func(c Codec, data []byte) (any, error) {
			var e E
			err := c.Unmarshal(data, &e)
			return e, err
		},
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	names, types := *r.byName.Load(), *r.byType.Load()
	if prev, ok := names[name]; ok {
		return Errorf(CodeInvalidArgument, "register event %q: the name is already registered for %v: give %v another name", name, prev.goType, t)
	}
	if prev, ok := types[t]; ok {
		return Errorf(CodeInvalidArgument, "register event %v: it is already registered as %q", t, prev.Name)
	}
	newNames := make(map[string]*EventType, len(names)+1)
	for k, v := range names {
		newNames[k] = v
	}
	newNames[name] = et
	newTypes := make(map[reflect.Type]*EventType, len(types)+1)
	for k, v := range types {
		newTypes[k] = v
	}
	newTypes[t] = et
	r.byName.Store(&newNames)
	r.byType.Store(&newTypes)
	return nil
}

// MustRegister is Register for package initialisation: it panics on error.
func MustRegister[E any](r *Registry, name string, schemaVersion int) {
	if err := Register[E](r, name, schemaVersion); err != nil {
		panic(err)
	}
}

// TypeOf returns the registration of event's Go type.
func (r *Registry) TypeOf(event any) (*EventType, error) {
	// reflect.TypeOf only reads the interface's type word; it walks nothing.
	t := reflect.TypeOf(event)
	if et, ok := (*r.byType.Load())[t]; ok {
		return et, nil
	}
	if t != nil && t.Kind() == reflect.Pointer {
		if et, ok := (*r.byType.Load())[t.Elem()]; ok {
			return nil, Errorf(CodeInvalidArgument, "event %v is a pointer: raise the value (%v) that %q is registered for", t, t.Elem(), et.Name)
		}
	}
	return nil, Errorf(CodeUnknownEventType, "event type %v is not registered: call platform.Register[%v] at start-up", t, t)
}

// Lookup returns the registration of a stored type name.
func (r *Registry) Lookup(name string) (*EventType, bool) {
	et, ok := (*r.byName.Load())[name]
	return et, ok
}

// Decode decodes data stored as type name with codec.
func (r *Registry) Decode(c Codec, name string, data []byte) (any, error) {
	et, ok := r.Lookup(name)
	if !ok {
		return nil, Errorf(CodeUnknownEventType, "event type %q is not registered in this process: register it (platform.Register) before reading", name)
	}
	v, err := et.decode(c, data)
	if err != nil {
		return nil, Errorf(CodeCorruptEvent, "decode %q with %s: %w", name, c.Name(), err)
	}
	return v, nil
}

func validateTypeName(name string) error {
	if name == "" {
		return fmt.Errorf("the type name is empty: give it a stable name such as \"order.item-added\"")
	}
	if len(name) > MaxTypeNameLen {
		return fmt.Errorf("the type name is %d bytes long: use at most %d", len(name), MaxTypeNameLen)
	}
	for _, c := range []byte(name) {
		if !isNameByte(c) && c != '.' && c != ':' && c != '/' {
			return fmt.Errorf("type name %q has %q: use letters, digits and . - _ : /", name, c)
		}
	}
	return nil
}

func isNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}
