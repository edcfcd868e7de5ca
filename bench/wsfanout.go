package bench

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/lexigram/events/node"
	"github.com/lexigram/events/node/httpapi"
	"github.com/lexigram/events/platform"
)

// wsClients is how many WebSocket clients node.ws.fanout serves.
const wsClients = 100

func (r *runner) wsJobs() []job {
	return []job{{names: []string{"node.ws.fanout"}, env: envNoFsync, run: r.wsFanout}}
}

// wsFanout: 100 clients follow /api/stream while 8 writers append; the
// figure is the rate the slowest client received every event at, against
// the rate they were appended at, in the same run (1.00: every client
// kept up with the writers).
func (r *runner) wsFanout(ctx context.Context, _ *env) ([]Figure, error) {
	total := 20_000
	if r.opts.Quick {
		total = 5_000
	}
	n, err := node.OpenInMemory(ctx, node.Options{Registry: r.reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	defer n.Close()
	mux := http.NewServeMux()
	mux.Handle("/api/", httpapi.Handler(n, httpapi.Options{Logger: slog.New(slog.DiscardHandler), StreamBuffer: 4096, SlowClientTimeout: 30 * time.Second}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	url := "ws://" + ln.Addr().String() + "/api/stream?aggregate_type=" + accountType

	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var lastAt [wsClients]atomic.Int64 // when each client got its last event, unix nanos
	var got [wsClients]atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, wsClients)
	ready := make(chan struct{}, wsClients)
	for c := range wsClients {
		conn, _, err := websocket.Dial(ctx, url, nil)
		if err != nil {
			return nil, fmt.Errorf("node.ws.fanout: client %d: %w", c, err)
		}
		conn.SetReadLimit(1 << 20)
		wg.Go(func() {
			defer conn.CloseNow()
			ready <- struct{}{}
			for got[c].Load() < int64(total) {
				_, data, err := conn.Read(ctx)
				if err != nil {
					errs <- fmt.Errorf("client %d after %d events: %w", c, got[c].Load(), err)
					return
				}
				if strings.Contains(string(data), `"position"`) {
					got[c].Add(1)
					lastAt[c].Store(time.Now().UnixNano())
				}
			}
		})
	}
	for range wsClients {
		<-ready
	}
	// Each client's ordered consumer is made when it connects; appends
	// start once the last of them exists.
	if err := waitConsumers(ctx, n, wsClients); err != nil {
		return nil, err
	}
	began := time.Now()
	const writers = 8
	var appendWG sync.WaitGroup
	appendErr := make(chan error, writers)
	for w := range writers {
		appendWG.Go(func() {
			for i := w; i < total; i += writers {
				if _, err := n.Store().Append(ctx, streamID(i), platform.Any(), events(accountID(i), 1)); err != nil {
					appendErr <- err
					return
				}
			}
		})
	}
	appendWG.Wait()
	appended := time.Since(began)
	select {
	case err := <-appendErr:
		return nil, err
	default:
	}
	wg.Wait()
	select {
	case err := <-errs:
		return nil, fmt.Errorf("node.ws.fanout: %w", err)
	default:
	}
	var slowest time.Duration
	for c := range wsClients {
		slowest = max(slowest, time.Duration(lastAt[c].Load()-began.UnixNano()))
	}
	ours, raw := float64(total)/slowest.Seconds(), float64(total)/appended.Seconds()
	return []Figure{{Name: "node.ws.fanout", Ours: ours, Raw: raw, Unit: "events/s", Target: ">= 0.90",
		Note: fmt.Sprintf("%d events appended by 8 writers while %d WebSocket clients follow /api/stream (one ordered consumer each): the rate the slowest client received them all at, against the rate they were appended at; %d events delivered in all", total, wsClients, total*wsClients)}}, nil
}

// waitConsumers waits until the event stream has at least want consumers.
func waitConsumers(ctx context.Context, n *node.Node, want int) error {
	stream, err := n.JetStream().Stream(ctx, n.Store().StreamName())
	if err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		info, err := stream.Info(ctx)
		if err != nil {
			return err
		}
		if info.State.Consumers >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node.ws.fanout: %d of %d clients' consumers after a minute", info.State.Consumers, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
