package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"

	"github.com/lexigram/events/sagas"
)

// maxSagasCounted bounds how many instances the counts read.
const maxSagasCounted = 10_000

// sagaCount is the number of instances of one type in one state.
type sagaCount struct {
	Type  string
	State string
	Count int
}

// sagasData is the sagas page.
type sagasData struct {
	Enabled   bool // the node runs sagas
	Counts    []sagaCount
	Attention []sagas.Instance // parked, compensation failed or timed out
	Truncated bool
}

func (d *Dashboard) sagaSummary(ctx context.Context) (sagasData, error) {
	m := d.n.Sagas()
	if m == nil {
		return sagasData{}, nil
	}
	out := sagasData{Enabled: true}
	op := m.Operator()
	counts := map[[2]string]int{}
	for q, read := (sagas.Query{Limit: 1000}), 0; ; {
		page, err := op.List(ctx, q)
		if err != nil {
			return out, err
		}
		for _, in := range page {
			counts[[2]string{in.Type, string(in.State)}]++
			if in.State.Stuck() || in.State == sagas.TimedOut {
				out.Attention = append(out.Attention, in)
			}
		}
		read += len(page)
		if len(page) < q.Limit {
			break
		}
		if read >= maxSagasCounted {
			out.Truncated = true
			break
		}
		q.After = page[len(page)-1].ID
	}
	for k, n := range counts {
		out.Counts = append(out.Counts, sagaCount{Type: k[0], State: k[1], Count: n})
	}
	sort.Slice(out.Counts, func(i, j int) bool {
		a, b := out.Counts[i], out.Counts[j]
		return a.Type < b.Type || a.Type == b.Type && a.State < b.State
	})
	return out, nil
}

// sagas serves GET /ui/sagas.
func (d *Dashboard) sagas(w http.ResponseWriter, r *http.Request) {
	data, err := d.sagaSummary(r.Context())
	if err != nil {
		d.failErr(w, r, err, "reload")
		return
	}
	d.render(w, r, http.StatusOK, "sagas", "Sagas", "sagas", data)
}

// sagaData is one instance's page.
type sagaData struct {
	sagas.Details
	DataJSON  string
	CanRetry  bool
	CanAbort  bool
	CanFire   bool
	HasTimers bool
}

// saga serves GET /ui/sagas/{id}.
func (d *Dashboard) saga(w http.ResponseWriter, r *http.Request) {
	m := d.n.Sagas()
	if m == nil {
		d.fail(w, r, http.StatusNotFound, "this node runs no sagas", "register a saga type with node.AddSaga")
		return
	}
	det, err := m.Operator().Show(r.Context(), r.PathValue("id"))
	if err != nil {
		d.failErr(w, r, err, "pick an instance from the sagas page")
		return
	}
	s := sagaData{Details: det, CanRetry: det.State.Stuck(),
		CanAbort: !det.State.Finished() && det.State != sagas.Compensating && det.State != sagas.CompensationFailed &&
			det.State != sagas.Failed && det.State != sagas.TimedOut && !(det.State == sagas.Parked && det.Resume == sagas.Compensating),
		CanFire: det.State == sagas.Running && (!det.Due.IsZero() || !det.Deadline.IsZero())}
	if len(det.Data) > 0 {
		var v any
		if json.Unmarshal(det.Data, &v) == nil {
			b, _ := json.MarshalIndent(v, "", "  ")
			s.DataJSON = string(b)
		} else {
			s.DataJSON = string(det.Data)
		}
	}
	d.render(w, r, http.StatusOK, "saga", "Saga "+det.ID, "sagas", s)
}

// sagaAction serves POST /ui/sagas/{id}/{retry|abort|fire}.
func (d *Dashboard) sagaAction(w http.ResponseWriter, r *http.Request) {
	m := d.n.Sagas()
	if m == nil {
		d.fail(w, r, http.StatusNotFound, "this node runs no sagas", "register a saga type with node.AddSaga")
		return
	}
	id, action := r.PathValue("id"), r.PathValue("action")
	cancel := d.opts.Prefix + "/sagas/" + url.PathEscape(id)
	op := m.Operator()
	var err error
	switch action {
	case "retry":
		if !d.confirmed(w, r, confirmData{Question: fmt.Sprintf("Retry saga %s?", id), Verb: "Retry", Cancel: cancel,
			Detail: "A PARKED instance runs the step it was parked at again, a COMPENSATION_FAILED one its compensation, with its tries counted afresh."}) {
			return
		}
		_, err = op.Retry(r.Context(), id)
	case "abort":
		if !d.confirmed(w, r, confirmData{Question: fmt.Sprintf("Abort saga %s?", id), Verb: "Abort", Cancel: cancel, Reason: true,
			Detail: "The instance goes FAILED for good and compensates the steps it completed."}) {
			return
		}
		_, err = op.Abort(r.Context(), id, r.PostFormValue("reason"))
	case "fire":
		if !d.confirmed(w, r, confirmData{Question: fmt.Sprintf("Fire the timer of saga %s now?", id), Verb: "Fire now", Cancel: cancel,
			Detail: "Its deadline falls due now: it times out and compensates."}) {
			return
		}
		_, err = op.FireTimer(r.Context(), id)
	default:
		d.fail(w, r, http.StatusNotFound, fmt.Sprintf("there is no saga action %q", action), "use retry, abort or fire")
		return
	}
	d.logAction(r, "saga."+action, id, err)
	if err != nil {
		d.failErr(w, r, err, "see the instance's state")
		return
	}
	d.redirect(w, r, "/sagas/"+url.PathEscape(id), fmt.Sprintf("Saga %s: %s done.", id, action))
}
