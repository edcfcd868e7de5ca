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

// bulkJob is one "replay all" or "discard all" of a handler's or a
// bridge's dead letters, running in the background after its
// confirmation, as `lexigram dlq replay|discard --handler NAME --all
// [--since]` does: the entries are listed first, then each is replayed or
// discarded in turn.
type bulkJob struct {
	ID      int
	Action  string // "replay" or "discard"
	Handler string // one of Handler and Bridge is set
	Bridge  string
	Since   time.Time // zero: every entry
	By      string
	Total   int
	Started time.Time

	mu       sync.Mutex
	done     int // replayed or discarded
	gone     int // replayed or discarded by someone else meanwhile
	failed   int // could not be replayed; they stay
	lastFail string
	finished time.Time
	err      string
}

// bulkRow is a bulk action as the page shows it.
type bulkRow struct {
	ID                      int
	Action, Handler, Bridge string
	Since                   time.Time
	By                      string
	Done, Gone, Total       int
	Failed                  int    // entries that could not be replayed and stay
	LastFailure             string // why the last of them failed
	Settled                 int    // done and gone
	Started, Finished       time.Time
	Error                   string
	Rate                    float64 // entries per second so far
	Remaining               time.Duration
}

func (j *bulkJob) row() bulkRow {
	j.mu.Lock()
	defer j.mu.Unlock()
	r := bulkRow{ID: j.ID, Action: j.Action, Handler: j.Handler, Bridge: j.Bridge, Since: j.Since, By: j.By, Done: j.done, Gone: j.gone, Failed: j.failed, LastFailure: j.lastFail, Total: j.Total,
		Started: j.Started, Finished: j.finished, Error: j.err}
	end := j.finished
	if end.IsZero() {
		end = time.Now()
	}
	r.Settled = j.done + j.gone + j.failed
	if took := end.Sub(j.Started).Seconds(); took > 0 {
		r.Rate = float64(r.Settled) / took
	}
	if r.Finished.IsZero() && r.Rate > 0 {
		r.Remaining = time.Duration(float64(r.Total-r.Settled) / r.Rate * float64(time.Second))
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

// target names what the job acts on, for messages.
func (j *bulkJob) target() string {
	if j.Bridge != "" {
		return "bridge " + j.Bridge
	}
	return "handler " + j.Handler
}

// add starts keeping j, unless a bulk action on the same handler or
// bridge is still running: then it returns that one.
func (b *bulkJobs) add(j *bulkJob) (running *bulkJob) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, o := range b.jobs {
		if o.Handler == j.Handler && o.Bridge == j.Bridge && o.running() {
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

// rows are the bulk actions on handlers' dead letters (bridges false) or
// on bridges' (true), newest first.
func (b *bulkJobs) rows(bridges bool) []bulkRow {
	b.mu.Lock()
	jobs := append([]*bulkJob(nil), b.jobs...)
	b.mu.Unlock()
	out := make([]bulkRow, 0, len(jobs))
	for i := len(jobs) - 1; i >= 0; i-- {
		if (jobs[i].Bridge != "") == bridges {
			out = append(out, jobs[i].row())
		}
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

// bulkWindow reads a bulk action's form: the entries written from "since"
// (zero: the first) through "until" (the moment its confirmation was
// shown; now before that). It answers the request itself when the form is
// wrong; what names, for the fix, what an empty since takes ("entry of
// the handler").
func (d *Dashboard) bulkWindow(w http.ResponseWriter, r *http.Request, what string) (since, until time.Time, sinceText string, ok bool) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	now := time.Now()
	sinceText = r.PostFormValue("since")
	since, err := parseSince(sinceText, now)
	if err != nil {
		d.fail(w, r, http.StatusUnprocessableEntity, err.Error(), "leave it empty for every "+what)
		return since, until, sinceText, false
	}
	until = now
	if u := r.PostFormValue("until"); u != "" {
		if until, err = time.Parse(time.RFC3339Nano, u); err != nil {
			d.fail(w, r, http.StatusBadRequest, fmt.Sprintf("until %q is not an RFC 3339 time", u), "start again from the dead letters page")
			return since, until, sinceText, false
		}
	}
	return since, until, sinceText, true
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
	since, until, sinceText, ok := d.bulkWindow(w, r, "entry of the handler")
	if !ok {
		return
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
		d.busy(w, r, other)
		return
	}
	d.logAction(r, "dlq."+action+"-all", handler, nil, "entries", len(ids), "since", sinceText, "job", job.ID)
	act := d.n.DLQ().Replay
	if action == "discard" {
		act = d.n.DLQ().Discard
	}
	go d.runBulk(context.WithoutCancel(r.Context()), job, len(ids), func(ctx context.Context, i int) (stepResult, error) {
		err := act(ctx, ids[i])
		switch {
		case err == nil:
			return stepDone, nil
		case hasCode(err, platform.CodeInvalidArgument): // replayed, handled or discarded meanwhile
			return stepGone, nil
		}
		return stepStop, fmt.Errorf("%s %s: %w", action, ids[i], err)
	})
	d.bulkStarted(w, r, back, job, which)
}

// bulkStarted sends the browser back to the list, where the job's
// progress shows.
func (d *Dashboard) bulkStarted(w http.ResponseWriter, r *http.Request, back string, job *bulkJob, which string) {
	verb := "Replaying"
	if job.Action == "discard" {
		verb = "Discarding"
	}
	d.redirect(w, r, back+"#bulk-"+strconv.Itoa(job.ID), fmt.Sprintf("%s %d dead letters of %s: the progress is below.", verb, job.Total, which))
}

// busy refuses a bulk action while another on the same target runs.
func (d *Dashboard) busy(w http.ResponseWriter, r *http.Request, other *bulkJob) {
	d.fail(w, r, http.StatusConflict, fmt.Sprintf("a %s of %s's dead letters is under way (bulk action %d, started %s by %s)", other.Action, other.target(), other.ID, when(other.Started), other.By),
		"wait for it to finish on the dead letters page, then start this one again")
}

// stepResult is what became of one entry of a bulk action.
type stepResult int

const (
	stepDone   stepResult = iota // replayed or discarded
	stepGone                     // replayed, handled or discarded by someone else meanwhile
	stepFailed                   // this entry could not be replayed and stays; the job goes on
	stepStop                     // the job cannot go on (the store, the node)
)

// runBulk replays or discards the job's n entries in turn, each by step;
// it stops at the first stepStop and logs the outcome.
func (d *Dashboard) runBulk(ctx context.Context, j *bulkJob, n int, step func(ctx context.Context, i int) (stepResult, error)) {
	var stopped error
	for i := range n {
		if hook := bulkStepHook.Load(); hook != nil {
			(*hook)()
		}
		if d.n.Conn().IsClosed() {
			stopped = fmt.Errorf("the node stopped after %d of %d entries: start the action again for the rest", i, n)
			break
		}
		stepCtx, cancel := context.WithTimeout(ctx, bulkStepTimeout)
		result, err := step(stepCtx, i)
		cancel()
		j.mu.Lock()
		switch result {
		case stepDone:
			j.done++
		case stepGone:
			j.gone++
		case stepFailed:
			j.failed++
			j.lastFail = err.Error()
		}
		j.mu.Unlock()
		if result == stepStop {
			stopped = fmt.Errorf("%w (%d of %d entries done: start the action again for the rest)", err, i, n)
			break
		}
	}
	j.mu.Lock()
	j.finished = time.Now()
	if stopped != nil {
		j.err = stopped.Error()
	}
	done, gone, failed := j.done, j.gone, j.failed
	j.mu.Unlock()
	action := "dlq." + j.Action + "-all"
	if j.Bridge != "" {
		action = "bridge-" + action
	}
	args := []any{"action", action, "target", j.target(), "by", j.By, "job", j.ID, "done", done, "gone", gone, "failed", failed, "total", j.Total}
	if stopped != nil {
		d.log.Warn("dashboard: bulk action failed", append(args, "err", stopped)...)
		return
	}
	d.log.Info("dashboard: bulk action finished", args...)
}
