package httpapi

import (
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/projections"
	"github.com/lexigram/events/sagas"
)

// streamJSON is one JetStream stream of the account.
type streamJSON struct {
	Name       string    `json:"name"`
	Events     bool      `json:"events,omitempty"` // the node's event stream
	Subjects   []string  `json:"subjects"`
	Messages   uint64    `json:"messages"`
	Bytes      uint64    `json:"bytes"`
	FirstSeq   uint64    `json:"first_seq"`
	LastSeq    uint64    `json:"last_seq"`
	LastTime   time.Time `json:"last_time,omitzero"`
	Replicas   int       `json:"replicas"`
	Storage    string    `json:"storage"`
	Durability string    `json:"durability,omitempty"`
}

// streams serves GET /api/streams.
func (a *api) streams(w http.ResponseWriter, r *http.Request) {
	out := []streamJSON{}
	lister := a.n.JetStream().ListStreams(r.Context())
	for info := range lister.Info() {
		s := streamJSON{Name: info.Config.Name, Subjects: info.Config.Subjects, Messages: info.State.Msgs, Bytes: info.State.Bytes,
			FirstSeq: info.State.FirstSeq, LastSeq: info.State.LastSeq, LastTime: info.State.LastTime,
			Replicas: info.Config.Replicas, Storage: strings.ToLower(info.Config.Storage.String())}
		if s.Name == a.n.Store().StreamName() {
			s.Events, s.Durability = true, a.n.Store().Durability().String()
		}
		out = append(out, s)
	}
	if err := lister.Err(); err != nil && err != jetstream.ErrEndOfData {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, r, map[string]any{"streams": out})
}

// projectionJSON is one projection's status.
type projectionJSON struct {
	Name            string  `json:"name"`
	State           string  `json:"state"`
	Error           string  `json:"error,omitempty"`
	Active          bool    `json:"active"`
	Generation      uint64  `json:"generation"`
	Position        uint64  `json:"position"`
	Head            uint64  `json:"head"`
	Lag             uint64  `json:"lag"`
	EventsPerSecond float64 `json:"events_per_second"`
	Read            uint64  `json:"read"`
	Skipped         uint64  `json:"skipped"`
	Rebuild         any     `json:"rebuild,omitempty"`
}

// projections serves GET /api/projections.
func (a *api) projections(w http.ResponseWriter, r *http.Request) {
	out := []projectionJSON{}
	for _, s := range a.n.Projections().Statuses(r.Context()) {
		out = append(out, projectionOf(s))
	}
	writeJSON(w, r, map[string]any{"projections": out})
}

func projectionOf(s projections.Status) projectionJSON {
	p := projectionJSON{Name: s.Name, State: string(s.State), Active: s.Active, Generation: uint64(s.Generation), Position: s.Position,
		Head: s.Head, Lag: s.Lag, EventsPerSecond: s.EventsPerSecond, Read: s.Read, Skipped: s.Skipped}
	if s.Err != nil {
		p.Error = s.Err.Error()
	}
	if s.Rebuild != nil {
		p.Rebuild = s.Rebuild
	}
	return p
}

// sagas serves GET /api/sagas: ?type=&state=&after=&limit=.
func (a *api) sagas(w http.ResponseWriter, r *http.Request) {
	params := r.URL.Query()
	limit, p := limitParam(params.Get("limit"))
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	m := a.n.Sagas()
	if m == nil {
		writeJSON(w, r, map[string]any{"sagas": []sagas.Instance{}})
		return
	}
	q := sagas.Query{Type: params.Get("type"), After: params.Get("after"), Limit: limit}
	for _, s := range params["state"] {
		q.States = append(q.States, sagas.State(s))
	}
	list, err := m.Operator().List(r.Context(), q)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if list == nil {
		list = []sagas.Instance{}
	}
	out := map[string]any{"sagas": list}
	if len(list) == limit {
		out["next"] = list[len(list)-1].ID
	}
	writeJSON(w, r, out)
}

// dlqJSON is one dead letter, without its encoded event.
type dlqJSON struct {
	ID         string    `json:"id"`
	Handler    string    `json:"handler"`
	Position   uint64    `json:"position"`
	EventType  string    `json:"event_type"`
	Subject    string    `json:"subject"`
	Error      string    `json:"error"`
	Reason     string    `json:"reason"`
	Deliveries int       `json:"deliveries"`
	Time       time.Time `json:"time"`
	RecordedBy string    `json:"recorded_by"`
}

// dlq serves GET /api/dlq: ?handler=&limit=.
func (a *api) dlq(w http.ResponseWriter, r *http.Request) {
	params := r.URL.Query()
	limit, p := limitParam(params.Get("limit"))
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	out := []dlqJSON{}
	for e, err := range a.n.DLQ().List(r.Context(), params.Get("handler")) {
		if err != nil {
			pr := failure(err)
			pr.Field = "handler"
			writeProblem(w, r, pr)
			return
		}
		if len(out) == limit {
			break
		}
		out = append(out, dlqJSON{ID: e.ID.String(), Handler: e.ID.Handler, Position: e.ID.Position, EventType: e.EventType(),
			Subject: e.Subject, Error: e.Error, Reason: string(e.Reason), Deliveries: e.Deliveries, Time: e.Time, RecordedBy: e.RecordedBy})
	}
	writeJSON(w, r, map[string]any{"dead_letters": out})
}
