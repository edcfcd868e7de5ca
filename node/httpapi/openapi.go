package httpapi

import (
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"time"
)

// openAPI serves GET /api/openapi.json.
func (a *api) openAPI(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, r, a.document())
}

// document is the OpenAPI 3.1 document of the API and of the command and
// query types in Options.Commands and Options.Queries.
func (a *api) document() map[string]any {
	g := &schemas{defs: map[string]any{}, names: map[reflect.Type]string{}}
	problemRef := g.of(reflect.TypeFor[problem]())
	problems := func(codes ...string) map[string]any {
		out := map[string]any{}
		for _, c := range codes {
			out[c] = map[string]any{"description": http.StatusText(atoi(c)),
				"content": map[string]any{"application/problem+json": map[string]any{"schema": problemRef}}}
		}
		return out
	}
	ok := func(desc string, schema any, codes ...string) map[string]any {
		resp := problems(codes...)
		resp["200"] = map[string]any{"description": desc, "content": map[string]any{"application/json": map[string]any{"schema": schema}}}
		return resp
	}
	param := func(name, in, desc string, schema any, required bool) map[string]any {
		return map[string]any{"name": name, "in": in, "description": desc, "schema": schema, "required": required}
	}
	str, uint64s := map[string]any{"type": "string"}, map[string]any{"type": "integer", "minimum": 0}
	// The tenant, on the routes served per tenant (tenantRoute); the
	// node-wide listings answer 403 to a request that names one.
	tenant := param(TenantHeader, "header", "the tenant the request acts for ("+tenantFix+"); the node-wide listings refuse it with 403",
		map[string]any{"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}, a.opts.RequireTenant)
	paths := map[string]any{}
	resultRef := g.of(reflect.TypeFor[resultJSON]())
	for _, t := range a.opts.Commands {
		et, err := a.opts.Registry.TypeOf(reflect.Zero(t.body).Interface())
		if err != nil {
			continue // not registered: nothing to serve
		}
		paths["/api/commands/"+et.Name] = map[string]any{"post": map[string]any{
			"operationId": "command." + et.Name, "tags": []string{"commands"}, "summary": "Dispatch command " + et.Name,
			"parameters":  []any{tenant, param("Idempotency-Key", "header", "applies the command once per key (with the Idempotency middleware)", str, false)},
			"requestBody": map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": g.named(et.Name, t.body)}}},
			"responses":   ok("what the command changed", resultRef, "400", "401", "404", "409", "413", "422"),
		}}
	}
	for _, t := range a.opts.Queries {
		et, err := a.opts.Registry.TypeOf(reflect.Zero(t.body).Interface())
		if err != nil {
			continue
		}
		params := []any{tenant,
			param(paramWaitFor, "query", "hold the read until projections have applied this position", uint64s, false),
			param(paramWaitForProjection, "query", "the projection wait-for waits for (default: the query's, else all)", str, false),
		}
		if t.body.Kind() == reflect.Struct {
			for _, f := range structFields(t.body) {
				params = append(params, param(f.name, "query", "field "+f.name+" of "+et.Name, g.of(f.typ), false))
			}
		}
		var result any = map[string]any{}
		if t.result != nil {
			result = g.of(t.result)
		}
		paths["/api/queries/"+et.Name] = map[string]any{"get": map[string]any{
			"operationId": "query." + et.Name, "tags": []string{"queries"}, "summary": "Run query " + et.Name,
			"parameters": params, "responses": ok("the query's result", result, "400", "401", "403", "404", "422", "504"),
		}}
		g.named(et.Name, t.body)
	}
	envRef := g.of(reflect.TypeFor[envelopeJSON]())
	list := func(key string, item any) any {
		return map[string]any{"type": "object", "properties": map[string]any{key: map[string]any{"type": "array", "items": item}}}
	}
	limit := param("limit", "query", "page size, 1 to 1000 (default 100)", uint64s, false)
	paths["/api/aggregates/{type}/{id}/events"] = map[string]any{"get": map[string]any{
		"operationId": "aggregate.events", "tags": []string{"store"}, "summary": "An aggregate's history, paged",
		"parameters": []any{tenant, param("type", "path", "aggregate type", str, true), param("id", "path", "aggregate ID", str, true),
			param("after", "query", "list the versions after this one (a page's next)", uint64s, false), limit},
		"responses": ok("one page of events", g.of(reflect.TypeFor[historyJSON]()), "400", "401", "403", "404"),
	}}
	paths["/api/streams"] = map[string]any{"get": map[string]any{"operationId": "streams", "tags": []string{"operations"},
		"summary": "The account's JetStream streams", "responses": ok("the streams", list("streams", g.of(reflect.TypeFor[streamJSON]())), "401", "403")}}
	paths["/api/projections"] = map[string]any{"get": map[string]any{"operationId": "projections", "tags": []string{"operations"},
		"summary": "Every projection's status", "responses": ok("the projections", list("projections", g.of(reflect.TypeFor[projectionJSON]())), "401", "403")}}
	projection := g.of(reflect.TypeFor[projectionJSON]())
	name := param("name", "path", "the projection's name", str, true)
	paths["/api/projections/{name}"] = map[string]any{"get": map[string]any{"operationId": "projection", "tags": []string{"operations"},
		"summary": "One projection's status", "parameters": []any{name}, "responses": ok("the projection", projection, "401", "403", "404")}}
	actionResponses := ok("the projection's status after the action", projection, "400", "401", "403", "404", "409")
	actionResponses["202"] = map[string]any{"description": "rebuild: started; its progress is the status's rebuild",
		"content": map[string]any{"application/json": map[string]any{"schema": projection}}}
	paths["/api/projections/{name}/{action}"] = map[string]any{"post": map[string]any{"operationId": "projectionAction", "tags": []string{"operations"},
		"summary": "rebuild (202: runs in the background), pause (stops after the batch in hand, checkpoint saved) or resume a projection",
		"parameters": []any{name, map[string]any{"name": "action", "in": "path", "required": true,
			"schema": map[string]any{"type": "string", "enum": []string{"rebuild", "pause", "resume"}}}},
		"responses": actionResponses}}
	paths["/api/sagas"] = map[string]any{"get": map[string]any{"operationId": "sagas", "tags": []string{"operations"}, "summary": "Saga instances, paged by ID",
		"parameters": []any{param("type", "query", "saga type", str, false), param("state", "query", "states (repeat for several)", str, false),
			param("after", "query", "list the instances after this ID (a page's next)", str, false), limit},
		"responses": ok("the instances", map[string]any{"type": "object"}, "400", "401", "403")}}
	paths["/api/dlq"] = map[string]any{"get": map[string]any{"operationId": "dlq", "tags": []string{"operations"}, "summary": "Dead letters",
		"parameters": []any{param("handler", "query", "one durable handler's", str, false), limit},
		"responses":  ok("the dead letters", list("dead_letters", g.of(reflect.TypeFor[dlqJSON]())), "400", "401", "403")}}
	paths["/api/stream"] = map[string]any{"get": map[string]any{"operationId": "stream", "tags": []string{"store"},
		"summary": "WebSocket: the store's events as JSON text messages (" + envRef["$ref"].(string) + ")",
		"parameters": []any{param("aggregate_type", "query", "one aggregate type (default any)", str, false),
			param("aggregate_id", "query", "one aggregate ID (default any)", str, false),
			param("event_type", "query", "event types, comma-separated (default all)", str, false),
			param("from", "query", "send the events after this position (default: new events only)", uint64s, false),
			param("token", "query", "the bearer token, for browsers", str, false),
			tenant, param(tenantParam, "query", "the tenant, for browsers (which cannot set a WebSocket's headers)", str, false)},
		"responses": map[string]any{"101": map[string]any{"description": "switching to WebSocket"},
			"400": problems("400")["400"], "401": problems("401")["401"], "403": problems("403")["403"]}}}
	return map[string]any{
		"openapi": "3.1.0",
		"info":    map[string]any{"title": "lexigram node API", "version": "1"},
		"paths":   paths,
		"components": map[string]any{"schemas": g.defs,
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}}},
		"security": []any{map[string]any{"bearer": []string{}}},
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// schemas makes JSON schemas (2020-12, as OpenAPI 3.1 uses) of Go types,
// as encoding/json encodes them; named struct types go to the
// components and are referenced.
type schemas struct {
	defs  map[string]any
	names map[reflect.Type]string
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	rawType      = reflect.TypeFor[json.RawMessage]()
	marshaler    = reflect.TypeFor[json.Marshaler]()
	ownPackage   = reflect.TypeFor[api]().PkgPath()
	nonName      = regexp.MustCompile(`[^A-Za-z0-9._-]`)
)

// named puts t's schema in the components under name (a registered
// type's name) and returns a reference to it.
func (g *schemas) named(name string, t reflect.Type) map[string]any {
	if _, ok := g.defs[name]; !ok {
		g.defs[name] = map[string]any{} // stops recursion
		g.defs[name] = g.inline(t)
	}
	return map[string]any{"$ref": "#/components/schemas/" + name}
}

// of returns t's schema: a reference for a named struct, else inline.
func (g *schemas) of(t reflect.Type) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() == reflect.Struct && t.Name() != "" && t != timeType && !t.Implements(marshaler) {
		name, ok := g.names[t]
		if !ok {
			name = nonName.ReplaceAllString(t.Name(), "_")
			if t.PkgPath() == ownPackage { // the API's own forms: envelopeJSON → Envelope
				name = strings.ToUpper(name[:1]) + strings.TrimSuffix(name[1:], "JSON")
			}
			if _, taken := g.defs[name]; taken {
				name = nonName.ReplaceAllString(t.PkgPath()+"."+t.Name(), "_")
			}
			g.names[t] = name
		}
		return g.named(name, t)
	}
	return g.inline(t)
}

func (g *schemas) inline(t reflect.Type) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t == durationType:
		return map[string]any{"type": "integer", "description": "nanoseconds"}
	case t == rawType, t.Implements(marshaler), reflect.PointerTo(t).Implements(marshaler):
		return map[string]any{}
	case reflect.PointerTo(t).Implements(textUnmarshaler):
		return map[string]any{"type": "string"}
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return map[string]any{"type": "integer"}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer", "minimum": 0}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "contentEncoding": "base64"}
		}
		return map[string]any{"type": []string{"array", "null"}, "items": g.of(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.of(t.Elem())}
	case reflect.Struct:
		props := map[string]any{}
		for _, f := range structFields(t) {
			props[f.name] = g.of(f.typ)
		}
		return map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	}
	return map[string]any{} // interfaces: any JSON value
}
