package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lexigram/events/handlers"
	"github.com/lexigram/events/platform"
)

// The query parameters the API keeps for itself.
const (
	paramWaitFor           = "wait-for"
	paramWaitForProjection = "wait-for-projection"
)

var timeType = reflect.TypeFor[time.Time]()

// query serves GET /api/queries/{type}.
func (a *api) query(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("type")
	et, p := a.lookup(name, "query")
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	params := r.URL.Query()
	q, p := decodeParams(params, et)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	if p := a.waitFor(r.Context(), params, q); p != nil {
		writeProblem(w, r, p)
		return
	}
	res, err := handlers.Ask[any](r.Context(), a.n.Queries(), q)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, r, res)
}

// waitFor holds a query with wait-for until the projections have applied
// the position (see the package documentation).
func (a *api) waitFor(ctx context.Context, params url.Values, q any) *problem {
	raw := params.Get(paramWaitFor)
	if raw == "" {
		return nil
	}
	position, err := strconv.ParseUint(raw, 10, 64)
	if err != nil {
		return badRequest(paramWaitFor, fmt.Sprintf("wait-for %q is not a position", raw), "pass the position of a command's result, e.g. wait-for=42")
	}
	names := params[paramWaitForProjection]
	if len(names) == 0 {
		if cq, ok := q.(handlers.ConsistentQuery); ok {
			if name, _ := cq.ReadAfter(); name != "" {
				names = []string{name}
			}
		}
	}
	if len(names) == 0 {
		names = a.n.Projections().Names()
	}
	known := a.n.Projections().Names()
	for _, name := range names {
		if !slices.Contains(known, name) {
			return &problem{Status: http.StatusNotFound, Code: platform.CodeInvalidArgument, Field: paramWaitForProjection,
				Detail: fmt.Sprintf("projection %q is not registered on this node", name), Fix: "name one of GET /api/projections"}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, a.opts.WaitTimeout)
	defer cancel()
	for _, name := range names {
		if err := a.n.Projections().WaitFor(ctx, name, position); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return &problem{Status: http.StatusGatewayTimeout, Code: platform.CodeQueryExecution, Field: paramWaitFor,
					Detail: fmt.Sprintf("projection %s did not reach position %d within %s", name, position, a.opts.WaitTimeout),
					Fix:    "retry later; GET /api/projections shows how far each projection is"}
			}
			return failure(err)
		}
	}
	return nil
}

// decodeParams builds a value of et's Go type from query parameters: each
// parameter names a field by its JSON name and gives its value as text
// (a repeated parameter, or a comma-separated one, fills a list).
func decodeParams(params url.Values, et *platform.EventType) (any, *problem) {
	t := et.GoType()
	v := reflect.New(t)
	if t.Kind() != reflect.Struct {
		if len(params) > 0 && !onlyReserved(params) {
			return nil, badRequest("", fmt.Sprintf("query %s is a %s, which takes no parameters", et.Name, t), "drop the parameters")
		}
		return v.Elem().Interface(), nil
	}
	fields := jsonFields(t)
	obj := map[string]json.RawMessage{}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if k == paramWaitFor || k == paramWaitForProjection {
			continue
		}
		ft, ok := fields[k]
		if !ok { // encoding/json matches names regardless of case
			for name, t := range fields {
				if strings.EqualFold(name, k) {
					ft, ok = t, true
					break
				}
			}
		}
		if !ok {
			return nil, badRequest(k, fmt.Sprintf("query %s has no field %q", et.Name, k),
				fmt.Sprintf("use the fields' JSON names (%s)", strings.Join(sortedKeys(fields), ", ")))
		}
		raw, err := paramJSON(ft, params[k])
		if err != nil {
			return nil, badRequest(k, fmt.Sprintf("parameter %s=%q: %v", k, strings.Join(params[k], ","), err),
				fmt.Sprintf("give %s as a %s", k, jsonKind(ft)))
		}
		obj[k] = raw
	}
	b, _ := json.Marshal(obj)
	if err := json.Unmarshal(b, v.Interface()); err != nil {
		p := jsonProblem(err, b, et)
		return nil, p
	}
	return v.Elem().Interface(), nil
}

func onlyReserved(params url.Values) bool {
	for k := range params {
		if k != paramWaitFor && k != paramWaitForProjection {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// paramJSON turns a parameter's text values into the JSON of a field of
// type t.
func paramJSON(t reflect.Type, values []string) (json.RawMessage, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) && t.Elem().Kind() != reflect.Uint8 {
		var items []json.RawMessage
		for _, v := range values {
			for part := range strings.SplitSeq(v, ",") {
				raw, err := scalarJSON(t.Elem(), part)
				if err != nil {
					return nil, err
				}
				items = append(items, raw)
			}
		}
		return json.Marshal(items)
	}
	if len(values) != 1 {
		return nil, fmt.Errorf("given %d times; it takes one value", len(values))
	}
	return scalarJSON(t, values[0])
}

func scalarJSON(t reflect.Type, s string) (json.RawMessage, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == timeType:
		if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
			return nil, errors.New("not an RFC 3339 time")
		}
		return json.Marshal(s)
	case reflect.PointerTo(t).Implements(textUnmarshaler):
		return json.Marshal(s)
	}
	switch t.Kind() {
	case reflect.String:
		return json.Marshal(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return nil, errors.New("not true or false")
		}
		return json.Marshal(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, t.Bits())
		if err != nil {
			return nil, fmt.Errorf("not an integer of %d bits", t.Bits())
		}
		return json.Marshal(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(s, 10, t.Bits())
		if err != nil {
			return nil, fmt.Errorf("not a non-negative integer of %d bits", t.Bits())
		}
		return json.Marshal(n)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(s, t.Bits())
		if err != nil {
			return nil, errors.New("not a number")
		}
		return json.Marshal(f)
	}
	// Anything else (objects, maps, byte strings) is given as JSON.
	if !json.Valid([]byte(s)) {
		if t.Kind() == reflect.Slice { // []byte: base64 text
			return json.Marshal(s)
		}
		return nil, errors.New("not JSON")
	}
	return json.RawMessage(s), nil
}

var textUnmarshaler = reflect.TypeFor[interface{ UnmarshalText([]byte) error }]()

// jsonFields maps the JSON names of a struct's fields, as encoding/json
// sees them (tags, embedded structs), to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for _, f := range structFields(t) {
		out[f.name] = f.typ
	}
	return out
}

// field is one JSON field of a struct.
type field struct {
	name      string
	typ       reflect.Type
	omitEmpty bool
}

// structFields lists a struct's JSON fields in order, flattening
// embedded structs the way encoding/json does (shallower names win).
func structFields(t reflect.Type) []field {
	var out []field
	seen := map[string]bool{}
	var walk func(t reflect.Type, depth int)
	walk = func(t reflect.Type, depth int) {
		if depth > 8 {
			return
		}
		var embedded []reflect.Type
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			ft := f.Type
			if f.Anonymous && name == "" {
				et := ft
				if et.Kind() == reflect.Pointer {
					et = et.Elem()
				}
				if et.Kind() == reflect.Struct {
					embedded = append(embedded, et)
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if seen[name] {
				continue
			}
			seen[name] = true
			out = append(out, field{name: name, typ: ft, omitEmpty: strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero")})
		}
		for _, et := range embedded {
			walk(et, depth+1)
		}
	}
	walk(t, 0)
	return out
}
