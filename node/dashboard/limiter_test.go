package dashboard_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lexigram/events/node/dashboard"
	"github.com/lexigram/events/node/httpapi"
)

// from sends a request to the dashboard as if from the remote address.
func from(e *env, remote, method, path, form string, header ...string) *httptest.ResponseRecorder {
	var req *http.Request
	if form != "" {
		req = httptest.NewRequest(method, "/ui"+path, strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req = httptest.NewRequest(method, "/ui"+path, nil)
	}
	req.RemoteAddr = remote
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	e.d.ServeHTTP(w, req)
	return w
}

// TestLoginRefusesAnAddressAfterTooManyWrongTokens: the sixth wrong
// token from one address within the window is refused with 429,
// Retry-After and when to try again; so is the right token from there,
// and a bearer token, until the window has passed; another address is
// not affected.
func TestLoginRefusesAnAddressAfterTooManyWrongTokens(t *testing.T) {
	const token, window = "s3cret-token", 4 * time.Second
	e := start(t, dashboard.Options{Token: token, Public: true, WrongTokens: httpapi.NewWrongTokens(5, window)}, nil)
	attacker, other := "192.0.2.7:40000", "198.51.100.9:40001"
	wrong := "token=guess&next=" + url.QueryEscape("/ui/")
	right := "token=" + token + "&next=" + url.QueryEscape("/ui/")

	began := time.Now()
	for i := 1; i <= 5; i++ {
		w := from(e, attacker, "POST", "/login", wrong)
		if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "the token is wrong") {
			t.Fatalf("wrong token %d answered %d: %.300s", i, w.Code, w.Body.String())
		}
	}
	// Another port of the same host is the same address.
	w := from(e, "192.0.2.7:40999", "POST", "/login", wrong)
	if took := time.Since(began); took >= window {
		t.Fatalf("six in-process requests took %s, longer than the %s window: the test cannot tell the limit", took, window)
	}
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("the sixth wrong token answered %d, want 429: %.300s", w.Code, w.Body.String())
	}
	retry, err := strconv.Atoi(w.Header().Get("Retry-After"))
	if err != nil || retry < 1 || retry > int(window/time.Second) {
		t.Errorf("Retry-After %q: want whole seconds from 1 to %d", w.Header().Get("Retry-After"), int(window/time.Second))
	}
	if body := w.Body.String(); !strings.Contains(body, "try again in") || !strings.Contains(body, "192.0.2.7") || !strings.Contains(body, `id="token"`) {
		t.Errorf("the refusal does not say when to try again on the sign-in page: %.2000s", body)
	}
	if w := from(e, attacker, "POST", "/login", right); w.Code != http.StatusTooManyRequests {
		t.Errorf("the right token from the refused address answered %d, want 429 until the window has passed", w.Code)
	}
	if w := from(e, attacker, "GET", "/", "", "Authorization", "Bearer "+token); w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Errorf("a bearer token from the refused address answered %d (Retry-After %q), want 429", w.Code, w.Header().Get("Retry-After"))
	}

	// Another address is not affected.
	if w := from(e, other, "POST", "/login", wrong); w.Code != http.StatusUnauthorized {
		t.Errorf("a wrong token from another address answered %d, want 401", w.Code)
	}
	if w := from(e, other, "POST", "/login", right); w.Code != http.StatusSeeOther || !strings.Contains(w.Header().Get("Set-Cookie"), "lexigram_token=") {
		t.Errorf("the right token from another address answered %d (cookie %q), want 303 with the cookie", w.Code, w.Header().Get("Set-Cookie"))
	}

	// Once the window has passed, the right token works from there too.
	var last *httptest.ResponseRecorder
	waitUntil(t, "the right token accepted once the window has passed", func() bool {
		last = from(e, attacker, "POST", "/login", right)
		if last.Code != http.StatusSeeOther && last.Code != http.StatusTooManyRequests {
			t.Fatalf("the right token answered %d: %.300s", last.Code, last.Body.String())
		}
		return last.Code == http.StatusSeeOther
	})
	if waited := time.Since(began); waited < window-100*time.Millisecond {
		t.Errorf("the refused address signed in again after %s, before the %s window had passed", waited, window)
	}
	if w := from(e, attacker, "GET", "/", "", "Authorization", "Bearer "+token); w.Code != http.StatusOK {
		t.Errorf("a bearer token from the address let in again answered %d", w.Code)
	}
}

// TestWrongBearerTokensCountToo: guessing through the Authorization
// header (or the login cookie) counts like the login page, so that the
// limit cannot be gone around; a stale cookie is cleared.
func TestWrongBearerTokensCountToo(t *testing.T) {
	e := start(t, dashboard.Options{Token: "s3cret-token", Public: true, WrongTokens: httpapi.NewWrongTokens(5, time.Minute)}, nil)
	addr := "203.0.113.5:1234"
	for i := 1; i <= 4; i++ {
		if w := from(e, addr, "GET", "/", "", "Authorization", "Bearer guess"); w.Code != http.StatusUnauthorized {
			t.Fatalf("wrong bearer token %d answered %d", i, w.Code)
		}
	}
	w := from(e, addr, "GET", "/", "", "Cookie", "lexigram_token=stale")
	if w.Code != http.StatusUnauthorized || !strings.Contains(w.Header().Get("Set-Cookie"), "Max-Age=0") {
		t.Errorf("a stale cookie answered %d (Set-Cookie %q): want 401 clearing it", w.Code, w.Header().Get("Set-Cookie"))
	}
	if w := from(e, addr, "GET", "/live?view=overview", "", "Authorization", "Bearer guess"); w.Code != http.StatusTooManyRequests || !strings.Contains(w.Body.String(), "try again in") {
		t.Errorf("the sixth wrong token, on the live stream, answered %d: %.300s", w.Code, w.Body.String())
	}
	// Presenting no token is no guess: the sign-in page still shows.
	if w := from(e, addr, "GET", "/login", ""); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `id="token"`) {
		t.Errorf("the sign-in page answered %d to a refused address", w.Code)
	}
}

// TestAPIAndDashboardShareTheCount: with one WrongTokens, as lexigram
// serve sets them up, wrong tokens sent to the API count on the
// dashboard, so a guesser gets the limit once, not once per surface.
func TestAPIAndDashboardShareTheCount(t *testing.T) {
	const token = "s3cret-token"
	shared := httpapi.NewWrongTokens(3, time.Minute)
	e := start(t, dashboard.Options{Token: token, Public: true, WrongTokens: shared}, nil)
	api := httpapi.Handler(e.n, httpapi.Options{Token: token, Public: true, WrongTokens: shared})
	addr := "203.0.113.9:5555"
	for i := 1; i <= 3; i++ {
		req := httptest.NewRequest("GET", "/api/streams", nil)
		req.RemoteAddr = addr
		req.Header.Set("Authorization", "Bearer guess")
		w := httptest.NewRecorder()
		api.ServeHTTP(w, req)
		if w.Code != http.StatusUnauthorized {
			t.Fatalf("wrong token %d on the API answered %d", i, w.Code)
		}
	}
	if w := from(e, addr, "POST", "/login", "token="+token+"&next=%2Fui%2F"); w.Code != http.StatusTooManyRequests {
		t.Errorf("the dashboard's sign-in after three wrong tokens on the API answered %d, want 429", w.Code)
	}
}
