package platform

import (
	"fmt"
	"maps"
	"reflect"
	"sync"
	"sync/atomic"
)

// EventType is one registered version of an event: its stable name and
// schema version, and a decoder made for its Go type at registration.
type EventType struct {
	Name          string
	SchemaVersion int
	goType        reflect.Type
	decode        func(c Codec, data []byte) (any, error)
	// path is how events stored as this version read, resolved on first
	// use against one generation of the registry (upcast.go).
	path atomic.Pointer[path]
}

// GoType is the Go type registered for this version.
func (et *EventType) GoType() reflect.Type { return et.goType }

func (et *EventType) key() typeKey { return typeKey{et.Name, et.SchemaVersion} }

func (et *EventType) String() string {
	return fmt.Sprintf("%q version %d (%v)", et.Name, et.SchemaVersion, et.goType)
}

// typeKey names one version of one event type.
type typeKey struct {
	name    string
	version int
}

// Registry maps Go event types to stable names and schema versions and
// back, and holds the upcasters between versions. Register every version
// and upcaster once at start-up; lookups afterwards take no lock.
//
// Every version of an event has a Go type of its own. The highest version
// registered under a name is its current one, the one appends write;
// older versions are read and upcast to it (Upcast, UpcastMany, Retire,
// Rename; see the package documentation for a worked example).
type Registry struct {
	mu     sync.Mutex // serialises registrations
	t      atomic.Pointer[tables]
	sealer atomic.Pointer[sealerBox] // seal.go; nil: bodies stored as encoded
}

// tables is one generation of a registry's contents. A registration
// replaces it whole; readers load it once per call and never lock.
type tables struct {
	gen     uint64
	byKey   map[typeKey]*EventType
	byType  map[reflect.Type]*EventType
	latest  map[string]*EventType // the highest version registered under each name
	up      map[typeKey]*upcaster // the upcaster from each version that has one
	renames map[string]string     // a stored name → the name it was renamed to
}

func (t *tables) clone() *tables {
	return &tables{
		gen:     t.gen + 1,
		byKey:   maps.Clone(t.byKey),
		byType:  maps.Clone(t.byType),
		latest:  maps.Clone(t.latest),
		up:      maps.Clone(t.up),
		renames: maps.Clone(t.renames),
	}
}

// DefaultRegistry is the registry stores and repositories use when their
// options name none.
var DefaultRegistry = NewRegistry()

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	r := &Registry{}
	r.t.Store(&tables{
		byKey:   map[typeKey]*EventType{},
		byType:  map[reflect.Type]*EventType{},
		latest:  map[string]*EventType{},
		up:      map[typeKey]*upcaster{},
		renames: map[string]string{},
	})
	return r
}

// update runs change on a copy of the registry's tables under the
// registration lock and publishes the copy if change succeeds.
func (r *Registry) update(change func(old, next *tables) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.t.Load()
	next := old.clone()
	if err := change(old, next); err != nil {
		return err
	}
	r.t.Store(next)
	return nil
}

// MaxTypeNameLen bounds event type names; they travel in a header of every event.
const MaxTypeNameLen = 128

// Register registers E, a struct type, as version schemaVersion (1 or
// more) of the event named name. Each (name, version) and each Go type is
// registered once; register every version that may be stored, each with
// its own Go type, and the upcasters between them. Events are raised and
// read as E values, not pointers.
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
	return r.update(func(old, next *tables) error {
		k := et.key()
		if prev, ok := old.byKey[k]; ok {
			return Errorf(CodeInvalidArgument, "register event %q version %d: it is already registered for %v: give %v another version or name",
				name, schemaVersion, prev.goType, t)
		}
		if prev, ok := old.byType[t]; ok {
			return Errorf(CodeInvalidArgument, "register event %v: it is already registered as %q version %d: each version has a Go type of its own",
				t, prev.Name, prev.SchemaVersion)
		}
		if to, ok := old.renames[name]; ok {
			return Errorf(CodeInvalidArgument, "register event %q version %d (%v): %q was renamed to %q: register it under %q",
				name, schemaVersion, t, name, to, to)
		}
		if prev, ok := old.byKey[typeKey{name, schemaVersion - 1}]; ok {
			if u := old.up[prev.key()]; u != nil && u.kind == upcastOne && u.to.Name != name {
				return Errorf(CodeInvalidArgument, "register event %q version %d (%v): version %d upcasts to %s already: a version has one next version",
					name, schemaVersion, t, schemaVersion-1, u.to)
			}
		}
		next.byKey[k] = et
		next.byType[t] = et
		if cur := old.latest[name]; cur == nil || cur.SchemaVersion < schemaVersion {
			next.latest[name] = et
		}
		return nil
	})
}

// MustRegister is Register for package initialisation: it panics on error.
func MustRegister[E any](r *Registry, name string, schemaVersion int) {
	if err := Register[E](r, name, schemaVersion); err != nil {
		panic(err)
	}
}

// TypeOf returns the registration of event's Go type: its own name and
// version, current or not.
func (r *Registry) TypeOf(event any) (*EventType, error) {
	// reflect.TypeOf only reads the interface's type word; it walks nothing.
	t := reflect.TypeOf(event)
	byType := r.t.Load().byType
	if et, ok := byType[t]; ok {
		return et, nil
	}
	if t != nil && t.Kind() == reflect.Pointer {
		if et, ok := byType[t.Elem()]; ok {
			return nil, Errorf(CodeInvalidArgument, "event %v is a pointer: raise the value (%v) that %q is registered for", t, t.Elem(), et.Name)
		}
	}
	return nil, Errorf(CodeUnknownEventType, "event type %v is not registered: call platform.Register[%v] at start-up", t, t)
}

// Lookup returns the registration of the highest version registered
// under name.
func (r *Registry) Lookup(name string) (*EventType, bool) {
	et, ok := r.t.Load().latest[name]
	return et, ok
}

// LookupVersion returns the registration of one version of a stored type
// name, following renames (Rename).
func (r *Registry) LookupVersion(name string, schemaVersion int) (*EventType, bool) {
	et := r.t.Load().lookup(name, schemaVersion)
	return et, et != nil
}

// maxRenames bounds how many renames a stored name goes through.
const maxRenames = 16

// lookup finds the registration of (name, version), following renames.
func (t *tables) lookup(name string, version int) *EventType {
	if et, ok := t.byKey[typeKey{name, version}]; ok {
		return et
	}
	for range maxRenames {
		to, ok := t.renames[name]
		if !ok {
			return nil
		}
		if et, ok := t.byKey[typeKey{to, version}]; ok {
			return et
		}
		name = to
	}
	return nil
}

// renamedTo follows name's renames to the name it has now.
func (t *tables) renamedTo(name string) string {
	for range maxRenames {
		to, ok := t.renames[name]
		if !ok {
			break
		}
		name = to
	}
	return name
}

// Decode decodes data stored as the current version of type name with
// codec, without upcasting: stores read through DecodeEnvelope, which
// knows the stored version.
func (r *Registry) Decode(c Codec, name string, data []byte) (any, error) {
	t := r.t.Load()
	et := t.latest[t.renamedTo(name)]
	if et == nil {
		return nil, Errorf(CodeUnknownEventType, "event type %q is not registered in this process: register it (platform.Register) before reading", name)
	}
	if p := t.pathOf(et); p.err != nil || p.end != EndCurrent || len(p.steps) > 0 {
		return nil, Errorf(CodeUnknownEventType, "event type %q has no current version (%s reads as %s): decode it with DecodeEnvelope and its stored version",
			name, et, p.describe())
	}
	v, err := et.decode(c, data)
	if err != nil {
		return nil, Errorf(CodeCorruptEvent, "decode %q with %s: %w", name, c.Name(), err)
	}
	return v, nil
}

// current returns nil if et is the current version of its event, the one
// appends write, and otherwise an error naming the current one.
func (r *Registry) current(et *EventType) error {
	t := r.t.Load()
	p := t.pathOf(et)
	switch {
	case p.err != nil:
		return Errorf(CodeInvalidArgument, "event %s is not the current version of its type, and %v", et, p.err)
	case p.end == EndCurrent && len(p.steps) == 0:
		return nil
	case p.end == EndCurrent:
		return Errorf(CodeInvalidArgument, "event %s is an old version: appends write the current one, %s: raise a %v",
			et, p.last, p.last.goType)
	case p.end == EndRetired:
		return Errorf(CodeInvalidArgument, "event %s is retired (platform.Retire): it is only read, never appended", et)
	}
	return Errorf(CodeInvalidArgument, "event %s is split into other events on read (platform.UpcastMany): raise those instead", et)
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
