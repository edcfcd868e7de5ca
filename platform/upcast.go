package platform

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// How an upcaster turns one stored version into what follows it.
type upcastKind uint8

const (
	upcastOne    upcastKind = iota + 1 // one event of the next version
	upcastMany                         // any number of events of any registered types
	upcastRetire                       // nothing
)

// upcaster is the registered way out of one version.
type upcaster struct {
	kind upcastKind
	from *EventType
	to   *EventType        // upcastOne
	one  func(v any) any   // upcastOne
	many func(v any) []any // upcastMany
	desc string            // for errors: what the upcaster is
}

func (u *upcaster) String() string { return u.desc }

// Upcast registers fn as the upcaster from From's version to To's: one
// stored event of From reads as one event of To. To must be the next
// version, From's plus one, usually under the same name (a field renamed,
// a default added); under another name it renames the event from that
// version on (the old name's older versions keep their chain). Both types
// must be registered first. Upcasters compose: with v1 → v2 and v2 → v3,
// a stored v1 event reads as v3.
func Upcast[From, To any](r *Registry, fn func(From) To) error {
	ft, tt := reflect.TypeFor[From](), reflect.TypeFor[To]()
	what := fmt.Sprintf("upcast %v to %v", ft, tt)
	if fn == nil {
		return Errorf(CodeInvalidArgument, "%s: the upcaster func is nil: pass one", what)
	}
	return r.update(func(old, next *tables) error {
		from, err := registeredFor(old, what, ft)
		if err != nil {
			return err
		}
		to, err := registeredFor(old, what, tt)
		if err != nil {
			return err
		}
		what = fmt.Sprintf("upcast %s to %s", from, to)
		if to.SchemaVersion != from.SchemaVersion+1 {
			return Errorf(CodeInvalidArgument, "%s: an upcaster goes to the next version, %d, not %d: register version %d and upcast one version at a time (upcasters compose)",
				what, from.SchemaVersion+1, to.SchemaVersion, from.SchemaVersion+1)
		}
		if to.Name != from.Name {
			if same, ok := old.byKey[typeKey{from.Name, to.SchemaVersion}]; ok {
				return Errorf(CodeInvalidArgument, "%s: %s is registered: upcast to it, or rename the event from its last version on", what, same)
			}
		}
		if err := checkNoUpcaster(old, what, from); err != nil {
			return err
		}
		next.up[from.key()] = &upcaster{kind: upcastOne, from: from, to: to, one: func(v any) any { return fn(v.(From)) },
			desc: fmt.Sprintf("platform.Upcast to %s", to)}
		return nil
	})
}

// UpcastMany registers fn as the upcaster from From's version: one stored
// event of From reads as the events fn returns, in order, none or several
// (an event split in two). Each returned event must be of a registered
// type; an old version goes on along its own upcasters, so a split keeps
// working when one of its products gets a new version later. Nothing
// that appends may raise From any more.
func UpcastMany[From any](r *Registry, fn func(From) []any) error {
	ft := reflect.TypeFor[From]()
	what := fmt.Sprintf("upcast %v to many", ft)
	if fn == nil {
		return Errorf(CodeInvalidArgument, "%s: the upcaster func is nil: pass one", what)
	}
	return r.update(func(old, next *tables) error {
		from, err := registeredFor(old, what, ft)
		if err != nil {
			return err
		}
		if err := checkNoUpcaster(old, fmt.Sprintf("upcast %s to many", from), from); err != nil {
			return err
		}
		next.up[from.key()] = &upcaster{kind: upcastMany, from: from, many: func(v any) []any { return fn(v.(From)) },
			desc: "platform.UpcastMany"}
		return nil
	})
}

// Retire makes stored events of From's version read as nothing: readers
// move past them (a repository's version, a projection's position, a
// durable handler's ack) without handing them to anyone. Stores yield a
// marker envelope for each (Envelope.Retired) so that they can.
func Retire[From any](r *Registry) error {
	ft := reflect.TypeFor[From]()
	return r.update(func(old, next *tables) error {
		from, err := registeredFor(old, fmt.Sprintf("retire %v", ft), ft)
		if err != nil {
			return err
		}
		if err := checkNoUpcaster(old, fmt.Sprintf("retire %s", from), from); err != nil {
			return err
		}
		next.up[from.key()] = &upcaster{kind: upcastRetire, from: from, desc: "platform.Retire"}
		return nil
	})
}

// Rename makes events stored under oldName read as the same versions of
// newName: register the Go types of every version under newName and
// rename the old name once. oldName must have no registered versions.
func (r *Registry) Rename(oldName, newName string) error {
	what := fmt.Sprintf("rename %q to %q", oldName, newName)
	for _, n := range []string{oldName, newName} {
		if err := validateTypeName(n); err != nil {
			return Errorf(CodeInvalidArgument, "%s: %w", what, err)
		}
	}
	if oldName == newName {
		return Errorf(CodeInvalidArgument, "%s: the names are the same: name the stored one and the new one", what)
	}
	return r.update(func(old, next *tables) error {
		if et := old.latest[oldName]; et != nil {
			return Errorf(CodeInvalidArgument, "%s: %s is registered: register every version under %q instead, then rename", what, et, newName)
		}
		if to, ok := old.renames[oldName]; ok {
			return Errorf(CodeInvalidArgument, "%s: %q is already renamed to %q: a name is renamed once", what, oldName, to)
		}
		if old.renamedTo(newName) == oldName {
			return Errorf(CodeInvalidArgument, "%s: %q is renamed to %q already, directly or through others: that would be a cycle", what, newName, oldName)
		}
		next.renames[oldName] = newName
		return nil
	})
}

// MustUpcast is Upcast for package initialisation: it panics on error.
func MustUpcast[From, To any](r *Registry, fn func(From) To) {
	if err := Upcast(r, fn); err != nil {
		panic(err)
	}
}

// MustUpcastMany is UpcastMany for package initialisation: it panics on error.
func MustUpcastMany[From any](r *Registry, fn func(From) []any) {
	if err := UpcastMany(r, fn); err != nil {
		panic(err)
	}
}

// MustRetire is Retire for package initialisation: it panics on error.
func MustRetire[From any](r *Registry) {
	if err := Retire[From](r); err != nil {
		panic(err)
	}
}

func registeredFor(t *tables, what string, gt reflect.Type) (*EventType, error) {
	if et, ok := t.byType[gt]; ok {
		return et, nil
	}
	return nil, Errorf(CodeInvalidArgument, "%s: %v is not registered: register every version first (platform.Register[%v]), then the upcasters", what, gt, gt)
}

func checkNoUpcaster(t *tables, what string, from *EventType) error {
	if u := t.up[from.key()]; u != nil {
		return Errorf(CodeInvalidArgument, "%s: the version has an upcaster already (%s): one upcaster per version", what, u)
	}
	return nil
}

// Ending says how events of one stored version end up when read.
type Ending uint8

const (
	// EndCurrent: as one event of the current version of their type.
	EndCurrent Ending = iota
	// EndSplit: split by an UpcastMany into events that go on along their
	// own types' upcasters.
	EndSplit
	// EndRetired: as nothing.
	EndRetired
)

func (e Ending) String() string {
	switch e {
	case EndCurrent:
		return "current"
	case EndSplit:
		return "split"
	case EndRetired:
		return "retired"
	}
	return fmt.Sprintf("Ending(%d)", e)
}

// Resolution says how events stored as one type name and schema version
// read.
type Resolution struct {
	// Path is every registration the events go through, the stored
	// version (under its new name if it was renamed) first, then one for
	// each one-to-one upcaster. Read only: it is shared.
	Path []*EventType
	// End is how the last of Path reads.
	End Ending
}

// Last is the registration the one-to-one upcasters end at: the current
// version for EndCurrent, the version split or retired otherwise.
func (r Resolution) Last() *EventType { return r.Path[len(r.Path)-1] }

// Resolve says how events stored as (name, schemaVersion) read, or why
// they cannot: the version is not registered, or it is not current and
// has no upcaster on the way to the current one. The events an UpcastMany
// returns are known only when it runs; Resolve does not follow them.
func (r *Registry) Resolve(name string, schemaVersion int) (Resolution, error) {
	t := r.t.Load()
	et := t.lookup(name, schemaVersion)
	if et == nil {
		return Resolution{}, t.unknown(name, schemaVersion)
	}
	p := t.pathOf(et)
	if p.err != nil {
		return Resolution{}, p.err
	}
	return p.res, nil
}

// Check resolves every registered version and renamed name and returns
// what cannot be read, every problem joined: a version that is not current
// and has no upcaster, a name renamed to one with nothing registered.
// Call it at start-up after the registrations; reading finds the same
// problems, but only when such an event comes.
func (r *Registry) Check() error {
	t := r.t.Load()
	var errs []error
	keys := make([]typeKey, 0, len(t.byKey))
	for k := range t.byKey {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b typeKey) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		return a.version - b.version
	})
	for _, k := range keys {
		if p := t.pathOf(t.byKey[k]); p.err != nil {
			errs = append(errs, p.err)
		}
	}
	olds := slices.Sorted(func(yield func(string) bool) {
		for k := range t.renames {
			if !yield(k) {
				return
			}
		}
	})
	for _, old := range olds {
		if to := t.renamedTo(old); t.latest[to] == nil {
			errs = append(errs, Errorf(CodeUnknownEventType, "event type %q is renamed to %q, which has no registered version: register its versions under %q", old, to, to))
		}
	}
	return errors.Join(errs...)
}

// path is how events of one registered version read, resolved once per
// generation of the registry: the one-to-one upcasters in order, then how
// the last version reached reads.
type path struct {
	gen   uint64
	steps []func(any) any
	last  *EventType
	end   Ending
	many  func(any) []any // EndSplit
	res   Resolution
	err   error // no way to the current version
}

func (p *path) describe() string {
	if p.err != nil {
		return "nothing readable"
	}
	switch p.end {
	case EndSplit:
		return fmt.Sprintf("the events the upcaster of %s returns", p.last)
	case EndRetired:
		return "nothing (retired)"
	}
	return p.last.String()
}

// pathOf returns et's path in t, resolving it if the cached one is of
// another generation. Concurrent readers may each resolve it; they store
// the same answer.
func (t *tables) pathOf(et *EventType) *path {
	if p := et.path.Load(); p != nil && p.gen == t.gen {
		return p
	}
	p := t.resolve(et)
	et.path.Store(p)
	return p
}

func (t *tables) resolve(et *EventType) *path {
	p := &path{gen: t.gen}
	through := []*EventType{et}
	cur := et
	for {
		u := t.up[cur.key()]
		if u == nil {
			if latest := t.latest[cur.Name]; latest != cur {
				via := ""
				if cur != et {
					via = fmt.Sprintf("event %s upcasts to %s, and ", et, cur)
				}
				p.err = Errorf(CodeUnknownEventType, "%sevent %s is not current (%s is) and has no upcaster to version %d: register one (platform.Upcast[%v, …]), or retire the version (platform.Retire[%v])",
					via, cur, latest, cur.SchemaVersion+1, cur.goType, cur.goType)
				return p
			}
			p.end = EndCurrent
			break
		}
		if u.kind == upcastOne {
			p.steps = append(p.steps, u.one)
			cur = u.to
			through = append(through, cur)
			continue
		}
		p.end, p.many = EndSplit, u.many
		if u.kind == upcastRetire {
			p.end = EndRetired
		}
		break
	}
	p.last = cur
	p.res = Resolution{Path: through, End: p.end}
	return p
}

// unknown is the error for a (name, version) the registry does not have.
func (t *tables) unknown(name string, version int) error {
	now := t.renamedTo(name)
	var have []string
	for k := range t.byKey {
		if k.name == now {
			have = append(have, fmt.Sprint(k.version))
		}
	}
	slices.Sort(have)
	switch {
	case len(have) == 0 && now != name:
		return Errorf(CodeUnknownEventType, "event type %q (renamed to %q) version %d is not registered in this process: register it (platform.Register) before reading", name, now, version)
	case len(have) == 0:
		return Errorf(CodeUnknownEventType, "event type %q version %d is not registered in this process: register it (platform.Register) before reading", name, version)
	}
	return Errorf(CodeUnknownEventType, "event type %q version %d is not registered in this process (versions %s are): register it (platform.Register) and its upcaster before reading",
		name, version, strings.Join(have, ", "))
}
