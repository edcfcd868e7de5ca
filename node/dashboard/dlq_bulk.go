package dashboard

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lexigram/events/handlers/durable"
	"github.com/lexigram/events/platform"
)

// keptBulkJobs bounds the finished bulk actions the dead letters page
// still shows.
const keptBulkJobs = 20

// bulkStepTimeout bounds one entry's replay or discard.
const bulkStepTimeout = 30 * time.Second

// bulkStepHook, when set (tests only), runs before each entry of a bulk
// action.
var bulkStepHook atomic.Pointer[func()]

// bulkJob is one "replay all" or "discard all" of a handler's dead
// letters, running in the background after its confirmation, as `lexigram
// dlq replay|discard --handler NAME --all [--since]` does: the entries
// are listed first, then each is replayed or discarded in turn.
type bulkJob struct {
	ID      int
	Action  string // "replay" or "discard"
	Handler string
	Since   time.Time // zero: every entry
	By      string
	Total   int
	Started time.Time

	mu       sync.Mutex
	done     int // replayed or discarded
	gone     int // replayed or discarded by someone else meanwhile
	finished time.Time
	err      string
}

// bulkRow is a bulk action as the page shows it.
type bulkRow struct {
	ID                int
	Action, Handler   string
	Since             time.Time
	By                string
	Done, Gone, Total int
	Settled           int // done and gone
	Started, Finished time.Time
	Error             string
	Rate              float64 // entries per second so far
	Remaining         time.Duration
}

func (j *bulkJob) row() bulkRow {
	j.mu.Lock()
	defer j.mu.Unlock()
	r := bulkRow{ID: j.ID, Action: j.Action, Handler: j.Handler, Since: j.Since, By: j.By, Done: j.done, Gone: j.gone, Total: j.Total,
		Started: j.Started, Finished: j.finished, Error: j.err}
	end := j.finished
	if end.IsZero() {
		end = time.Now()
	}
	r.Settled = j.done + j.gone
	if took := end.Sub(j.Started).Seconds(); took > 0 {
		r.Rate = float64(j.done+j.gone) / took
	}
	if r.Finished.IsZero() && r.Rate > 0 {
		r.Remaining = time.Duration(float64(r.Total-r.Done-r.Gone) / r.Rate * float64(time.Second))
	}
	return r
}

func (j *bulkJob) running() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.finished.IsZero()
}

// bulkJobs are the dashboard's bulk actions, newest last.
type bulkJobs struct {
	mu   sync.Mutex
	next int
	jobs []*bulkJob
}

// add starts keeping j, unless a bulk action on the same handler is
// still running: then it returns that one.
func (b *bulkJobs) add(j *bulkJob) (running *bulkJob) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, o := range b.jobs {
		if o.Handler == j.Handler && o.running() {
			return o
		}
	}
	b.next++
	j.ID = b.next
	b.jobs = append(b.jobs, j)
	for len(b.jobs) > keptBulkJobs {
		i := 0
		for i < len(b.jobs) && b.jobs[i].running() {
			i++
		}
		if i == len(b.jobs) {
			break // all running: keep them
		}
		b.jobs = append(b.jobs[:i], b.jobs[i+1:]...)
	}
	return nil
}

// rows are the bulk actions, newest first.
func (b *bulkJobs) rows() []bulkRow {
	b.mu.Lock()
	jobs := append([]*bulkJob(nil), b.jobs...)
	b.mu.Unlock()
	out := make([]bulkRow, 0, len(jobs))
	for i := len(jobs) - 1; i >= 0; i-- {
		out = append(out, jobs[i].row())
	}
	return out
}

// parseSince reads the "since" field of a bulk action, as the CLI's
// --since: an RFC 3339 time, or a positive duration meaning that long
// before now. "" is no bound.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("since %q: use an RFC 3339 time (2026-12-07T06:00:00Z) or a positive duration (90m, 2h)", s)
}

// entriesBetween lists the IDs of handler's entries written from since
// through until (zero since: from the first).
func (d *Dashboard) entriesBetween(ctx context.Context, handler string, since, until time.Time) ([]durable.ID, error) {
	var ids []durable.ID
	for e, err := range d.n.DLQ().List(ctx, handler) {
		if err != nil {
			return nil, err
		}
		if !e.Time.Before(since) && !e.Time.After(until) {
			ids = append(ids, e.ID)
		}
	}
	return ids, nil
}

// bulkAction serves POST /ui/dlq/{handler}/all/{replay|discard}: every
// entry of the handler (since the form's "since", if given), after a
// confirmation that says how many. The confirmation fixes the entries
// it counted (written from since until the moment it was shown), so an
// entry written later, or one replayed and failing again meanwhile, is
// not taken; the action then runs in the background and the dead
// letters page shows its progress live.
func (d *Dashboard) bulkAction(w http.ResponseWriter, r *http.Request) {
	handler, action := r.PathValue("handler"), r.PathValue("action")
	back := "/dlq?handler=" + url.QueryEscape(handler)
	if action != "replay" && action != "discard" {
		d.fail(w, r, http.StatusNotFound, fmt.Sprintf("there is no bulk dead letter action %q", action), "use replay or discard")
		return
	}
	if _, err := durable.ParseID(handler + "/1"); err != nil {
		d.fail(w, r, http.StatusBadRequest, fmt.Sprintf("handler %q is not a durable handler's name", handler), "pick a handler on the dead letters page")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	now := time.Now()
	sinceText := r.PostFormValue("since")
	since, err := parseSince(sinceText, now)
	if err != nil {
		d.fail(w, r, http.StatusUnprocessableEntity, err.Error(), "leave it empty for every entry of the handler")
		return
	}
	until := now
	if u := r.PostFormValue("until"); u != "" {
		if until, err = time.Parse(time.RFC3339Nano, u); err != nil {
			d.fail(w, r, http.StatusBadRequest, fmt.Sprintf("until %q is not an RFC 3339 time", u), "start again from the dead letters page")
			return
		}
	}
	ids, err := d.entriesBetween(r.Context(), handler, since, until)
	if err != nil {
		d.failErr(w, r, err, "reload the dead letters page")
		return
	}
	which := "handler " + handler
	if !since.IsZero() {
		which += " dead-lettered since " + when(since)
	}
	if len(ids) == 0 {
		d.redirect(w, r, back, fmt.Sprintf("No dead letters of %s: nothing to %s.", which, action))
		return
	}
	c := confirmData{Verb: "Replay all", Cancel: d.opts.Prefix + back, Reason: true,
		Hidden:   map[string]string{"until": until.Format(time.RFC3339Nano)},
		Question: fmt.Sprintf("Replay %d dead letters of %s?", len(ids), which),
		Detail:   fmt.Sprintf("Each of the %d events goes back to handler %s, one after the other; an entry is removed once the handler has handled its event, or replaced with the new error. Entries written after this page was shown are not taken.", len(ids), handler)}
	if action == "discard" {
		c.Verb = "Discard all"
		c.Question = fmt.Sprintf("Discard %d dead letters of %s?", len(ids), which)
		c.Detail = fmt.Sprintf("The %d entries are removed for good: handler %s will never handle these events. The events themselves stay in the store. Entries written after this page was shown are not taken.", len(ids), handler)
	}
	if !since.IsZero() {
		c.Hidden["since"] = since.Format(time.RFC3339Nano)
	}
	if !d.confirmed(w, r, c) {
		return
	}
	job := &bulkJob{Action: action, Handler: handler, Since: since, By: actor(r.Context()), Total: len(ids), Started: time.Now()}
	if other := d.bulk.add(job); other != nil {
		d.fail(w, r, http.StatusConflict, fmt.Sprintf("a %s of handler %s's dead letters is under way (bulk action %d, started %s by %s)", other.Action, handler, other.ID, when(other.Started), other.By),
			"wait for it to finish on the dead letters page, then start this one again")
		return
	}
	d.logAction(r, "dlq."+action+"-all", handler, nil, "entries", len(ids), "since", sinceText, "job", job.ID)
	go d.runBulk(context.WithoutCancel(r.Context()), job, ids)
	verb := "Replaying"
	if action == "discard" {
		verb = "Discarding"
	}
	d.redirect(w, r, back+"#bulk-"+strconv.Itoa(job.ID), fmt.Sprintf("%s %d dead letters of %s: the progress is below.", verb, len(ids), which))
}

// runBulk replays or discards the entries, stopping at the first error
// that is not the entry having gone meanwhile; it logs the outcome.
func (d *Dashboard) runBulk(ctx context.Context, j *bulkJob, ids []durable.ID) {
	act := d.n.DLQ().Replay
	if j.Action == "discard" {
		act = d.n.DLQ().Discard
	}
	var failed error
	for i, id := range ids {
		if hook := bulkStepHook.Load(); hook != nil {
			(*hook)()
		}
		if d.n.Conn().IsClosed() {
			failed = fmt.Errorf("the node stopped after %d of %d entries: start the action again for the rest", i, len(ids))
			break
		}
		stepCtx, cancel := context.WithTimeout(ctx, bulkStepTimeout)
		err := act(stepCtx, id)
		cancel()
		j.mu.Lock()
		switch {
		case err == nil:
			j.done++
		case hasCode(err, platform.CodeInvalidArgument): // replayed, handled or discarded meanwhile
			j.gone++
		}
		j.mu.Unlock()
		if err != nil && !hasCode(err, platform.CodeInvalidArgument) {
			failed = fmt.Errorf("%s %s: %w (%d of %d entries done: start the action again for the rest)", j.Action, id, err, i, len(ids))
			break
		}
	}
	j.mu.Lock()
	j.finished = time.Now()
	if failed != nil {
		j.err = failed.Error()
	}
	done, gone := j.done, j.gone
	j.mu.Unlock()
	args := []any{"action", "dlq." + j.Action + "-all", "target", j.Handler, "by", j.By, "job", j.ID, "done", done, "gone", gone, "total", j.Total}
	if failed != nil {
		d.log.Warn("dashboard: bulk action failed", append(args, "err", failed)...)
		return
	}
	d.log.Info("dashboard: bulk action finished", args...)
}
