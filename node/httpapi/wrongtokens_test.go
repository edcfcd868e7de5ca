package httpapi_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lexigram/events/node/httpapi"
)

// TestWrongTokensAreLimited: after the limit of wrong bearer tokens from
// one address, the API answers 429 with Retry-After and when to try
// again, to the right token too, until the window has passed; then the
// right token is let in again.
func TestWrongTokensAreLimited(t *testing.T) {
	const token, window = "s3cret-token-value", 3 * time.Second
	e := start(t, httpapi.Options{Token: token, Public: true, WrongTokens: httpapi.NewWrongTokens(3, window)})
	began := time.Now()
	for i := 1; i <= 3; i++ {
		e.do(t, "GET", "/api/streams", "", "Authorization", "Bearer guess").problem(t, http.StatusUnauthorized)
	}
	for _, tok := range []string{"guess", token} {
		r := e.do(t, "GET", "/api/streams", "", "Authorization", "Bearer "+tok)
		if took := time.Since(began); took >= window {
			t.Skipf("the requests took %s, longer than the %s window: the machine is too slow to tell the limit", took, window)
		}
		p := r.problem(t, http.StatusTooManyRequests)
		retry, err := strconv.Atoi(r.header.Get("Retry-After"))
		if err != nil || retry < 1 || retry > int(window.Seconds())+1 {
			t.Errorf("token %q refused with Retry-After %q, want 1..%d seconds", tok, r.header.Get("Retry-After"), int(window.Seconds())+1)
		}
		if !strings.Contains(p.Detail, "try again in") || strings.Contains(string(r.body), token) {
			t.Errorf("token %q refused with %+v", tok, p)
		}
	}
	// A request without a token is no guess: it gets 401, not 429.
	e.do(t, "GET", "/api/streams", "").problem(t, http.StatusUnauthorized)

	deadline := time.Now().Add(window + 20*time.Second)
	for {
		r := e.do(t, "GET", "/api/streams", "", "Authorization", "Bearer "+token)
		if r.status == http.StatusOK {
			break
		}
		if r.status != http.StatusTooManyRequests || time.Now().After(deadline) {
			t.Fatalf("the right token after the window answered %d: %s", r.status, r.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
