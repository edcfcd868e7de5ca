package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/lexigram/events/platform"
)

// problem is an RFC 9457 problem details object with the platform's
// extensions: the stable code, the field at fault and the fix.
type problem struct {
	Type     string        `json:"type"`
	Title    string        `json:"title"`
	Status   int           `json:"status"`
	Detail   string        `json:"detail,omitempty"`
	Instance string        `json:"instance,omitempty"`
	Code     platform.Code `json:"code,omitempty"`
	Field    string        `json:"field,omitempty"`
	Fix      string        `json:"fix,omitempty"`
}

// problemType is the type URI of a problem: one per code, else the
// RFC's "about:blank" (the title is the status text).
func problemType(code platform.Code) string {
	if code == "" {
		return "about:blank"
	}
	return "urn:lexigram:error:" + string(code)
}

// writeProblem sends p, filling in what it leaves to the defaults.
func writeProblem(w http.ResponseWriter, r *http.Request, p *problem) {
	if p.Type == "" {
		p.Type = problemType(p.Code)
	}
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
		if s, ok := statusOf[p.Code]; ok && s.status == p.Status {
			p.Title = s.title
		}
	}
	if p.Instance == "" && r != nil {
		p.Instance = r.URL.Path
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// badRequest is a 400 problem about one field (a parameter or a body
// field) of the request.
func badRequest(field, detail, fix string) *problem {
	return &problem{Status: http.StatusBadRequest, Code: platform.CodeInvalidArgument, Field: field, Detail: detail, Fix: fix}
}

// failure turns an error from the node into a problem: the status of the
// most specific code in its chain (statusOf), the error's text as the
// detail.
func failure(err error) *problem {
	var p *problem
	if errors.As(err, &p) {
		return p
	}
	code := specificCode(err)
	s, ok := statusOf[code]
	switch {
	case ok:
	case errors.Is(err, context.DeadlineExceeded):
		s = status{http.StatusGatewayTimeout, "Timed out", "retry; the node did not answer in time"}
	default:
		s = status{http.StatusInternalServerError, "Internal error", "see the node's log"}
	}
	return &problem{Status: s.status, Title: s.title, Code: code, Detail: err.Error(), Fix: s.fix}
}

// wrappers are the codes the buses put around a handler's error: a more
// specific code inside says more about what went wrong.
var wrappers = map[platform.Code]bool{
	platform.CodeCommandExecution: true,
	platform.CodeQueryExecution:   true,
	platform.CodeEventHandler:     true,
	platform.CodeSagaExecution:    true,
}

// specificCode is the first code in err's chain that is not a wrapper's,
// else the wrapper's, else "".
func specificCode(err error) platform.Code {
	var first platform.Code
	var walk func(error) platform.Code
	walk = func(err error) platform.Code {
		for err != nil {
			if c, ok := err.(interface{ ErrorCode() platform.Code }); ok {
				code := c.ErrorCode()
				if !wrappers[code] {
					return code
				}
				if first == "" {
					first = code
				}
			}
			if multi, ok := err.(interface{ Unwrap() []error }); ok {
				for _, e := range multi.Unwrap() {
					if code := walk(e); code != "" {
						return code
					}
				}
				return ""
			}
			err = errors.Unwrap(err)
		}
		return ""
	}
	if code := walk(err); code != "" {
		return code
	}
	return first
}

// status is what a code means over HTTP.
type status struct {
	status int
	title  string
	fix    string
}

// statusOf is the one table from platform codes to HTTP statuses. A
// handler's own error (a wrapper code with nothing more specific inside)
// is its refusal of the request: 422.
var statusOf = map[platform.Code]status{
	platform.CodeInvalidArgument:    {http.StatusUnprocessableEntity, "Invalid request", "correct the value the detail names"},
	platform.CodeUnknownEventType:   {http.StatusNotFound, "Unknown type", "use a registered type name; GET /api/openapi.json lists the documented ones"},
	platform.CodeCorruptEvent:       {http.StatusInternalServerError, "Corrupt event", "the stored event does not decode: check the registry's types and upcasters"},
	platform.CodeConcurrency:        {http.StatusConflict, "Concurrency conflict", "the aggregate changed meanwhile: reload it and send the command again"},
	platform.CodeCommandExecution:   {http.StatusUnprocessableEntity, "Command refused", "the handler refused the command: see the detail"},
	platform.CodeQueryExecution:     {http.StatusUnprocessableEntity, "Query refused", "the handler refused the query: see the detail"},
	platform.CodeStreamNotFound:     {http.StatusNotFound, "Not found", "check the aggregate type and ID"},
	platform.CodeEventHandler:       {http.StatusInternalServerError, "Event handler failed", "see the node's log"},
	platform.CodeUnsupported:        {http.StatusNotImplemented, "Unsupported", "the server lacks a feature this needs: see the detail"},
	platform.CodeStoreUnavailable:   {http.StatusServiceUnavailable, "Store unavailable", "retry; the store did not answer in time"},
	platform.CodeConfigConflict:     {http.StatusInternalServerError, "Configuration conflict", "see the detail"},
	platform.CodeNoHandler:          {http.StatusNotFound, "No handler", "check the type name, or register a handler for it"},
	platform.CodeDuplicateHandler:   {http.StatusInternalServerError, "Duplicate handler", "see the detail"},
	platform.CodeHandlerTimeout:     {http.StatusGatewayTimeout, "Handler timed out", "retry, with an Idempotency-Key so that a command is not applied twice"},
	platform.CodeProjectionBuild:    {http.StatusInternalServerError, "Projection failed", "see GET /api/projections"},
	platform.CodeCircuitOpen:        {http.StatusServiceUnavailable, "Circuit open", "retry later; the handler's breaker is open after repeated failures"},
	platform.CodeSagaExecution:      {http.StatusInternalServerError, "Saga failed", "see GET /api/sagas"},
	platform.CodeWebhookDelivery:    {http.StatusBadGateway, "Webhook delivery failed", "see the detail"},
	platform.CodeHandlerPanic:       {http.StatusInternalServerError, "Handler panicked", "see the node's log"},
	platform.CodeCheckpointConflict: {http.StatusConflict, "Checkpoint conflict", "retry"},
	platform.CodeNotLeader:          {http.StatusServiceUnavailable, "Not the leader", "retry, or ask the instance that holds the lease"},
	platform.CodeSagaNotFound:       {http.StatusNotFound, "Saga not found", "check the saga ID"},
	platform.CodeSagaConflict:       {http.StatusConflict, "Saga conflict", "retry"},
	platform.CodeCorruptSaga:        {http.StatusInternalServerError, "Corrupt saga", "see GET /api/sagas"},
	platform.CodeBridgeDelivery:     {http.StatusBadGateway, "Bridge delivery failed", "see the detail"},
	platform.CodeDurability:         {http.StatusServiceUnavailable, "Durability below the floor", "see /healthz and store.require_durability"},
}

// Error makes a *problem an error, so handlers can return one through
// code that returns errors.
func (p *problem) Error() string { return p.Detail }

// fail answers with the problem err is, logging it when the node is at
// fault (5xx). Only the path is logged: query parameters may carry a token.
func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	p := failure(err)
	if p.Status >= 500 && r.Context().Err() == nil {
		a.opts.Logger.Warn("httpapi: request failed", "method", r.Method, "path", r.URL.Path, "status", p.Status, "code", p.Code, "err", err)
	}
	writeProblem(w, r, p)
}
