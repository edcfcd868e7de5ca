package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// Page sizes of a history.
const (
	defaultHistory = 100
	maxHistory     = 1000
	maxListed      = 200 // aggregates of a type listed by a search
)

// eventRow is one envelope as the history shows it.
type eventRow struct {
	ID            string
	Type          string
	SchemaVersion int
	AggregateType string
	AggregateID   string
	Version       uint64
	Position      uint64
	Time          time.Time
	CorrelationID string
	CausationID   string
	Metadata      map[string]string
	Event         string // the decoded event as indented JSON
	Error         string // the event does not decode
}

func rowOf(e platform.Envelope) eventRow {
	body, err := json.MarshalIndent(e.Event, "", "  ")
	row := eventRow{ID: e.ID, Type: e.Type, SchemaVersion: e.SchemaVersion, AggregateType: e.Stream.Type, AggregateID: e.Stream.ID,
		Version: e.Version, Position: e.Position, Time: e.Time, CorrelationID: e.CorrelationID, CausationID: e.CausationID,
		Metadata: e.Metadata, Event: string(body)}
	if err != nil {
		row.Event, row.Error = "", "the event does not encode as JSON: "+err.Error()
	}
	return row
}

func undecodableRow(err error) eventRow {
	row := eventRow{Error: err.Error()}
	var de *platform.DecodeError
	if errors.As(err, &de) {
		row.AggregateType, row.AggregateID, row.Version, row.Position = de.Stream.Type, de.Stream.ID, de.Version, de.Position
		row.Type, row.SchemaVersion = de.Type, de.SchemaVersion
	}
	return row
}

// searchData is the search page.
type searchData struct {
	Type, ID    string
	Correlation string
	Aggregates  []aggregateRow // of Type, when only the type was given
	More        bool           // more than maxListed exist
	Searched    bool
}

type aggregateRow struct {
	ID     string
	Events uint64
}

// aggregates serves GET /ui/aggregates?type=&id=&correlation=.
func (d *Dashboard) aggregates(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s := searchData{Type: strings.TrimSpace(q.Get("type")), ID: strings.TrimSpace(q.Get("id")), Correlation: strings.TrimSpace(q.Get("correlation"))}
	switch {
	case s.Correlation != "":
		http.Redirect(w, r, d.opts.Prefix+"/correlations/"+url.PathEscape(s.Correlation), http.StatusSeeOther)
		return
	case s.Type != "" && s.ID != "":
		if err := (platform.StreamID{Type: s.Type, ID: s.ID}).Validate(); err != nil {
			d.fail(w, r, http.StatusBadRequest, err.Error(), "give an aggregate type and ID as the store names them")
			return
		}
		http.Redirect(w, r, d.opts.Prefix+"/aggregates/"+url.PathEscape(s.Type)+"/"+url.PathEscape(s.ID), http.StatusSeeOther)
		return
	case s.Type != "":
		if err := (platform.StreamID{Type: s.Type, ID: "x"}).Validate(); err != nil {
			d.fail(w, r, http.StatusBadRequest, err.Error(), "give an aggregate type: letters, digits, '-' or '_'")
			return
		}
		var err error
		if s.Aggregates, s.More, err = d.aggregatesOf(r.Context(), s.Type); err != nil {
			d.failErr(w, r, err, "check that the node reaches NATS, then search again")
			return
		}
		s.Searched = true
	}
	d.render(w, r, http.StatusOK, "aggregates", "Aggregates and events", "aggregates", s)
}

// aggregatesOf lists the aggregates of a type from the stream's subject
// counts: one stream info request, no consumer.
func (d *Dashboard) aggregatesOf(ctx context.Context, typ string) ([]aggregateRow, bool, error) {
	store := d.n.Store()
	stream, err := d.n.JetStream().Stream(ctx, store.StreamName())
	if err != nil {
		return nil, false, platform.Errorf(platform.CodeStoreUnavailable, "look up the event stream %s: %w", store.StreamName(), err)
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(store.SubjectPrefix()+"."+typ+".*"))
	if err != nil {
		return nil, false, platform.Errorf(platform.CodeStoreUnavailable, "count the aggregates of type %s: %w", typ, err)
	}
	var out []aggregateRow
	for subject, n := range info.State.Subjects {
		token := subject[strings.LastIndexByte(subject, '.')+1:]
		id, err := lxjs.DecodeToken(token)
		if err != nil {
			id = token
		}
		out = append(out, aggregateRow{ID: id, Events: n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	if len(out) > maxListed {
		return out[:maxListed], true, nil
	}
	return out, false, nil
}

// historyData is one page of an aggregate's history.
type historyData struct {
	Type, ID string
	Events   []eventRow
	After    uint64 // the version this page starts after
	Next     uint64 // the after of the next page; 0: this is the last
	Limit    int
	// LastPosition is the position of the last event shown: the live
	// stream sends what comes after it, on the last page.
	LastPosition uint64
	Took         time.Duration
}

// historyOf reads one page of the history with the store's Read
// (batched direct gets).
func (d *Dashboard) historyOf(ctx context.Context, stream platform.StreamID, after uint64, limit int) (historyData, error) {
	start := time.Now()
	h := historyData{Type: stream.Type, ID: stream.ID, After: after, Limit: limit}
	for e, err := range d.n.Store().Read(ctx, stream, platform.Revision{Version: after}) {
		if err != nil && !platform.IsDecodeError(err) {
			return h, err
		}
		if len(h.Events) == limit {
			h.Next = h.Events[len(h.Events)-1].Version
			break
		}
		var row eventRow
		if err != nil {
			row = undecodableRow(err)
		} else {
			row = rowOf(e)
		}
		h.Events = append(h.Events, row)
		h.LastPosition = row.Position
	}
	h.Took = time.Since(start)
	return h, nil
}

// history serves GET /ui/aggregates/{type}/{id}?after=&limit=.
func (d *Dashboard) history(w http.ResponseWriter, r *http.Request) {
	stream := platform.StreamID{Type: r.PathValue("type"), ID: r.PathValue("id")}
	if err := stream.Validate(); err != nil {
		d.fail(w, r, http.StatusBadRequest, err.Error(), "open an aggregate from the search form")
		return
	}
	q := r.URL.Query()
	after, err := uintParam(q.Get("after"), 0)
	if err != nil {
		d.fail(w, r, http.StatusBadRequest, fmt.Sprintf("after=%q is not a version", q.Get("after")), "give the version after which to list, e.g. after=100")
		return
	}
	limit, err := uintParam(q.Get("limit"), defaultHistory)
	if err != nil || limit < 1 || limit > maxHistory {
		d.fail(w, r, http.StatusBadRequest, fmt.Sprintf("limit=%q is out of range", q.Get("limit")), fmt.Sprintf("give a page size from 1 to %d", maxHistory))
		return
	}
	h, err := d.historyOf(r.Context(), stream, after, int(limit))
	if err != nil {
		d.failErr(w, r, err, "check that the node reaches NATS, then reload")
		return
	}
	if len(h.Events) == 0 && after == 0 {
		d.fail(w, r, http.StatusNotFound, fmt.Sprintf("aggregate %s has no events", stream), "check the aggregate type and ID; search by type to list its aggregates")
		return
	}
	d.render(w, r, http.StatusOK, "history", stream.String(), "aggregates", h)
}

func uintParam(raw string, def uint64) (uint64, error) {
	if raw == "" {
		return def, nil
	}
	return strconv.ParseUint(raw, 10, 64)
}
