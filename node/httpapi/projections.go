package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"slices"

	"github.com/lexigram/events/platform"
)

// projection serves GET /api/projections/{name}: one projection's status.
func (a *api) projection(w http.ResponseWriter, r *http.Request) {
	if !a.knownProjection(w, r) {
		return
	}
	s, err := a.n.Projections().Status(r.Context(), r.PathValue("name"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, r, projectionOf(s))
}

// projectionAction serves POST /api/projections/{name}/{action}: rebuild
// (answers 202 at once; the progress is in the status's rebuild), pause
// (stops it after the batch in hand, checkpoint saved, lease released)
// and resume. Each is logged with who asked.
func (a *api) projectionAction(w http.ResponseWriter, r *http.Request) {
	name, action := r.PathValue("name"), r.PathValue("action")
	m := a.n.Projections()
	if !a.knownProjection(w, r) {
		return
	}
	a.opts.Logger.Info("httpapi: projection "+action, "projection", name, "by", requester(r))
	var err error
	status := http.StatusOK
	switch action {
	case "rebuild":
		_, err = m.Rebuild(context.WithoutCancel(r.Context()), name)
		status = http.StatusAccepted
	case "pause":
		err = m.Stop(r.Context(), name)
	case "resume":
		// The projection runs until the next pause or the node's shutdown,
		// not until this request ends.
		err = m.Start(context.WithoutCancel(r.Context()), name)
	default:
		writeProblem(w, r, &problem{Status: http.StatusNotFound, Detail: "no projection action " + action, Fix: "use rebuild, pause or resume"})
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	s, err := m.Status(r.Context(), name)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if status != http.StatusOK {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
	}
	writeJSON(w, r, projectionOf(s))
}

// knownProjection answers 404 for a projection the node does not run.
func (a *api) knownProjection(w http.ResponseWriter, r *http.Request) bool {
	name := r.PathValue("name")
	names := a.n.Projections().Names()
	if slices.Contains(names, name) {
		return true
	}
	writeProblem(w, r, &problem{Status: http.StatusNotFound, Code: platform.CodeInvalidArgument, Field: "name",
		Detail: fmt.Sprintf("the node runs no projection %q", name), Fix: fmt.Sprintf("use one of %q (GET /api/projections lists them)", names)})
	return false
}

// requester names who made a request, for the log: the remote address
// (the token itself is never logged).
func requester(r *http.Request) string {
	if r.Header.Get("Authorization") != "" {
		return "token holder at " + r.RemoteAddr
	}
	return r.RemoteAddr
}
