package dashboard

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/lexigram/events/projections"
)

// projectionRow is one projection's status as the page shows it.
type projectionRow struct {
	Name            string
	State           string
	Error           string
	Active          bool
	Generation      uint64
	Position        uint64
	Head            uint64
	Lag             uint64
	EventsPerSecond float64
	Read            uint64
	Skipped         uint64
	Running         bool // started: pause applies; else resume does
	Rebuild         *rebuildRow
}

type rebuildRow struct {
	Generation      uint64
	Done, Total     uint64
	EventsPerSecond float64
	Remaining       time.Duration
	Started         time.Time
	Finished        time.Time
	Error           string
}

func (d *Dashboard) projectionRows(ctx context.Context) []projectionRow {
	var out []projectionRow
	for _, s := range d.n.Projections().Statuses(ctx) {
		p := projectionRow{Name: s.Name, State: string(s.State), Active: s.Active, Generation: uint64(s.Generation), Position: s.Position,
			Head: s.Head, Lag: s.Lag, EventsPerSecond: s.EventsPerSecond, Read: s.Read, Skipped: s.Skipped,
			Running: s.State != projections.Stopped && s.State != projections.Faulted}
		if s.Err != nil {
			p.Error = s.Err.Error()
		}
		if rb := s.Rebuild; rb != nil {
			p.Rebuild = &rebuildRow{Generation: uint64(rb.Generation), Done: rb.Done, Total: rb.Total, EventsPerSecond: rb.EventsPerSecond,
				Remaining: rb.Remaining, Started: rb.Started, Finished: rb.Finished}
			if rb.Err != nil {
				p.Rebuild.Error = rb.Err.Error()
			}
		}
		out = append(out, p)
	}
	return out
}

// projections serves GET /ui/projections.
func (d *Dashboard) projections(w http.ResponseWriter, r *http.Request) {
	d.render(w, r, http.StatusOK, "projections", "Projections", "projections", d.projectionRows(r.Context()))
}

// projectionAction serves POST /ui/projections/{name}/{rebuild|pause|resume}.
func (d *Dashboard) projectionAction(w http.ResponseWriter, r *http.Request) {
	name, action := r.PathValue("name"), r.PathValue("action")
	m := d.n.Projections()
	if _, err := m.Status(r.Context(), name); err != nil {
		d.failErr(w, r, err, "pick a projection from the list")
		return
	}
	cancel := d.opts.Prefix + "/projections"
	var err error
	var notice string
	switch action {
	case "rebuild":
		if !d.confirmed(w, r, confirmData{Question: fmt.Sprintf("Rebuild projection %s?", name), Verb: "Rebuild", Cancel: cancel,
			Detail: "The whole store is replayed into a new generation while the current one keeps serving; readers switch to it once it has caught up."}) {
			return
		}
		var gen projections.Generation
		gen, err = m.Rebuild(r.Context(), name)
		notice = fmt.Sprintf("Rebuild of %s into generation %d started.", name, gen)
	case "pause":
		if !d.confirmed(w, r, confirmData{Question: fmt.Sprintf("Pause projection %s?", name), Verb: "Pause", Cancel: cancel,
			Detail: "It stops after the batch in hand, saves its checkpoint and releases its lease: another process running it takes over; here its read model stops moving until it is resumed."}) {
			return
		}
		err = m.Stop(r.Context(), name)
		notice = fmt.Sprintf("Projection %s paused.", name)
	case "resume":
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		// The projection runs until the node stops it (Run's shutdown
		// stops every projection), not until this request ends.
		err = m.Start(context.WithoutCancel(r.Context()), name)
		notice = fmt.Sprintf("Projection %s resumed.", name)
	default:
		d.fail(w, r, http.StatusNotFound, fmt.Sprintf("there is no projection action %q", action), "use rebuild, pause or resume")
		return
	}
	d.logAction(r, "projection."+action, name, err)
	if err != nil {
		d.failErr(w, r, err, "see the projection's state on the projections page")
		return
	}
	d.redirect(w, r, "/projections#p-"+url.PathEscape(name), notice)
}
