package dashboard

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/lexigram/events/platform"
)

// keepAlive is how often an idle event stream sends a comment, so that
// proxies and browsers keep it open.
const keepAlive = 15 * time.Second

// part is one piece of a page the live stream sends: the HTML of the
// element with the id, replacing its content or appended to it.
type part struct {
	op     string // "replace" or "append"
	target string
	html   string
}

// sse writes server-sent events.
type sse struct {
	w     http.ResponseWriter
	flush func()
	sent  map[string]string // what each replaced target shows
}

// send writes the parts that changed since they were last sent.
func (s *sse) send(parts []part) error {
	wrote := false
	for _, p := range parts {
		if p.op == "replace" {
			if s.sent[p.target] == p.html {
				continue
			}
			s.sent[p.target] = p.html
		}
		var b strings.Builder
		b.WriteString("event: " + p.op + "\ndata: " + p.target + "\n")
		for line := range strings.SplitSeq(p.html, "\n") {
			b.WriteString("data: " + strings.TrimSuffix(line, "\r") + "\n")
		}
		b.WriteString("\n")
		if _, err := fmt.Fprint(s.w, b.String()); err != nil {
			return err
		}
		wrote = true
	}
	if wrote {
		s.flush()
	}
	return nil
}

func (s *sse) comment(text string) error {
	if _, err := fmt.Fprint(s.w, ": "+text+"\n\n"); err != nil {
		return err
	}
	s.flush()
	return nil
}

// live serves GET /ui/live?view=...: the live parts of one page, for as
// long as the tab is open (see the package documentation).
func (d *Dashboard) live(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	q := r.URL.Query()
	var (
		render func(ctx context.Context) ([]part, error)
		wake   <-chan struct{}
		every  = d.opts.LiveInterval
	)
	switch view := q.Get("view"); view {
	case "overview":
		var rates overviewRates
		render = func(ctx context.Context) ([]part, error) {
			o, err := d.overviewOf(ctx)
			if err != nil {
				return nil, err
			}
			if err := rates.add(ctx, d, &o); err != nil {
				return nil, err
			}
			return d.parts("overview", "overview-live", o)
		}
	case "projections":
		every = min(every, 500*time.Millisecond) // a rebuild's progress moves fast
		render = func(ctx context.Context) ([]part, error) {
			return d.parts("projections", "projections-live", d.projectionRows(ctx))
		}
	case "dlq":
		handler := q.Get("handler")
		render = func(ctx context.Context) ([]part, error) {
			data, err := d.deadLetters(ctx, handler)
			if err != nil {
				return nil, err
			}
			return d.parts("dlq", "dlq-live", data)
		}
	case "bridge-dlq":
		bridge := q.Get("bridge")
		render = func(ctx context.Context) ([]part, error) {
			data, err := d.bridgeDeadLetters(ctx, bridge)
			if err != nil {
				return nil, err
			}
			return d.parts("bridgedlq", "bridgedlq-live", data)
		}
	case "sagas":
		render = func(ctx context.Context) ([]part, error) {
			data, err := d.sagaSummary(ctx)
			if err != nil {
				return nil, err
			}
			return d.parts("sagas", "sagas-live", data)
		}
	case "consumers":
		var bridgeRates rates
		render = func(ctx context.Context) ([]part, error) {
			data, err := d.consumersOf(ctx, &bridgeRates)
			if err != nil {
				return nil, err
			}
			return d.parts("consumers", "consumers-live", data)
		}
	case "aggregate":
		var stop func()
		var err error
		render, wake, stop, err = d.liveHistory(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		defer stop()
		every = 5 * every // the subscription wakes it; polling is the fallback
	default:
		http.Error(w, fmt.Sprintf("400 Bad Request: view=%q: use overview, projections, dlq, bridge-dlq, sagas, consumers or aggregate", view), http.StatusBadRequest)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	s := &sse{w: w, flush: func() { _ = rc.Flush() }, sent: map[string]string{}}
	if err := s.comment("live"); err != nil {
		return
	}
	ctx := r.Context()
	tick := time.NewTicker(every)
	defer tick.Stop()
	idle := time.NewTicker(keepAlive)
	defer idle.Stop()
	for {
		if d.n.Conn().IsClosed() {
			return // the node has stopped
		}
		parts, err := render(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			parts = []part{{op: "replace", target: "live-status", html: "Live updates paused: " + template.HTMLEscapeString(err.Error())}}
		} else {
			parts = append(parts, part{op: "replace", target: "live-status", html: ""})
		}
		if err := s.send(parts); err != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-wake:
		case <-idle.C:
			if err := s.comment("ping"); err != nil {
				return
			}
		}
	}
}

// parts renders a page's live block as the part replacing the element
// of the same id.
func (d *Dashboard) parts(pageName, block string, data any) ([]part, error) {
	html, err := d.fragment(pageName, block, data)
	if err != nil {
		return nil, err
	}
	return []part{{op: "replace", target: block, html: html}}, nil
}

// liveHistory follows one aggregate after the position a history page
// ended at: a core NATS subscription on the aggregate's subject wakes it
// (no consumer), and it reads what is new with the store's Read (direct
// gets), as rows appended to the page's table.
func (d *Dashboard) liveHistory(r *http.Request) (render func(context.Context) ([]part, error), wake <-chan struct{}, stop func(), err error) {
	q := r.URL.Query()
	stream := platform.StreamID{Type: q.Get("type"), ID: q.Get("id")}
	subject, err := d.n.Store().Subject(stream)
	if err != nil {
		return nil, nil, nil, err
	}
	after, err := strconv.ParseUint(q.Get("after"), 10, 64)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("after=%q: give the position of the last event shown", q.Get("after"))
	}
	woken := make(chan struct{}, 1)
	sub, err := d.n.Conn().Subscribe(subject, func(*nats.Msg) {
		select {
		case woken <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("follow %s: %w", stream, err)
	}
	render = func(ctx context.Context) ([]part, error) {
		var rows []eventRow
		for e, err := range d.n.Store().Read(ctx, stream, platform.Revision{Position: after}) {
			if err != nil && !platform.IsDecodeError(err) {
				return nil, err
			}
			var row eventRow
			if err != nil {
				row = undecodableRow(err)
			} else {
				row = rowOf(e)
			}
			rows = append(rows, row)
			after = max(after, row.Position)
			if len(rows) == maxHistory {
				break
			}
		}
		if len(rows) == 0 {
			return nil, nil
		}
		html, err := d.fragment("history", "rows", historyData{Events: rows})
		if err != nil {
			return nil, err
		}
		return []part{{op: "append", target: "history-rows", html: html}}, nil
	}
	return render, woken, func() { _ = sub.Unsubscribe() }, nil
}
