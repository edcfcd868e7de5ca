package httpapi_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/lexigram/events/node/httpapi"
)

// TestOpenAPI: the document is OpenAPI 3.1, every command and query type
// the options list has its path and a schema of its JSON fields, and the
// fixed routes are there.
func TestOpenAPI(t *testing.T) {
	e := start(t, httpapi.Options{})
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
		Comps   struct {
			Schemas map[string]struct {
				Type       any                        `json:"type"`
				Properties map[string]json.RawMessage `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	e.do(t, "GET", "/api/openapi.json", "").ok(t, &doc)
	if doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi %q", doc.OpenAPI)
	}
	types := map[string]struct {
		method string
		goType reflect.Type
	}{
		"/api/commands/test.open-account": {"post", reflect.TypeFor[OpenAccount]()},
		"/api/commands/test.deposit":      {"post", reflect.TypeFor[Deposit]()},
		"/api/queries/test.get-balance":   {"get", reflect.TypeFor[GetBalance]()},
	}
	for path, want := range types {
		op, ok := doc.Paths[path][want.method]
		if !ok {
			t.Fatalf("no %s %s in %v", want.method, path, keys(doc.Paths))
		}
		name := path[strings.LastIndexByte(path, '/')+1:]
		s, ok := doc.Comps.Schemas[name]
		if !ok {
			t.Fatalf("no schema %s", name)
		}
		var fields []string
		for i := range want.goType.NumField() {
			f := want.goType.Field(i)
			fields = append(fields, strings.Split(f.Tag.Get("json"), ",")[0])
		}
		if got := keys(s.Properties); !slices.Equal(got, sorted(fields)) {
			t.Fatalf("schema %s has %v, want %v", name, got, sorted(fields))
		}
		if !strings.Contains(string(op), "#/components/schemas/"+name) && want.method == "post" {
			t.Fatalf("%s does not reference its schema: %s", path, op)
		}
	}
	var q struct {
		Parameters []struct{ Name string } `json:"parameters"`
	}
	if err := json.Unmarshal(doc.Paths["/api/queries/test.get-balance"]["get"], &q); err != nil {
		t.Fatal(err)
	}
	var params []string
	for _, p := range q.Parameters {
		params = append(params, p.Name)
	}
	if want := []string{httpapi.TenantHeader, "account", "min", "since", "tags", "wait-for", "wait-for-projection"}; !slices.Equal(sorted(params), want) {
		t.Fatalf("query parameters %v, want %v", sorted(params), want)
	}
	for _, p := range []string{"/api/aggregates/{type}/{id}/events", "/api/streams", "/api/projections", "/api/sagas", "/api/dlq", "/api/stream"} {
		if _, ok := doc.Paths[p]["get"]; !ok {
			t.Fatalf("no GET %s", p)
		}
	}
	if b := doc.Comps.Schemas["Balance"]; len(b.Properties) != 3 {
		t.Fatalf("the query's result schema: %+v", b)
	}
}

// TestOpenAPITenant: the routes served per tenant describe the tenant
// header, required when the node requires a tenant; the node-wide
// listings do not take it and say they answer 403.
func TestOpenAPITenant(t *testing.T) {
	for _, require := range []bool{false, true} {
		e := start(t, httpapi.Options{RequireTenant: require})
		var doc struct {
			Paths map[string]map[string]struct {
				Parameters []struct {
					Name     string `json:"name"`
					In       string `json:"in"`
					Required bool   `json:"required"`
				} `json:"parameters"`
				Responses map[string]json.RawMessage `json:"responses"`
			} `json:"paths"`
		}
		e.do(t, "GET", "/api/openapi.json", "").ok(t, &doc)
		for path, method := range map[string]string{"/api/commands/test.deposit": "post", "/api/queries/test.get-balance": "get",
			"/api/aggregates/{type}/{id}/events": "get", "/api/stream": "get", "/api/streams": "get", "/api/sagas": "get"} {
			op := doc.Paths[path][method]
			found, required := false, false
			for _, p := range op.Parameters {
				if p.Name == httpapi.TenantHeader && p.In == "header" {
					found, required = true, p.Required
				}
			}
			perTenant := path != "/api/streams" && path != "/api/sagas"
			if found != perTenant || required != (perTenant && require) {
				t.Fatalf("RequireTenant %v: %s %s: tenant header described %v, required %v; want %v, %v", require, method, path, found, required, perTenant, perTenant && require)
			}
			if _, ok := op.Responses["403"]; !ok && path != "/api/commands/test.deposit" {
				t.Fatalf("%s %s: no 403 response (a tenant the route cannot serve)", method, path)
			}
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return sorted(out)
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }
