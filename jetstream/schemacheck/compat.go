package schemacheck

import (
	"cmp"
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/lexigram/events/platform"
)

// backward checks that each current version N > 1 the stream's events
// read as has a version N-1 with an upcaster. The round trips of the
// stored N-1 events ran during the scan.
func (s *scan) backward() {
	for _, st := range s.stats {
		if st.resErr == nil && st.malformed == "" && st.res.End == platform.EndCurrent {
			s.currents[st.res.Last()] = true
		}
	}
	curs := make([]*platform.EventType, 0, len(s.currents))
	for et := range s.currents {
		curs = append(curs, et)
	}
	slices.SortFunc(curs, func(a, b *platform.EventType) int { return cmp.Compare(a.Name, b.Name) })
	for _, cur := range curs {
		if cur.SchemaVersion < 2 {
			continue
		}
		prev, ok := s.reg.LookupVersion(cur.Name, cur.SchemaVersion-1)
		if !ok {
			prev = s.renamedFrom(cur)
		}
		f := Failure{Kind: KindCompatNoUpcaster, Type: cur.Name, SchemaVersion: cur.SchemaVersion}
		switch {
		case prev == nil:
			f.Cause = fmt.Sprintf("version %d of %q is current, and no version %d is registered that upcasts to it: register version %d's Go type (platform.Register) and its upcaster (platform.Upcast to %v)",
				cur.SchemaVersion, cur.Name, cur.SchemaVersion-1, cur.SchemaVersion-1, cur.GoType())
		default:
			if _, err := s.reg.Resolve(prev.Name, prev.SchemaVersion); err != nil {
				f.Cause = fmt.Sprintf("version %d of %q is current, and version %d has no upcaster: %s", cur.SchemaVersion, cur.Name, prev.SchemaVersion, causeOf(err))
			}
		}
		if f.Cause != "" {
			s.rep.FailureCount++
			if len(s.rep.Failures) < s.opts.MaxFailures {
				s.rep.Failures = append(s.rep.Failures, f)
			}
		}
	}
}

// renamedFrom finds a stored version whose one-to-one upcaster goes to
// cur under another name.
func (s *scan) renamedFrom(cur *platform.EventType) *platform.EventType {
	for _, st := range s.stats {
		for i, et := range st.res.Path {
			if et == cur && i > 0 {
				return st.res.Path[i-1]
			}
		}
	}
	return nil
}

// roundTrip encodes ev, an event of the current version et, with c and
// decodes it as that version again; it returns "" if the result equals
// ev, and otherwise what differs.
func roundTrip(reg *platform.Registry, c platform.Codec, et *platform.EventType, ev any) string {
	data, err := c.Marshal(ev)
	if err != nil {
		return fmt.Sprintf("the upcast %s does not encode with %s: %v", et, c.Name(), err)
	}
	back, err := reg.Decode(c, et.Name, data)
	if err != nil {
		return fmt.Sprintf("the upcast %s, encoded with %s, does not decode again: %s", et, c.Name(), causeOf(err))
	}
	if d := diff(reflect.ValueOf(ev), reflect.ValueOf(back), ""); d != "" {
		return fmt.Sprintf("the upcast %s does not round-trip through %s: %s: the upcaster fills what the codec does not keep (an unexported or \"-\" field, or a value it cannot represent)", et, c.Name(), d)
	}
	return ""
}

var timeType = reflect.TypeFor[time.Time]()

// diff returns "" if a and b are equal as the package documentation
// defines it, else the path of the first difference and both values.
func diff(a, b reflect.Value, path string) string {
	at := func() string {
		if path == "" {
			return "the value"
		}
		return "field " + path[1:]
	}
	if !a.IsValid() || !b.IsValid() {
		if a.IsValid() == b.IsValid() {
			return ""
		}
		return fmt.Sprintf("%s: %v is read back as %v", at(), show(a), show(b))
	}
	if a.Type() != b.Type() {
		return fmt.Sprintf("%s: a %v is read back as a %v", at(), a.Type(), b.Type())
	}
	if a.Type() == timeType && a.CanInterface() && b.CanInterface() {
		if !a.Interface().(time.Time).Equal(b.Interface().(time.Time)) {
			return fmt.Sprintf("%s: %v is read back as %v", at(), show(a), show(b))
		}
		return ""
	}
	switch a.Kind() {
	case reflect.Struct:
		for i := range a.NumField() {
			if d := diff(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name); d != "" {
				return d
			}
		}
		return ""
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() || b.IsNil() {
			if a.IsNil() == b.IsNil() {
				return ""
			}
			return fmt.Sprintf("%s: %v is read back as %v", at(), show(a), show(b))
		}
		return diff(a.Elem(), b.Elem(), path)
	case reflect.Slice, reflect.Array:
		if a.Len() != b.Len() {
			return fmt.Sprintf("%s: %d elements are read back as %d", at(), a.Len(), b.Len())
		}
		for i := range a.Len() {
			if d := diff(a.Index(i), b.Index(i), fmt.Sprintf("%s[%d]", path, i)); d != "" {
				return d
			}
		}
		return ""
	case reflect.Map:
		if a.Len() != b.Len() {
			return fmt.Sprintf("%s: %d entries are read back as %d", at(), a.Len(), b.Len())
		}
		for _, k := range a.MapKeys() {
			if d := diff(a.MapIndex(k), b.MapIndex(k), fmt.Sprintf("%s[%v]", path, show(k))); d != "" {
				return d
			}
		}
		return ""
	case reflect.Func, reflect.Chan, reflect.UnsafePointer:
		if a.IsNil() && b.IsNil() {
			return ""
		}
		return fmt.Sprintf("%s: a %v is not data a codec keeps", at(), a.Type())
	case reflect.Float32, reflect.Float64:
		if x, y := a.Float(), b.Float(); x != y && (x == x || y == y) { // NaN equals NaN here
			return fmt.Sprintf("%s: %v is read back as %v", at(), x, y)
		}
		return ""
	}
	if !sameScalar(a, b) {
		return fmt.Sprintf("%s: %v is read back as %v", at(), show(a), show(b))
	}
	return ""
}

func sameScalar(a, b reflect.Value) bool {
	switch a.Kind() {
	case reflect.Bool:
		return a.Bool() == b.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return a.Int() == b.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return a.Uint() == b.Uint()
	case reflect.Complex64, reflect.Complex128:
		return a.Complex() == b.Complex()
	case reflect.String:
		return a.String() == b.String()
	}
	return true
}

// show prints a value, also one of an unexported field.
func show(v reflect.Value) string {
	if !v.IsValid() {
		return "nothing"
	}
	if v.CanInterface() {
		return fmt.Sprintf("%#v", v.Interface())
	}
	switch v.Kind() {
	case reflect.String:
		return fmt.Sprintf("%q", v.String())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return fmt.Sprint(v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return fmt.Sprint(v.Uint())
	case reflect.Bool:
		return fmt.Sprint(v.Bool())
	}
	return v.Type().String()
}
