package bench

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/handlers/durable"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// durableJobs lists the figures of durable event handlers (issue 3).
func (r *runner) durableJobs() []job {
	plain := envNoFsync
	if r.opts.NATSURL != "" {
		plain = envExternal
	}
	return []job{{names: []string{"handler.durable"}, env: plain, run: r.durableThroughput}}
}

// durableThroughput times a no-op durable handler over preloaded events
// against a raw durable pull consumer with explicit acks over the same
// events: each round creates a fresh consumer on each side from the first
// event and stops when the last one is acknowledged.
func (r *runner) durableThroughput(ctx context.Context, e *env) ([]Figure, error) {
	total, rounds := 200_000, 8
	if r.opts.Quick {
		total, rounds = 50_000, 2
	}
	st, done, err := r.newStore(ctx, e, jetstream.FileStorage)
	if err != nil {
		return nil, err
	}
	defer done()
	began := time.Now()
	if err := r.preload(ctx, e, st, "handler.durable", total); err != nil {
		return nil, err
	}
	preloadTook := time.Since(began)
	stream, err := e.js.Stream(ctx, st.StreamName())
	if err != nil {
		return nil, err
	}
	filter := stream.CachedInfo().Config.Subjects[0]
	r.seq++
	dlqName := fmt.Sprintf("LXBENCH_DLQ_%s_%d", r.runID, r.seq)
	dlq, err := durable.OpenDLQ(ctx, e.js, st, durable.DLQOptions{Stream: dlqName, SubjectPrefix: fmt.Sprintf("lxbench.%s.%d.dlq", r.runID, r.seq)})
	if err != nil {
		return nil, err
	}
	defer r.deleteStream(e, dlqName)
	defer r.deleteStream(e, dlqName+"_ADVISORIES")

	const prefetch = 500 // nats.go's default, on both sides
	ours := func(ctx context.Context, name string) error {
		var n atomic.Int64
		finished := make(chan struct{})
		h, err := durable.New(ctx, e.js, st, name, func(context.Context, platform.Envelope) error {
			if n.Add(1) == int64(total) {
				close(finished)
			}
			return nil
		}, durable.Options{DLQ: dlq, Logger: r.log, Prefetch: prefetch})
		if err != nil {
			return err
		}
		defer func() { _ = h.Stop(context.WithoutCancel(ctx)) }()
		return waitFor(ctx, finished, &n, total)
	}
	raw := func(ctx context.Context, name string) error {
		cons, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: name, AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: filter})
		if err != nil {
			return err
		}
		var n atomic.Int64
		finished := make(chan struct{})
		cc, err := cons.Consume(func(msg jetstream.Msg) {
			if err := msg.Ack(); err == nil && n.Add(1) == int64(total) {
				close(finished)
			}
		}, jetstream.PullMaxMessages(prefetch))
		if err != nil {
			return err
		}
		defer cc.Stop()
		return waitFor(ctx, finished, &n, total)
	}
	cleanup := func(name string) {
		for _, s := range []string{st.StreamName(), dlqName, dlqName + "_ADVISORIES"} {
			if err := e.js.DeleteConsumer(ctx, s, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
				r.progress("could not delete consumer %s on %s: %v", name, s, err)
			}
		}
	}
	var o, w []float64
	for i := -1; i < rounds; i++ { // i == -1 warms up
		sides := []struct {
			name string
			f    func(context.Context, string) error
			out  *[]float64
		}{{"ours", ours, &o}, {"raw", raw, &w}}
		if i%2 != 0 {
			sides[0], sides[1] = sides[1], sides[0]
		}
		for _, s := range sides {
			name := fmt.Sprintf("lxbench-%s-%d", s.name, i+1)
			t := time.Now()
			err := s.f(ctx, name)
			took := time.Since(t)
			cleanup(name)
			if err != nil {
				return nil, fmt.Errorf("%s, round %d: %w", s.name, i+1, err)
			}
			if i >= 0 {
				*s.out = append(*s.out, float64(total)/took.Seconds())
				r.progress("handler.durable: round %d %s %.0f events/s", i+1, s.name, float64(total)/took.Seconds())
			}
		}
	}
	return []Figure{{
		Name: "handler.durable", Ours: median(o), Raw: median(w), Ratio: pairedRatio(o, w), Unit: "events/s", Target: ">= 0.80",
		Note: fmt.Sprintf("%d events preloaded in %.0fs; a fresh durable consumer per side and round, from the first event to the last ack; ours is a no-op durable.Handler (decodes each event, acks after the handler), raw is Consume with msg.Ack and no decoding; PullMaxMessages %d on both; median of %d alternating rounds",
			total, preloadTook.Seconds(), prefetch, rounds),
	}}, nil
}

// waitFor waits until finished closes, failing if no event arrives for 30s.
func waitFor(ctx context.Context, finished <-chan struct{}, n *atomic.Int64, total int) error {
	last, stalled := n.Load(), time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-finished:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if now := n.Load(); now != last {
				last, stalled = now, time.Now()
			} else if time.Since(stalled) > 30*time.Second {
				return fmt.Errorf("stalled at %d of %d events", now, total)
			}
		}
	}
}

var _ durable.Store = (*lxjs.EventStore)(nil)
