package bridgeconfig

import (
	"context"
	"errors"
	"time"

	"github.com/lexigram/events/bridges"
)

// pinger is implemented by publishers and subscribers that can ask their broker whether
// it answers without sending anything.
type pinger interface {
	Ping(ctx context.Context) error
}

// probeBackoff spaces the attempts of a probe.
var probeBackoff = bridges.Backoff{Min: 100 * time.Millisecond, Max: time.Second}

// probePublisher waits up to timeout for pub's broker to answer: Ping
// when pub has it, else a Publish of no messages, which makes a publisher
// that connects on first use connect. It returns the last failure.
func probePublisher(ctx context.Context, pub bridges.Publisher, timeout time.Duration) error {
	try := func(ctx context.Context) error { return pub.Publish(ctx) }
	if p, ok := pub.(pinger); ok {
		try = p.Ping
	}
	return probe(ctx, try, timeout)
}

// probe calls try until it succeeds or timeout passes, and returns the
// last failure.
func probe(ctx context.Context, try func(context.Context) error, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for attempt := 0; ; attempt++ {
		err := try(ctx)
		if err == nil {
			return nil
		}
		// Past the deadline an adapter reports only the deadline: the
		// failure before it says more.
		if last == nil || !errors.Is(err, context.DeadlineExceeded) {
			last = err
		}
		if !probeBackoff.Sleep(ctx, attempt) {
			return last
		}
	}
}

// waitConnected polls connected until it holds or timeout passes.
func waitConnected(ctx context.Context, connected func() bool, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !connected() {
		select {
		case <-ctx.Done():
			return connected()
		case <-tick.C:
		}
	}
	return true
}
