package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
)

// authorize refuses requests without the token (see the package
// documentation). The token is compared in constant time and never
// logged or echoed. A wrong token counts against the remote address
// (Options.WrongTokens); an address that gave too many gets 429 for any
// request carrying a token until its window has passed.
func (a *api) authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.opts.Token == "" && !a.opts.Public {
			next.ServeHTTP(w, r)
			return
		}
		if a.opts.Token == "" {
			refuse(w, r, "invalid_token", "this node listens on a non-loopback address and has no API token, so it refuses every /api request",
				"set http.token (LEXIGRAM_HTTP_TOKEN) on the node and send it as \"Authorization: Bearer <token>\", or listen on loopback")
			return
		}
		got, how := bearer(r)
		switch {
		case how == "":
			refuse(w, r, "", "the request carries no token",
				"send \"Authorization: Bearer <token>\" with the node's http.token"+streamHint(r))
		case how == "malformed":
			refuse(w, r, "invalid_request", "the Authorization header is not \"Bearer <token>\"",
				"send \"Authorization: Bearer <token>\" with the node's http.token")
		default:
			if until, refused := a.opts.WrongTokens.Blocked(r); refused {
				reason := a.opts.WrongTokens.Refusal(w, r, until)
				writeProblem(w, r, &problem{Status: http.StatusTooManyRequests, Title: "Too Many Requests", Detail: reason,
					Fix: "wait for Retry-After seconds, then send the node's http.token"})
				return
			}
			if !sameToken(got, a.opts.Token) {
				a.opts.WrongTokens.Failed(r)
				a.opts.Logger.Warn("api: refused a wrong token", "remote", r.RemoteAddr, "via", how)
				refuse(w, r, "invalid_token", "the token is wrong", "send the node's http.token")
				return
			}
			a.opts.WrongTokens.Succeeded(r)
			next.ServeHTTP(w, r)
		}
	})
}

func streamHint(r *http.Request) string {
	if r.URL.Path == "/api/stream" {
		return ", or a token query parameter"
	}
	return ""
}

// bearer returns the request's token and where it came from: "header",
// "query" (the WebSocket route only), "malformed" or "" (none).
func bearer(r *http.Request) (token, how string) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			return "", "malformed"
		}
		return strings.TrimSpace(tok), "header"
	}
	if r.URL.Path == "/api/stream" {
		if tok := r.URL.Query().Get("token"); tok != "" {
			return tok, "query"
		}
	}
	return "", ""
}

// refuse answers 401 with WWW-Authenticate (RFC 6750) and a problem.
func refuse(w http.ResponseWriter, r *http.Request, errCode, detail, fix string) {
	challenge := `Bearer realm="lexigram"`
	if errCode != "" {
		challenge += `, error="` + errCode + `"`
	}
	w.Header().Set("WWW-Authenticate", challenge)
	writeProblem(w, r, &problem{Status: http.StatusUnauthorized, Title: "Unauthorized", Detail: detail, Fix: fix})
}

// CheckToken applies the API's token rule (see the package
// documentation) to a token a request presented ("" for none): nil when
// it may go on, else an error saying why not and the fix. want is the
// node's http.token, public whether the listener is off loopback. The
// dashboard (node/dashboard) uses it for the token it keeps in a cookie,
// so both refuse and admit the same requests.
func CheckToken(presented, want string, public bool) error {
	switch {
	case want == "" && !public:
		return nil
	case want == "":
		return errors.New("this node listens on a non-loopback address and has no token, so it refuses every request: set http.token (LEXIGRAM_HTTP_TOKEN) on the node, or listen on loopback")
	case presented == "":
		return errors.New("the request carries no token: give the node's http.token")
	case !sameToken(presented, want):
		return errors.New("the token is wrong: give the node's http.token")
	}
	return nil
}

// sameToken compares the tokens' SHA-256 digests in constant time: a
// comparison of the tokens themselves would take less time for a token
// of another length, telling a guesser the token's length.
func sameToken(presented, want string) bool {
	p, w := sha256.Sum256([]byte(presented)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(p[:], w[:]) == 1
}
