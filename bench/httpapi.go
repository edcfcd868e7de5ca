package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/lexigram/events/handlers"
	"github.com/lexigram/events/node"
	"github.com/lexigram/events/node/httpapi"
	"github.com/lexigram/events/platform"
)

// httpCommand is the command of the node.http.command figure.
type httpCommand struct {
	Account string `json:"account"`
	Amount  int64  `json:"amount"`
}

// httpClients is how many clients post at once.
const httpClients = 32

// httpJobs lists the figure of the node's HTTP API (issue 15).
func (r *runner) httpJobs() []job {
	return []job{{names: []string{"node.http.command"}, env: envNoFsync, run: r.httpCommandRate}}
}

// httpCommandRate: commands posted to the API at 32 concurrent clients
// over loopback, against a bare net/http handler that decodes the same
// JSON and dispatches it in process. Both reach the same no-op handler
// on one in-memory node, so the ratio is the API's own cost: routing,
// the registry lookup, strict decoding, problem mapping, the result's
// JSON.
func (r *runner) httpCommandRate(ctx context.Context, _ *env) ([]Figure, error) {
	reg := platform.NewRegistry()
	if err := platform.Register[httpCommand](reg, "bench.http-deposit", 1); err != nil {
		return nil, err
	}
	n, err := node.OpenInMemory(ctx, node.Options{Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	defer n.Close()
	if err := handlers.HandleCommand(n.Commands(), func(context.Context, httpCommand) error { return nil }); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/api/", httpapi.Handler(n, httpapi.Options{Logger: slog.New(slog.DiscardHandler)}))
	mux.HandleFunc("POST /raw", func(w http.ResponseWriter, req *http.Request) {
		var c httpCommand
		if err := json.NewDecoder(http.MaxBytesReader(w, req.Body, 1<<20)).Decode(&c); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		res, err := n.Commands().Dispatch(req.Context(), c)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]uint64{"version": res.Version, "position": res.Position})
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: httpClients * 2, MaxConnsPerHost: httpClients * 2}}
	defer client.CloseIdleConnections()
	base := "http://" + ln.Addr().String()
	body := []byte(`{"account":"account-000001","amount":100}`)
	post := func(url string) op {
		return func(ctx context.Context) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s: status %d", url, resp.StatusCode)
			}
			return nil
		}
	}
	clients := func(f op) []op { return slices.Repeat([]op{f}, httpClients) }
	ours, raw := clients(post(base+"/api/commands/bench.http-deposit")), clients(post(base+"/raw"))
	var o, w, ratios []float64
	for i := range r.plan.rounds {
		var got [2]float64
		for _, side := range sidesOf(i) {
			ops, k := ours, 0
			if side == "raw" {
				ops, k = raw, 1
			}
			rate, err := hammer(ctx, r.plan.phase, ops)
			if err != nil {
				return nil, err
			}
			got[k] = rate
		}
		o, w, ratios = append(o, got[0]), append(w, got[1]), append(ratios, got[0]/got[1])
	}
	dispatch, err := nsPerOp(ctx, r.plan.phase/2, func(ctx context.Context) error {
		_, err := n.Commands().Dispatch(ctx, httpCommand{Account: "account-000001", Amount: 100})
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(o) == 0 {
		return nil, errors.New("no rounds")
	}
	return []Figure{{Name: "node.http.command", Ours: median(o), Raw: median(w), Unit: "commands/s", Ratio: median(ratios), Target: ">= 0.80",
		Note: fmt.Sprintf("POST /api/commands/{type} at %d concurrent keep-alive clients over loopback to a no-op handler, against a bare net/http handler decoding the same JSON and calling Dispatch; the in-process Dispatch alone takes %s ns/op; %d alternating rounds of %.1fs per side (ours %s, raw %s)",
			httpClients, num(dispatch), r.plan.rounds, r.plan.phase.Seconds(), spread(o, 1), spread(w, 1))}}, nil
}
