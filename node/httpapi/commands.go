package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/lexigram/events/handlers"
	"github.com/lexigram/events/platform"
)

// maxIdempotencyKey bounds the Idempotency-Key header.
const maxIdempotencyKey = 256

// command serves POST /api/commands/{type}.
func (a *api) command(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("type")
	et, p := a.lookup(name, "command")
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	cmd, p := decodeBody(w, r, et, a.opts.MaxBodyBytes)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	ctx := r.Context()
	if key := r.Header.Get("Idempotency-Key"); key != "" {
		if len(key) > maxIdempotencyKey {
			writeProblem(w, r, &problem{Status: http.StatusBadRequest, Code: platform.CodeInvalidArgument, Field: "Idempotency-Key",
				Detail: fmt.Sprintf("the Idempotency-Key header has %d bytes, more than %d", len(key), maxIdempotencyKey), Fix: "send a shorter key, e.g. a UUID"})
			return
		}
		ctx = handlers.WithIdempotencyKey(ctx, key)
	}
	res, err := a.n.Commands().Dispatch(ctx, cmd)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, r, resultToJSON(res))
}

// lookup finds a registered type by name.
func (a *api) lookup(name, kind string) (*platform.EventType, *problem) {
	et, ok := a.opts.Registry.Lookup(name)
	if !ok {
		return nil, &problem{Status: http.StatusNotFound, Code: platform.CodeUnknownEventType, Field: "type",
			Detail: fmt.Sprintf("%s type %q is not registered on this node", kind, name),
			Fix:    "use a registered type name (GET /api/openapi.json lists the documented ones), or register it with platform.Register"}
	}
	return et, nil
}

// decodeBody decodes the JSON body into a new value of et's Go type.
func decodeBody(w http.ResponseWriter, r *http.Request, et *platform.EventType, limit int64) (any, *problem) {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return nil, &problem{Status: http.StatusUnsupportedMediaType, Code: platform.CodeInvalidArgument, Field: "Content-Type",
			Detail: fmt.Sprintf("the body is %q, not JSON", ct), Fix: "send the command as a JSON object with Content-Type: application/json"}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, &problem{Status: http.StatusRequestEntityTooLarge, Code: platform.CodeInvalidArgument, Field: "body",
			Detail: fmt.Sprintf("the body is larger than the limit of %d bytes", tooBig.Limit), Fix: "send a smaller command, or raise the node's body limit"}
	case err != nil:
		return nil, badRequest("body", "read the body: "+err.Error(), "send the whole body")
	}
	v := reflect.New(et.GoType())
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v.Interface()); err != nil {
		return nil, jsonProblem(err, body, et)
	}
	if dec.More() {
		return nil, badRequest("body", "the body holds more than one JSON value", "send one JSON object")
	}
	return v.Elem().Interface(), nil
}

// jsonProblem explains a JSON decoding error: where, which field, and
// what type it wants.
func jsonProblem(err error, body []byte, et *platform.EventType) *problem {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		line, col := lineCol(body, syn.Offset)
		return badRequest("body", fmt.Sprintf("the body is not valid JSON at line %d, column %d: %v", line, col, syn), "send a JSON object of the type's fields")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("body", "the body ends in the middle of a JSON value", "send a complete JSON object")
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return badRequest("body", fmt.Sprintf("the body is a JSON %s; %s takes an object", typ.Value, et.Name), "send a JSON object of the type's fields")
		}
		return badRequest(field, fmt.Sprintf("field %q is a JSON %s; it takes a %s", field, typ.Value, jsonKind(typ.Type)),
			fmt.Sprintf("send %q as a %s", field, jsonKind(typ.Type)))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		return badRequest(field, fmt.Sprintf("%s has no field %q", et.Name, field), "remove it, or check its spelling against GET /api/openapi.json")
	}
	return badRequest("body", "decode the body: "+err.Error(), "send a JSON object of the type's fields")
}

func lineCol(b []byte, off int64) (line, col int) {
	line, col = 1, 1
	for i := int64(0); i < off && i < int64(len(b)); i++ {
		if b[i] == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

// jsonKind names a Go type's JSON form for people.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return "base64 string"
		}
		return "array"
	case reflect.Map:
		return "object"
	case reflect.Struct:
		if t == timeType {
			return "RFC 3339 time string"
		}
		return "object"
	}
	return t.String()
}
