package dashboard

import (
	"net/http"
)

// confirmData is the confirmation page of an action.
type confirmData struct {
	Question string
	Detail   string
	Verb     string            // the confirming button's label
	Action   string            // the form's target: the action's own path
	Cancel   string            // where "cancel" goes
	Reason   bool              // ask for a reason (kept in the log and, for an abort, the instance)
	Hidden   map[string]string // more fields the confirming form sends back
}

// confirmed reports whether the POST carries the confirmation; if not,
// it answers with the confirmation page, whose form sends the same
// POST with it.
func (d *Dashboard) confirmed(w http.ResponseWriter, r *http.Request, c confirmData) bool {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if r.PostFormValue("confirm") == "yes" {
		return true
	}
	c.Action = r.URL.Path
	d.render(w, r, http.StatusOK, "confirm", c.Question, "", c)
	return false
}

// logAction logs what an operator did, with who asked for it; err is
// the outcome, extra more attributes (key, value, ...).
func (d *Dashboard) logAction(r *http.Request, action, target string, err error, extra ...any) {
	args := append([]any{"action", action, "target", target, "by", actor(r.Context())}, extra...)
	if reason := r.PostFormValue("reason"); reason != "" {
		args = append(args, "reason", reason)
	}
	if err != nil {
		d.log.Warn("dashboard: action failed", append(args, "err", err)...)
		return
	}
	d.log.Info("dashboard: action", args...)
}
