package dashboard

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Defaults of Options.LoginAttempts and LoginWindow.
const (
	defaultLoginAttempts = 5
	defaultLoginWindow   = time.Minute
)

// maxTrackedAddresses bounds the remote addresses the limiter keeps; when
// full, the address whose last wrong token is oldest is forgotten.
const maxTrackedAddresses = 10_000

// limiter counts the wrong tokens each remote address (its host, not its
// port) presented within the last window, and refuses an address that
// presented limit of them until the oldest is older than the window.
type limiter struct {
	limit  int
	window time.Duration
	now    func() time.Time

	mu    sync.Mutex
	fails map[string][]time.Time // by host: the wrong tokens' times within the window, oldest first
}

func newLimiter(limit int, window time.Duration) *limiter {
	return &limiter{limit: limit, window: window, now: time.Now, fails: map[string][]time.Time{}}
}

// host is the remote address a request is counted under.
func host(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

// recent drops the times of addr older than the window; l.mu is held.
func (l *limiter) recent(addr string, now time.Time) []time.Time {
	ts := l.fails[addr]
	i := 0
	for i < len(ts) && now.Sub(ts[i]) >= l.window {
		i++
	}
	ts = ts[i:]
	if len(ts) == 0 {
		delete(l.fails, addr)
		return nil
	}
	l.fails[addr] = ts
	return ts
}

// blocked reports whether addr is refused now, and until when.
func (l *limiter) blocked(addr string) (until time.Time, refused bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	ts := l.recent(addr, now)
	if len(ts) < l.limit {
		return time.Time{}, false
	}
	return ts[len(ts)-l.limit].Add(l.window), true
}

// failed counts a wrong token from addr.
func (l *limiter) failed(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	ts := l.recent(addr, now)
	if ts == nil && len(l.fails) >= maxTrackedAddresses {
		l.forgetOne(now)
	}
	ts = append(ts, now)
	if len(ts) > l.limit {
		ts = ts[len(ts)-l.limit:] // only the last limit decide
	}
	l.fails[addr] = ts
}

// forgetOne makes room: it drops the addresses with nothing within the
// window, or else the one whose last wrong token is oldest. l.mu is held.
func (l *limiter) forgetOne(now time.Time) {
	oldest, at := "", now
	for a := range l.fails {
		ts := l.recent(a, now)
		if ts != nil && !ts[len(ts)-1].After(at) {
			oldest, at = a, ts[len(ts)-1]
		}
	}
	if len(l.fails) >= maxTrackedAddresses {
		delete(l.fails, oldest)
	}
}

// succeeded forgets addr's wrong tokens: its holder knows the token.
func (l *limiter) succeeded(addr string) {
	l.mu.Lock()
	delete(l.fails, addr)
	l.mu.Unlock()
}

// tooMany answers 429 to an address the limiter refuses: Retry-After in
// seconds, and a message that says when to try again (the login page
// for a page, plain text for the live stream and actions).
func (d *Dashboard) tooMany(w http.ResponseWriter, r *http.Request, until time.Time) {
	wait := max(1, int(math.Ceil(time.Until(until).Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(wait))
	reason := fmt.Sprintf("%d wrong tokens from %s within %s: sign-in from this address is refused until %s; try again in %ds",
		d.logins.limit, host(r), d.logins.window, until.UTC().Format("15:04:05 UTC"), wait)
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
