package httpapi

import (
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/lexigram/events/node"
	"github.com/lexigram/events/platform"
)

// Options configure Handler. The zero value works: no token, loopback,
// 1 MiB bodies.
type Options struct {
	// Token is the bearer token every /api route requires; "": none
	// (then a Public API refuses every request).
	Token string
	// Public says the listener is not on a loopback address, so the API
	// must not be open without a token. IsLoopback tells from an address.
	Public bool
	// MaxBodyBytes bounds a request body. 0: 1 MiB.
	MaxBodyBytes int64
	// WaitTimeout bounds a query's wait-for. 0: 10s.
	WaitTimeout time.Duration
	// Registry decodes command and query types by name. nil: the node's
	// store registry.
	Registry *platform.Registry
	// Commands and Queries are the types the OpenAPI document describes
	// (made with Command and Query). They do not limit what is served.
	Commands []Type
	Queries  []Type
	// StreamBuffer is how many events a WebSocket client may have queued
	// before it counts as slow. 0: 256.
	StreamBuffer int
	// SlowClientTimeout is how long a WebSocket client's buffer may stay
	// full, or one write may block, before the client is cut off. 0: 5s.
	SlowClientTimeout time.Duration
	// Logger logs what goes wrong on the node's side. nil: the node's.
	Logger *slog.Logger
	// WrongTokens counts wrong tokens by remote address and refuses an
	// address that gave too many (429); give the dashboard the same one.
	// nil: its own, 5 within a minute.
	WrongTokens *WrongTokens
	// Tenants gives each tenant's store to the requests naming a tenant
	// (the Lexigram-Tenant header, tenant.go); nil: they are refused
	// where they read the store. RequireTenant refuses a request to a
	// per-tenant route that names none.
	Tenants       Tenants
	RequireTenant bool

	onSlow func() // tests: a WebSocket client was found slow
}

func (o Options) withDefaults(n *node.Node) Options {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 1 << 20
	}
	if o.WaitTimeout <= 0 {
		o.WaitTimeout = 10 * time.Second
	}
	if o.Registry == nil {
		o.Registry = n.Store().Registry()
	}
	if o.WrongTokens == nil {
		o.WrongTokens = NewWrongTokens(0, 0)
	}
	if o.StreamBuffer <= 0 {
		o.StreamBuffer = 256
	}
	if o.SlowClientTimeout <= 0 {
		o.SlowClientTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = n.Logger()
	}
	return o
}

// Type is a command or query type for the OpenAPI document.
type Type struct {
	body   reflect.Type
	result reflect.Type // a query's result; nil for a command
}

// Command describes command type C (registered in the registry).
func Command[C any]() Type { return Type{body: reflect.TypeFor[C]()} }

// Query describes query type Q, whose handler returns an R.
func Query[Q, R any]() Type { return Type{body: reflect.TypeFor[Q](), result: reflect.TypeFor[R]()} }

// IsLoopback reports whether a listen address (host:port) accepts only
// loopback connections: an empty or unspecified host listens everywhere.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// api is the handler's state.
type api struct {
	n    *node.Node
	opts Options
}

// Handler returns the API of n, routes under /api (see the package
// documentation). Mount it at "/api/".
func Handler(n *node.Node, opts Options) http.Handler {
	a := &api{n: n, opts: opts.withDefaults(n)}
	if a.opts.Public && a.opts.Token == "" {
		a.opts.Logger.Warn("httpapi: the listener is not on loopback and no token is set: every /api request is refused; set http.token (LEXIGRAM_HTTP_TOKEN)")
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/commands/{type}", a.command)
	mux.HandleFunc("GET /api/queries/{type}", a.query)
	mux.HandleFunc("GET /api/aggregates/{type}/{id}/events", a.aggregateEvents)
	mux.HandleFunc("GET /api/streams", a.streams)
	mux.HandleFunc("GET /api/projections", a.projections)
	mux.HandleFunc("GET /api/projections/{name}", a.projection)
	mux.HandleFunc("POST /api/projections/{name}/{action}", a.projectionAction)
	mux.HandleFunc("GET /api/sagas", a.sagas)
	mux.HandleFunc("GET /api/dlq", a.dlq)
	mux.HandleFunc("GET /api/stream", a.stream)
	mux.HandleFunc("GET /api/openapi.json", a.openAPI)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, &problem{Status: http.StatusNotFound, Code: platform.CodeInvalidArgument,
			Detail: "no API route " + r.Method + " " + r.URL.Path, Fix: "see GET /api/openapi.json for the routes"})
	})
	return a.authorize(a.tenanted(methodProblems(mux)))
}

// methodProblems turns the mux's plain-text 405 into a problem.
func methodProblems(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern == "" || pattern == "/api/" {
			if allow := methodsFor(mux, r); allow != "" {
				w.Header().Set("Allow", allow)
				writeProblem(w, r, &problem{Status: http.StatusMethodNotAllowed, Code: platform.CodeInvalidArgument,
					Detail: r.Method + " " + r.URL.Path + " is not allowed", Fix: "use " + allow})
				return
			}
		}
		mux.ServeHTTP(w, r)
	})
}

// methodsFor lists the methods the mux has for r's path.
func methodsFor(mux *http.ServeMux, r *http.Request) string {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		if m == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, p := mux.Handler(probe); p != "" && p != "/api/" {
			allow = append(allow, m)
		}
	}
	return strings.Join(allow, ", ")
}
