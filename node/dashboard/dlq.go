package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/lexigram/events/handlers/durable"
	"github.com/lexigram/events/platform"
)

// maxDeadLetters bounds the entries the list shows.
const maxDeadLetters = 500

// deadLetterRow is one DLQ entry as the pages show it.
type deadLetterRow struct {
	ID         string
	Handler    string
	Position   uint64
	EventType  string
	Subject    string
	Error      string
	Reason     string
	Deliveries int
	Time       time.Time
	EventTime  time.Time
	RecordedBy string
	Headers    map[string]string
	Payload    string // the decoded event as JSON, else the raw payload
	PayloadErr string // why it did not decode
}

func (d *Dashboard) deadLetterRow(e durable.Entry, withPayload bool) deadLetterRow {
	row := deadLetterRow{ID: e.ID.String(), Handler: e.ID.Handler, Position: e.ID.Position, EventType: e.EventType(), Subject: e.Subject,
		Error: e.Error, Reason: string(e.Reason), Deliveries: e.Deliveries, Time: e.Time, EventTime: e.EventTime, RecordedBy: e.RecordedBy}
	if !withPayload {
		return row
	}
	row.Headers = map[string]string{}
	for k := range e.Header {
		row.Headers[k] = e.Header.Get(k)
	}
	if e.Data == nil {
		row.PayloadErr = "the event was gone when the entry was written"
		return row
	}
	env, err := d.n.Store().Decode(e.Subject, e.ID.Position, e.EventTime, e.Header, e.Data)
	if err == nil {
		body, jerr := json.MarshalIndent(env.Event, "", "  ")
		if jerr == nil {
			row.Payload = string(body)
			return row
		}
		err = jerr
	}
	row.PayloadErr = err.Error()
	row.Payload = strconv.Quote(string(e.Data))
	return row
}

// dlqData is the dead letters page.
type dlqData struct {
	Handler   string
	Entries   []deadLetterRow
	Truncated bool
	Handlers  map[string]int // entries per handler, of those listed
	Bulk      []bulkHandler  // the handlers offered "replay all" and "discard all"
	Jobs      []bulkRow      // the bulk actions, newest first
	// ForBridges is false: this is the handlers' page (the bulk-jobs
	// fragment serves both).
	ForBridges bool
}

// bulkHandler is a handler with listed entries.
type bulkHandler struct {
	Handler string
	Listed  int
}

func (d *Dashboard) deadLetters(ctx context.Context, handler string) (dlqData, error) {
	out := dlqData{Handler: handler, Handlers: map[string]int{}, Jobs: d.bulk.rows(false)}
	for e, err := range d.n.DLQ().List(ctx, handler) {
		if err != nil {
			return out, err
		}
		if len(out.Entries) == maxDeadLetters {
			out.Truncated = true
			break
		}
		out.Entries = append(out.Entries, d.deadLetterRow(e, false))
		out.Handlers[e.ID.Handler]++
	}
	for _, h := range slices.Sorted(maps.Keys(out.Handlers)) {
		out.Bulk = append(out.Bulk, bulkHandler{Handler: h, Listed: out.Handlers[h]})
	}
	return out, nil
}

// dlq serves GET /ui/dlq?handler=.
func (d *Dashboard) dlq(w http.ResponseWriter, r *http.Request) {
	data, err := d.deadLetters(r.Context(), r.URL.Query().Get("handler"))
	if err != nil {
		d.failErr(w, r, err, "give a handler name as the durable handler was registered, or none for all")
		return
	}
	d.render(w, r, http.StatusOK, "dlq", "Dead letters", "dlq", data)
}

func entryID(r *http.Request) (durable.ID, error) {
	return durable.ParseID(r.PathValue("handler") + "/" + r.PathValue("position"))
}

// entry serves GET /ui/dlq/{handler}/{position}: one entry with its
// payload.
func (d *Dashboard) entry(w http.ResponseWriter, r *http.Request) {
	id, err := entryID(r)
	if err != nil {
		d.fail(w, r, http.StatusBadRequest, err.Error(), "open an entry from the dead letters page")
		return
	}
	e, err := d.n.DLQ().Get(r.Context(), id)
	if err != nil {
		if hasCode(err, platform.CodeInvalidArgument) {
			d.fail(w, r, http.StatusNotFound, err.Error(), "it was replayed or discarded; see the dead letters page")
			return
		}
		d.failErr(w, r, err, "reload")
		return
	}
	d.render(w, r, http.StatusOK, "entry", "Dead letter "+id.String(), "dlq", d.deadLetterRow(e, true))
}

// entryAction serves POST /ui/dlq/{handler}/{position}/{replay|discard}.
func (d *Dashboard) entryAction(w http.ResponseWriter, r *http.Request) {
	id, err := entryID(r)
	if err != nil {
		d.fail(w, r, http.StatusBadRequest, err.Error(), "open an entry from the dead letters page")
		return
	}
	action := r.PathValue("action")
	cancel := d.opts.Prefix + "/dlq/" + url.PathEscape(id.Handler) + "/" + strconv.FormatUint(id.Position, 10)
	var notice string
	switch action {
	case "replay":
		if !d.confirmed(w, r, confirmData{Question: fmt.Sprintf("Replay dead letter %s?", id), Verb: "Replay", Cancel: cancel,
			Detail: fmt.Sprintf("The event goes back to handler %s; the entry is removed once the handler has handled it, or replaced with the new error.", id.Handler)}) {
			return
		}
		err = d.n.DLQ().Replay(r.Context(), id)
		notice = fmt.Sprintf("Dead letter %s sent back to %s.", id, id.Handler)
	case "discard":
		if !d.confirmed(w, r, confirmData{Question: fmt.Sprintf("Discard dead letter %s?", id), Verb: "Discard", Cancel: cancel,
			Detail: fmt.Sprintf("The entry is removed for good: handler %s will never handle this event. The event itself stays in the store.", id.Handler)}) {
			return
		}
		err = d.n.DLQ().Discard(r.Context(), id)
		notice = fmt.Sprintf("Dead letter %s discarded.", id)
	default:
		d.fail(w, r, http.StatusNotFound, fmt.Sprintf("there is no dead letter action %q", action), "use replay or discard")
		return
	}
	d.logAction(r, "dlq."+action, id.String(), err)
	if err != nil {
		d.failErr(w, r, err, "see the dead letters page")
		return
	}
	d.redirect(w, r, "/dlq", notice)
}
