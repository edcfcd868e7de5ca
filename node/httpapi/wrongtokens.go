package httpapi

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Defaults of NewWrongTokens.
const (
	defaultWrongTokenLimit  = 5
	defaultWrongTokenWindow = time.Minute
)

// maxTrackedAddresses bounds the remote addresses WrongTokens keeps; when
// full, the address whose last wrong token is oldest is forgotten.
const maxTrackedAddresses = 10_000

// WrongTokens limits token guessing: it counts the wrong tokens each
// remote address (its host, not its port: behind a reverse proxy, the
// proxy's) presented within a window, and refuses an address that
// presented the limit of them, with the right token too, until the
// oldest is a window old. Other addresses are not affected; a right token
// forgets the address's count.
//
// The API and the dashboard share one (Options.WrongTokens and the
// dashboard's), so that guessing on one does not reset or double the
// attempts on the other.
type WrongTokens struct {
	limit  int
	window time.Duration
	now    func() time.Time

	mu    sync.Mutex
	fails map[string][]time.Time // by host: the wrong tokens' times within the window, oldest first
}

// NewWrongTokens refuses an address after limit wrong tokens within
// window. limit <= 0: 5; window <= 0: a minute.
func NewWrongTokens(limit int, window time.Duration) *WrongTokens {
	if limit <= 0 {
		limit = defaultWrongTokenLimit
	}
	if window <= 0 {
		window = defaultWrongTokenWindow
	}
	return &WrongTokens{limit: limit, window: window, now: time.Now, fails: map[string][]time.Time{}}
}

// RemoteHost is the address a request is counted under.
func RemoteHost(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

// Blocked reports whether r's address is refused now, and until when.
func (l *WrongTokens) Blocked(r *http.Request) (until time.Time, refused bool) {
	return l.blocked(RemoteHost(r))
}

// Failed counts a wrong token from r's address.
func (l *WrongTokens) Failed(r *http.Request) { l.failed(RemoteHost(r)) }

// Succeeded forgets the wrong tokens of r's address: its holder knows
// the token.
func (l *WrongTokens) Succeeded(r *http.Request) {
	l.mu.Lock()
	delete(l.fails, RemoteHost(r))
	l.mu.Unlock()
}

// Refusal says why r's address is refused until until, and sets
// Retry-After on w (in whole seconds, at least one).
func (l *WrongTokens) Refusal(w http.ResponseWriter, r *http.Request, until time.Time) string {
	wait := max(1, int(math.Ceil(until.Sub(l.now()).Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(wait))
	return fmt.Sprintf("%d wrong tokens from %s within %s: requests with a token from this address are refused until %s; try again in %ds",
		l.limit, RemoteHost(r), l.window, until.UTC().Format("15:04:05 UTC"), wait)
}

// recent drops the times of addr older than the window; l.mu is held.
func (l *WrongTokens) recent(addr string, now time.Time) []time.Time {
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

func (l *WrongTokens) blocked(addr string) (until time.Time, refused bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	ts := l.recent(addr, now)
	if len(ts) < l.limit {
		return time.Time{}, false
	}
	return ts[len(ts)-l.limit].Add(l.window), true
}

func (l *WrongTokens) failed(addr string) {
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
func (l *WrongTokens) forgetOne(now time.Time) {
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
