package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/node"
	"github.com/lexigram/events/node/dashboard"
	"github.com/lexigram/events/platform"
)

// dashboardEvent is the event of the dashboard figures' aggregate.
type dashboardEvent struct {
	Account string `json:"account"`
	Amount  int64  `json:"amount"`
	Note    string `json:"note"`
}

// dashboardHistory is the events of the history page measured.
const dashboardHistory = 1000

// dashboardJobs lists the figures of the admin dashboard (issue 16).
func (r *runner) dashboardJobs() []job {
	return []job{{names: []string{"dashboard.overview", "dashboard.history.1000"}, env: envNoFsync, run: r.dashboardRender}}
}

// dashboardRender: the server time of the dashboard's overview and of
// an aggregate's history page of 1,000 events (the handler called in
// process, so no network is counted), against the raw work underneath
// measured in the same run: for the overview the same NATS requests
// (account info, the event stream's info, the stream list), for the
// history the store's Read of the same 1,000 events. The bar is
// under 100 ms for each page.
func (r *runner) dashboardRender(ctx context.Context, _ *env) ([]Figure, error) {
	reg := platform.NewRegistry()
	if err := platform.Register[dashboardEvent](reg, "bench.dashboard-deposit", 1); err != nil {
		return nil, err
	}
	n, err := node.OpenInMemory(ctx, node.Options{Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	defer n.Close()
	stream := platform.StreamID{Type: "account", ID: "account-000001"}
	for i := 0; i < dashboardHistory; i += 100 {
		batch := make([]platform.Envelope, 100)
		for j := range batch {
			batch[j] = platform.Envelope{Event: dashboardEvent{Account: stream.ID, Amount: int64(i + j), Note: "a deposit of the dashboard figure"},
				CorrelationID: "corr-bench", Metadata: map[string]string{"source": "bench"}}
		}
		if _, err := n.Store().Append(ctx, stream, platform.Any(), batch); err != nil {
			return nil, err
		}
	}
	d, err := dashboard.New(n, dashboard.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	page := func(path string) op {
		return func(ctx context.Context) error {
			req := httptest.NewRequestWithContext(ctx, http.MethodGet, path, nil)
			req.RemoteAddr = "127.0.0.1:1"
			w := httptest.NewRecorder()
			d.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				return fmt.Errorf("dashboard %s: status %d: %.200s", path, w.Code, w.Body.String())
			}
			return nil
		}
	}
	rawOverview := func(ctx context.Context) error {
		if _, err := n.JetStream().AccountInfo(ctx); err != nil {
			return err
		}
		if _, err := n.Store().RefreshDurability(ctx); err != nil {
			return err
		}
		lister := n.JetStream().ListStreams(ctx)
		for range lister.Info() {
		}
		if err := lister.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
			return err
		}
		return nil
	}
	rawHistory := func(ctx context.Context) error {
		read := 0
		for _, err := range n.Store().Read(ctx, stream, platform.Revision{}) {
			if err != nil {
				return err
			}
			read++
		}
		if read != dashboardHistory {
			return fmt.Errorf("read %d events, want %d", read, dashboardHistory)
		}
		return nil
	}
	var figs []Figure
	for _, c := range []struct {
		name, what, target string
		ours, raw          op
	}{
		{"dashboard.overview", "GET /ui/ (server, JetStream API level, durability, every stream) against its NATS requests made directly (account info, the event stream's info, the stream list)",
			"<= 2.00", page("/ui/"), rawOverview},
		{"dashboard.history.1000", "GET /ui/aggregates/{type}/{id}?limit=1000 (every envelope and its event as JSON in HTML) against the store's Read of the same 1,000 events",
			"<= 5.00", page("/ui/aggregates/account/account-000001?limit=1000"), rawHistory},
	} {
		f, err := r.serverTime(ctx, c.name, c.what, c.target, c.ours, c.raw)
		if err != nil {
			return figs, err
		}
		figs = append(figs, f)
	}
	return figs, nil
}

// serverTime measures ours and raw in alternating rounds, in
// milliseconds per call; the ratio is the median of the rounds' ratios.
func (r *runner) serverTime(ctx context.Context, name, what, target string, ours, raw op) (Figure, error) {
	for _, f := range []op{ours, raw, ours, raw} { // warm up
		if err := f(ctx); err != nil {
			return Figure{}, err
		}
	}
	var o, w, ratios []float64
	for i := range r.plan.rounds {
		var got [2]float64
		for _, side := range sidesOf(i) {
			f, k := ours, 0
			if side == "raw" {
				f, k = raw, 1
			}
			ms, err := msPerCall(ctx, r.plan.phase/2, f)
			if err != nil {
				return Figure{}, err
			}
			got[k] = ms
		}
		o, w, ratios = append(o, got[0]), append(w, got[1]), append(ratios, got[0]/got[1])
	}
	ms := median(o)
	bar := "under"
	if ms >= 100 {
		bar = "OVER"
	}
	return Figure{Name: name, Ours: ms, Raw: median(w), Unit: "ms/page", Ratio: median(ratios), Target: target,
		Note: fmt.Sprintf("%s; server time %s the issue's 100 ms bar; %d alternating rounds of %.1fs per side (ours %s ms, raw %s ms)",
			what, bar, r.plan.rounds, (r.plan.phase / 2).Seconds(), spread(o, 1), spread(w, 1))}, nil
}

// msPerCall calls f for about d (at least 5 times) and returns the
// milliseconds per call.
func msPerCall(ctx context.Context, d time.Duration, f op) (float64, error) {
	n := 0
	start := time.Now()
	for n < 5 || time.Since(start) < d {
		if err := f(ctx); err != nil {
			return 0, err
		}
		n++
	}
	return float64(time.Since(start).Microseconds()) / 1000 / float64(n), nil
}
