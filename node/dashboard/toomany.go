package dashboard

import (
	"net/http"
	"time"
)

// tooMany answers 429 to an address Options.WrongTokens refuses:
// Retry-After in seconds, and a message that says when to try again (the
// login page for a page, plain text for the live stream and actions).
func (d *Dashboard) tooMany(w http.ResponseWriter, r *http.Request, until time.Time) {
	reason := d.opts.WrongTokens.Refusal(w, r, until)
	if r.URL.Path == d.opts.Prefix+"/live" || (r.Method != http.MethodGet && r.URL.Path != d.opts.Prefix+"/login") {
		http.Error(w, "429 Too Many Requests: "+reason, http.StatusTooManyRequests)
		return
	}
	next := r.URL.RequestURI()
	if r.Method == http.MethodPost {
		next = d.safeNext(r.PostFormValue("next"))
	}
	d.render(w, r, http.StatusTooManyRequests, "login", "Sign in", "", loginData{Reason: reason, Next: next})
}
