package httpapi

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/lexigram/events/platform"
)

// Page sizes of the listings.
const (
	defaultLimit = 100
	maxLimit     = 1000
)

// historyJSON is one page of an aggregate's history.
type historyJSON struct {
	Aggregate aggregateJSON  `json:"aggregate"`
	Events    []envelopeJSON `json:"events"`
	// Next is the after parameter of the next page; 0: this is the last.
	Next uint64 `json:"next,omitempty"`
}

// aggregateEvents serves GET /api/aggregates/{type}/{id}/events.
func (a *api) aggregateEvents(w http.ResponseWriter, r *http.Request) {
	stream := platform.StreamID{Type: r.PathValue("type"), ID: r.PathValue("id")}
	if err := stream.Validate(); err != nil {
		writeProblem(w, r, badRequest("id", err.Error(), "name the aggregate as /api/aggregates/<type>/<id>/events"))
		return
	}
	params := r.URL.Query()
	after, p := uintParam(params.Get("after"), "after", 0, "the version after which to list, e.g. after=100 (the next of the previous page)")
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	limit, p := limitParam(params.Get("limit"))
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	store, err := a.storeOf(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := historyJSON{Aggregate: aggregateJSON{stream.Type, stream.ID}, Events: []envelopeJSON{}}
	for e, err := range store.Read(r.Context(), stream, platform.Revision{Version: after}) {
		if err != nil && !platform.IsDecodeError(err) {
			a.fail(w, r, err)
			return
		}
		if len(out.Events) == limit {
			out.Next = out.Events[len(out.Events)-1].Version
			break
		}
		if err != nil {
			out.Events = append(out.Events, undecodable(err))
			continue
		}
		out.Events = append(out.Events, toJSON(e))
	}
	if len(out.Events) == 0 && after == 0 {
		writeProblem(w, r, &problem{Status: http.StatusNotFound, Code: platform.CodeStreamNotFound, Field: "id",
			Detail: fmt.Sprintf("aggregate %s has no events", stream), Fix: "check the aggregate type and ID"})
		return
	}
	writeJSON(w, r, out)
}

// uintParam parses an optional non-negative integer parameter.
func uintParam(raw, name string, def uint64, fix string) (uint64, *problem) {
	if raw == "" {
		return def, nil
	}
	n, err := strconv.ParseUint(raw, 10, 64)
	if err != nil {
		return 0, badRequest(name, fmt.Sprintf("%s=%q is not a non-negative integer", name, raw), "give "+fix)
	}
	return n, nil
}

// limitParam parses a page size: 1 to maxLimit, defaultLimit when absent.
func limitParam(raw string) (int, *problem) {
	n, p := uintParam(raw, "limit", defaultLimit, fmt.Sprintf("a page size from 1 to %d", maxLimit))
	if p != nil {
		return 0, p
	}
	if n < 1 || n > maxLimit {
		return 0, badRequest("limit", fmt.Sprintf("limit=%d is out of range", n), fmt.Sprintf("give a page size from 1 to %d", maxLimit))
	}
	return int(n), nil
}
