package dashboard

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/lexigram/events/node"
	"github.com/lexigram/events/node/httpapi"
	"github.com/lexigram/events/platform"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// Options configure New. The zero value works: no token, loopback,
// mounted at /ui/.
type Options struct {
	// Token is the token every page requires; "": none (then a Public
	// dashboard refuses every request). The node's http.token.
	Token string
	// Public says the listener is not on a loopback address
	// (httpapi.IsLoopback tells from an address).
	Public bool
	// Prefix is the path the handler is mounted at, with no trailing
	// slash. "": "/ui".
	Prefix string
	// LiveInterval is how often an open page's event stream polls what
	// it shows. 0: 1s.
	LiveInterval time.Duration
	// CorrelationScan bounds how many of the newest events a correlation
	// search reads. 0: 100,000.
	CorrelationScan int
	// Logger logs the actions operators take and what fails on the
	// node's side. nil: the node's.
	Logger *slog.Logger
	// WrongTokens counts wrong tokens by remote address and refuses an
	// address that gave too many (429); give the API's
	// (httpapi.Options.WrongTokens) so that both count together. nil: its
	// own, 5 within a minute.
	WrongTokens *httpapi.WrongTokens
}

func (o Options) withDefaults(n *node.Node) Options {
	if o.Prefix == "" {
		o.Prefix = "/ui"
	}
	o.Prefix = strings.TrimSuffix(o.Prefix, "/")
	if o.LiveInterval <= 0 {
		o.LiveInterval = time.Second
	}
	if o.CorrelationScan <= 0 {
		o.CorrelationScan = 100_000
	}
	if o.Logger == nil {
		o.Logger = n.Logger()
	}
	if o.WrongTokens == nil {
		o.WrongTokens = httpapi.NewWrongTokens(0, 0)
	}
	return o
}

// Dashboard serves the dashboard of one node; it is an http.Handler to
// mount at Options.Prefix + "/".
type Dashboard struct {
	n       *node.Node
	opts    Options
	log     *slog.Logger
	pages   map[string]*template.Template // by page name
	handler http.Handler
	bulk    bulkJobs // the bulk dead letter actions
}

// pageNames are the templates/*.html files that are pages; each is
// parsed with layout.html.
var pageNames = []string{"overview", "aggregates", "history", "correlation", "projections", "dlq", "entry", "bridgedlq", "bridgeentry", "sagas", "saga", "consumers", "confirm", "login", "error"}

// New returns the dashboard of n (see the package documentation).
func New(n *node.Node, opts Options) (*Dashboard, error) {
	if n == nil {
		return nil, platform.Errorf(platform.CodeInvalidArgument, "dashboard.New: the node is nil: pass the node to show")
	}
	d := &Dashboard{n: n, opts: opts.withDefaults(n), pages: map[string]*template.Template{}}
	d.log = d.opts.Logger
	funcs := template.FuncMap{
		"path":  func(parts ...string) string { return d.opts.Prefix + strings.Join(parts, "") },
		"seg":   url.PathEscape,
		"bytes": humanBytes,
		"when":  when,
		"join":  strings.Join,
		"ms":    func(t time.Duration) string { return t.Round(time.Millisecond).String() },
		"pct": func(done, total uint64) uint64 {
			if total == 0 {
				return 0
			}
			return min(100, done*100/total)
		},
	}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFiles, "templates/layout.html", "templates/fragments.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("dashboard: parse the %s page: %w", name, err)
		}
		d.pages[name] = t
	}
	static, err := fs.Sub(staticFiles, "static")
	if err != nil {
		return nil, err
	}
	if d.opts.Public && d.opts.Token == "" {
		d.log.Warn("dashboard: the listener is not on loopback and no token is set: every dashboard request is refused; set http.token (LEXIGRAM_HTTP_TOKEN)")
	}
	p := d.opts.Prefix
	mux := http.NewServeMux()
	mux.Handle("GET "+p+"/static/", http.StripPrefix(p+"/static/", cacheStatic(http.FileServerFS(static))))
	mux.HandleFunc("GET "+p+"/login", d.loginPage)
	mux.HandleFunc("POST "+p+"/login", d.login)
	mux.HandleFunc("POST "+p+"/logout", d.logout)
	mux.Handle("GET "+p+"/{$}", d.authorize(http.HandlerFunc(d.overview)))
	mux.Handle("GET "+p+"/aggregates", d.authorize(http.HandlerFunc(d.aggregates)))
	mux.Handle("GET "+p+"/aggregates/{type}/{id}", d.authorize(http.HandlerFunc(d.history)))
	mux.Handle("GET "+p+"/correlations/{id}", d.authorize(http.HandlerFunc(d.correlation)))
	mux.Handle("GET "+p+"/projections", d.authorize(http.HandlerFunc(d.projections)))
	mux.Handle("POST "+p+"/projections/{name}/{action}", d.authorize(http.HandlerFunc(d.projectionAction)))
	mux.Handle("GET "+p+"/dlq", d.authorize(http.HandlerFunc(d.dlq)))
	mux.Handle("GET "+p+"/dlq/{handler}/{position}", d.authorize(http.HandlerFunc(d.entry)))
	mux.Handle("POST "+p+"/dlq/{handler}/{position}/{action}", d.authorize(http.HandlerFunc(d.entryAction)))
	mux.Handle("POST "+p+"/dlq/{handler}/all/{action}", d.authorize(http.HandlerFunc(d.bulkAction)))
	mux.Handle("GET "+p+"/bridge-dlq", d.authorize(http.HandlerFunc(d.bridgeDLQ)))
	mux.Handle("GET "+p+"/bridge-dlq/{seq}", d.authorize(http.HandlerFunc(d.bridgeEntry)))
	mux.Handle("POST "+p+"/bridge-dlq/{seq}/{action}", d.authorize(http.HandlerFunc(d.bridgeEntryAction)))
	mux.Handle("POST "+p+"/bridge-dlq/{bridge}/all/{action}", d.authorize(http.HandlerFunc(d.bridgeBulkAction)))
	mux.Handle("GET "+p+"/sagas", d.authorize(http.HandlerFunc(d.sagas)))
	mux.Handle("GET "+p+"/sagas/{id}", d.authorize(http.HandlerFunc(d.saga)))
	mux.Handle("POST "+p+"/sagas/{id}/{action}", d.authorize(http.HandlerFunc(d.sagaAction)))
	mux.Handle("GET "+p+"/consumers", d.authorize(http.HandlerFunc(d.consumers)))
	mux.Handle("GET "+p+"/live", d.authorize(http.HandlerFunc(d.live)))
	mux.Handle(p+"/", d.authorize(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.fail(w, r, http.StatusNotFound, "there is no page "+r.Method+" "+r.URL.Path, "use the links in the navigation")
	})))
	d.handler = http.NewCrossOriginProtection().Handler(securityHeaders(mux))
	return d, nil
}

// ServeHTTP serves the dashboard's pages.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) { d.handler.ServeHTTP(w, r) }

// securityHeaders keeps the pages out of frames and their scripts to
// the dashboard's own.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

func cacheStatic(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		next.ServeHTTP(w, r)
	})
}

// page is what every page template gets.
type page struct {
	Title  string
	Nav    string // the navigation entry to mark current
	Prefix string
	Notice string // what the last action did
	Data   any
}

// render executes the page's template into a buffer first, so that a
// template error becomes an error page, not half a page.
func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, status int, name, title, nav string, data any) {
	var buf bytes.Buffer
	p := page{Title: title, Nav: nav, Prefix: d.opts.Prefix, Notice: r.URL.Query().Get("notice"), Data: data}
	if err := d.pages[name].ExecuteTemplate(&buf, "layout.html", p); err != nil {
		d.log.Error("dashboard: render a page", "page", name, "err", err)
		http.Error(w, "the dashboard could not render this page; see the node's log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fragment executes one named template of a page, for the live updates.
func (d *Dashboard) fragment(pageName, block string, data any) (string, error) {
	var buf bytes.Buffer
	p := page{Prefix: d.opts.Prefix, Data: data}
	if err := d.pages[pageName].ExecuteTemplate(&buf, block, p); err != nil {
		return "", fmt.Errorf("dashboard: render %s of the %s page: %w", block, pageName, err)
	}
	return buf.String(), nil
}

// problem is what the error page shows.
type problem struct {
	Status int
	Detail string
	Fix    string
}

// fail answers with the error page.
func (d *Dashboard) fail(w http.ResponseWriter, r *http.Request, status int, detail, fix string) {
	if status >= 500 && r.Context().Err() == nil {
		d.log.Warn("dashboard: request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", detail)
	}
	d.render(w, r, status, "error", http.StatusText(status), "", problem{Status: status, Detail: detail, Fix: fix})
}

// failErr answers with the error page for an error of the node: the
// status its code means.
func (d *Dashboard) failErr(w http.ResponseWriter, r *http.Request, err error, fix string) {
	status := http.StatusInternalServerError
	switch {
	case hasCode(err, platform.CodeInvalidArgument):
		status = http.StatusUnprocessableEntity
	case hasCode(err, platform.CodeStreamNotFound), hasCode(err, platform.CodeSagaNotFound):
		status = http.StatusNotFound
	case hasCode(err, platform.CodeSagaConflict), hasCode(err, platform.CodeConcurrency), hasCode(err, platform.CodeNotLeader):
		status = http.StatusConflict
	case hasCode(err, platform.CodeStoreUnavailable):
		status = http.StatusServiceUnavailable
	}
	d.fail(w, r, status, err.Error(), fix)
}

// hasCode reports whether a platform error with the code is in err's
// chain, however deep.
func hasCode(err error, code platform.Code) bool {
	return errors.Is(err, &platform.Error{Code: code})
}

// redirect sends the browser to path (under the prefix) with a notice.
func (d *Dashboard) redirect(w http.ResponseWriter, r *http.Request, path, notice string) {
	target, anchor, _ := strings.Cut(d.opts.Prefix+path, "#")
	if notice != "" {
		sep := "?"
		if strings.Contains(target, "?") {
			sep = "&"
		}
		target += sep + "notice=" + url.QueryEscape(notice)
	}
	if anchor != "" {
		target += "#" + anchor
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func when(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05.000Z")
}
