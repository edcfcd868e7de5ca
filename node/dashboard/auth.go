package dashboard

import (
	"context"
	"net/http"
	"strings"

	"github.com/lexigram/events/node/httpapi"
)

// tokenCookie holds the token the login page was given.
const tokenCookie = "lexigram_token"

type actorKey struct{}

// actor is who asked for a request, for the log of actions: never the
// token itself.
func actor(ctx context.Context) string {
	if a, ok := ctx.Value(actorKey{}).(string); ok {
		return a
	}
	return "unknown"
}

// presented is the token a request carries: the Authorization header's
// (how says so), else the login cookie's.
func presented(r *http.Request) (token, how string, malformed bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			return "", "", true
		}
		return strings.TrimSpace(tok), "bearer token", false
	}
	if c, err := r.Cookie(tokenCookie); err == nil && c.Value != "" {
		return c.Value, "login token", false
	}
	return "", "", false
}

// authorize refuses requests without the token, by node/httpapi's rule,
// and records who asked for the others. A wrong token, in the header or
// the login cookie, counts against the remote address as on the login
// page, so guessing cannot go around it; an address refused for that
// gets 429 for any request carrying a token.
func (d *Dashboard) authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, how, malformed := presented(r)
		if malformed {
			d.refuse(w, r, "the Authorization header is not \"Bearer <token>\"")
			return
		}
		if tok != "" && d.opts.Token != "" {
			if until, refused := d.opts.WrongTokens.Blocked(r); refused {
				d.tooMany(w, r, until)
				return
			}
		}
		if err := httpapi.CheckToken(tok, d.opts.Token, d.opts.Public); err != nil {
			if tok != "" && d.opts.Token != "" {
				d.opts.WrongTokens.Failed(r)
				d.log.Warn("dashboard: refused a wrong token", "remote", r.RemoteAddr, "via", how)
			}
			if how == "login token" { // a stale cookie: the browser need not send it again
				http.SetCookie(w, &http.Cookie{Name: tokenCookie, Path: d.opts.Prefix + "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
			}
			d.refuse(w, r, err.Error())
			return
		}
		who := "remote " + r.RemoteAddr + " (no token on a loopback listener)"
		if d.opts.Token != "" {
			who = how + " holder at " + r.RemoteAddr
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), actorKey{}, who)))
	})
}

// loginData is what the login page shows.
type loginData struct {
	Reason string
	Next   string
	Open   bool // no token is needed
}

// refuse answers 401: the login page for a page, plain text for the live
// stream (a browser's EventSource shows no page).
func (d *Dashboard) refuse(w http.ResponseWriter, r *http.Request, reason string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="lexigram"`)
	if r.URL.Path == d.opts.Prefix+"/live" || r.Method != http.MethodGet {
		http.Error(w, "401 Unauthorized: "+reason, http.StatusUnauthorized)
		return
	}
	d.render(w, r, http.StatusUnauthorized, "login", "Sign in", "", loginData{Reason: reason, Next: r.URL.RequestURI()})
}

// loginPage serves GET /ui/login.
func (d *Dashboard) loginPage(w http.ResponseWriter, r *http.Request) {
	d.render(w, r, http.StatusOK, "login", "Sign in", "", loginData{Next: d.safeNext(r.URL.Query().Get("next")),
		Open: d.opts.Token == "" && !d.opts.Public})
}

// login serves POST /ui/login: a right token is kept in a cookie. An
// address that gave too many wrong tokens (Options.WrongTokens) is
// refused (429), with the right token too; other addresses are not
// affected. The
// comparison is httpapi.CheckToken's, in constant time.
func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	tok := strings.TrimSpace(r.PostFormValue("token"))
	next := d.safeNext(r.PostFormValue("next"))
	if d.opts.Token != "" {
		if until, refused := d.opts.WrongTokens.Blocked(r); refused {
			d.log.Warn("dashboard: refused a sign-in: too many wrong tokens", "remote", r.RemoteAddr, "until", until)
			d.tooMany(w, r, until)
			return
		}
	}
	if err := httpapi.CheckToken(tok, d.opts.Token, d.opts.Public); err != nil || d.opts.Token == "" {
		reason := "this node needs no token here"
		if err != nil {
			reason = err.Error()
			if tok != "" && d.opts.Token != "" {
				d.opts.WrongTokens.Failed(r)
			}
			d.log.Warn("dashboard: refused a sign-in", "remote", r.RemoteAddr)
		}
		d.render(w, r, http.StatusUnauthorized, "login", "Sign in", "", loginData{Reason: reason, Next: next})
		return
	}
	d.opts.WrongTokens.Succeeded(r)
	http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: tok, Path: d.opts.Prefix + "/", HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	d.log.Info("dashboard: signed in", "remote", r.RemoteAddr)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout serves POST /ui/logout.
func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: tokenCookie, Path: d.opts.Prefix + "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, d.opts.Prefix+"/login", http.StatusSeeOther)
}

// safeNext keeps a redirect after sign-in on the dashboard.
func (d *Dashboard) safeNext(next string) string {
	if !strings.HasPrefix(next, d.opts.Prefix+"/") || strings.HasPrefix(next, "//") || strings.Contains(next, "\\") {
		return d.opts.Prefix + "/"
	}
	return next
}
