package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

const (
	concurrentWriters    = 64
	concurrentAggregates = 10_000
	latencyAggregates    = 100
	batchAggregates      = 1000
	batchSize            = 10
)

// op is one measured operation of a writer.
type op func(ctx context.Context) error

// side is one half of a comparison. It gets a fresh stream per call.
type side[T any] func(ctx context.Context, st *lxjs.EventStore) (T, error)

// alternate runs ours and raw for rounds rounds, ours first in even rounds
// and raw first in odd ones, each call on its own fresh stream, and returns
// both sides' results in round order.
func alternate[T any](ctx context.Context, r *runner, e *env, storage jetstream.StorageType, ours, raw side[T]) (o, w []T, err error) {
	return alternateWith(ctx, r, e, storage, nil, ours, raw)
}

// alternateWith is alternate with ours's stores configured by oursOpts.
func alternateWith[T any](ctx context.Context, r *runner, e *env, storage jetstream.StorageType, oursOpts func(*lxjs.Options), ours, raw side[T]) (o, w []T, err error) {
	type half struct {
		name string
		run  side[T]
		out  *[]T
		opts []func(*lxjs.Options)
	}
	var oo []func(*lxjs.Options)
	if oursOpts != nil {
		oo = append(oo, oursOpts)
	}
	for i := range r.plan.rounds {
		halves := []half{{"ours", ours, &o, oo}, {"raw", raw, &w, nil}}
		if i%2 == 1 {
			slices.Reverse(halves)
		}
		for _, h := range halves {
			st, done, err := r.newStore(ctx, e, storage, h.opts...)
			if err != nil {
				return nil, nil, err
			}
			v, err := h.run(ctx, st)
			done()
			if err != nil {
				return nil, nil, fmt.Errorf("%s, round %d: %w", h.name, i+1, err)
			}
			*h.out = append(*h.out, v)
		}
	}
	return o, w, nil
}

// alternateTimed times ours and raw for r.plan.rounds rounds each on a
// setup they share, ours first in even rounds and raw first in odd ones,
// and returns every call's duration, round by round.
func alternateTimed(ctx context.Context, r *runner, ours, raw op) (o, w [][]time.Duration, err error) {
	for i := range r.plan.rounds {
		sides := []struct {
			f   op
			out *[][]time.Duration
		}{{ours, &o}, {raw, &w}}
		if i%2 == 1 {
			slices.Reverse(sides)
		}
		for _, s := range sides {
			d, err := timed(ctx, r.plan.latencyPhase, s.f)
			if err != nil {
				return nil, nil, err
			}
			*s.out = append(*s.out, d)
		}
	}
	return o, w, nil
}

// hammer runs one goroutine per op, each calling it in a loop until d has
// passed, and returns the completed calls per second.
func hammer(ctx context.Context, d time.Duration, ops []op) (float64, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var n atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for _, f := range ops {
		wg.Go(func() {
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if err := f(ctx); err != nil {
					cancel(err)
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := context.Cause(ctx); err != nil {
		return 0, err
	}
	return float64(n.Load()) / elapsed.Seconds(), nil
}

// timed calls f in a loop until d has passed and returns each call's duration.
func timed(ctx context.Context, d time.Duration, f op) ([]time.Duration, error) {
	var out []time.Duration
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		t := time.Now()
		if err := f(ctx); err != nil {
			return nil, err
		}
		out = append(out, time.Since(t))
	}
	return out, nil
}

// owned is writer w's share of total aggregates: w, w+writers, w+2*writers...
func owned(w, writers, total int) []int {
	var ids []int
	for i := w; i < total; i += writers {
		ids = append(ids, i)
	}
	return ids
}

// picker chooses the next of n aggregates: at random or round-robin.
func picker(n int, random bool, seed uint64) func() int {
	if random {
		rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
		return func() int { return rng.IntN(n) }
	}
	next := -1
	return func() int { next = (next + 1) % n; return next }
}

// oursAppend returns a writer that appends n-event batches to the
// aggregates ids, each conditional on the revision its previous append
// returned.
func oursAppend(st *lxjs.EventStore, ids []int, n int, random bool) op {
	revs := make([]platform.Revision, len(ids))
	// Made up front, as rawAppend makes its subjects and body up front.
	streams := make([]platform.StreamID, len(ids))
	evs := make([][]platform.Envelope, len(ids))
	for k, i := range ids {
		streams[k] = streamID(i)
		evs[k] = events(streams[k].ID, n)
	}
	pick := picker(len(ids), random, uint64(ids[0]))
	return func(ctx context.Context) error {
		k := pick()
		res, err := st.Append(ctx, streams[k], platform.ExactRevision(revs[k]), evs[k])
		if err != nil {
			return err
		}
		revs[k] = res.Revision()
		return nil
	}
}

// subjectsOf returns the subjects of the aggregates ids, made up front as
// the raw writers make their bodies up front.
func subjectsOf(st *lxjs.EventStore, ids []int) ([]string, error) {
	subjects := make([]string, len(ids))
	for k, i := range ids {
		var err error
		if subjects[k], err = st.Subject(streamID(i)); err != nil {
			return nil, err
		}
	}
	return subjects, nil
}

// rawAppend is oursAppend done by hand: js.PublishMsg with the expected
// last subject sequence for one event, jetstreamext.PublishMsgBatch with it
// on the first message for more.
func (r *runner) rawAppend(js jetstream.JetStream, st *lxjs.EventStore, ids []int, n int, random bool) (op, error) {
	subjects, err := subjectsOf(st, ids)
	if err != nil {
		return nil, err
	}
	last := make([]uint64, len(ids))
	pick := picker(len(ids), random, uint64(ids[0]))
	return func(ctx context.Context) error {
		k := pick()
		if n == 1 {
			ack, err := js.PublishMsg(ctx, &nats.Msg{Subject: subjects[k], Header: nats.Header{}, Data: r.body},
				jetstream.WithExpectLastSequencePerSubject(last[k]))
			if err != nil {
				return err
			}
			last[k] = ack.Sequence
			return nil
		}
		msgs := make([]*nats.Msg, n)
		for i := range msgs {
			msgs[i] = &nats.Msg{Subject: subjects[k], Header: nats.Header{}, Data: r.body}
		}
		msgs[0].Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(last[k], 10))
		ack, err := jetstreamext.PublishMsgBatch(ctx, js, msgs)
		if err != nil {
			return err
		}
		last[k] = ack.Sequence
		return nil
	}, nil
}

// roundsNote describes how a throughput figure was taken, with the spread
// of the rounds (scaled by per, e.g. events per call) as a hint of the noise.
func roundsNote(r *runner, o, w []float64, per float64) string {
	return fmt.Sprintf("medians of %d alternating rounds of %.1fs per side, each on a fresh stream; ratio: median of the rounds' ratios (rounds: ours %s, raw %s)",
		r.plan.rounds, r.plan.phase.Seconds(), spread(o, per), spread(w, per))
}

func spread(xs []float64, per float64) string {
	return num(slices.Min(xs)*per) + "–" + num(slices.Max(xs)*per)
}

// appendConcurrent: 64 writers, single events to random aggregates of
// their own share of 10,000.
func (r *runner) appendConcurrent(ctx context.Context, e *env, suffix string) ([]Figure, error) {
	writers := func(newOp func(ids []int) (op, error)) ([]op, error) {
		ops := make([]op, concurrentWriters)
		for w := range ops {
			var err error
			if ops[w], err = newOp(owned(w, concurrentWriters, concurrentAggregates)); err != nil {
				return nil, err
			}
		}
		return ops, nil
	}
	ours := func(ctx context.Context, st *lxjs.EventStore) (float64, error) {
		ops, err := writers(func(ids []int) (op, error) { return oursAppend(st, ids, 1, true), nil })
		if err != nil {
			return 0, err
		}
		return hammer(ctx, r.plan.phase, ops)
	}
	raw := func(ctx context.Context, st *lxjs.EventStore) (float64, error) {
		ops, err := writers(func(ids []int) (op, error) { return r.rawAppend(e.js, st, ids, 1, true) })
		if err != nil {
			return 0, err
		}
		return hammer(ctx, r.plan.phase, ops)
	}
	o, w, err := alternate(ctx, r, e, jetstream.FileStorage, ours, raw)
	if err != nil {
		return nil, err
	}
	return []Figure{{
		Name: "append.concurrent" + suffix, Ours: median(o), Raw: median(w), Ratio: pairedRatio(o, w), Unit: "events/s", Target: ">= 0.90",
		Note: fmt.Sprintf("%d writers, conditional single-event appends to %d aggregates; %s", concurrentWriters, concurrentAggregates, roundsNote(r, o, w, 1)),
	}}, nil
}

// appendLatency: one writer, sequential single-event appends.
func (r *runner) appendLatency(ctx context.Context, e *env, suffix string) ([]Figure, error) {
	return r.sequentialLatency(ctx, e, "append.latency", suffix, nil, "")
}

// sequentialLatency times one writer's single-event appends, ours (with
// oursOpts) against raw, and returns the name.p50 and name.p99 figures.
func (r *runner) sequentialLatency(ctx context.Context, e *env, name, suffix string, oursOpts func(*lxjs.Options), what string) ([]Figure, error) {
	ids := owned(0, 1, latencyAggregates)
	ours := func(ctx context.Context, st *lxjs.EventStore) ([]time.Duration, error) {
		return timed(ctx, r.plan.latencyPhase, oursAppend(st, ids, 1, false))
	}
	raw := func(ctx context.Context, st *lxjs.EventStore) ([]time.Duration, error) {
		f, err := r.rawAppend(e.js, st, ids, 1, false)
		if err != nil {
			return nil, err
		}
		return timed(ctx, r.plan.latencyPhase, f)
	}
	o, w, err := alternateWith(ctx, r, e, jetstream.FileStorage, oursOpts, ours, raw)
	if err != nil {
		return nil, err
	}
	oursS, rawS := slices.Sorted(slices.Values(slices.Concat(o...))), slices.Sorted(slices.Values(slices.Concat(w...)))
	note := fmt.Sprintf("%s%d ours and %d raw samples pooled from %d alternating rounds of %.1fs per side, each on a fresh stream; lower is better",
		what, len(oursS), len(rawS), r.plan.rounds, r.plan.latencyPhase.Seconds())
	return []Figure{
		{Name: name + ".p50" + suffix, Ours: ms(percentile(oursS, 50)), Raw: ms(percentile(rawS, 50)), Unit: "ms", Target: "<= 1.15", Note: note},
		{Name: name + ".p99" + suffix, Ours: ms(percentile(oursS, 99)), Raw: ms(percentile(rawS, 99)), Unit: "ms", Note: note},
	}, nil
}

// appendBatch10: one writer, 10-event appends, round-robin over 1,000 aggregates.
func (r *runner) appendBatch10(ctx context.Context, e *env, suffix string, storage jetstream.StorageType) ([]Figure, error) {
	ids := owned(0, 1, batchAggregates)
	ours := func(ctx context.Context, st *lxjs.EventStore) (float64, error) {
		return hammer(ctx, r.plan.phase, []op{oursAppend(st, ids, batchSize, false)})
	}
	raw := func(ctx context.Context, st *lxjs.EventStore) (float64, error) {
		f, err := r.rawAppend(e.js, st, ids, batchSize, false)
		if err != nil {
			return 0, err
		}
		return hammer(ctx, r.plan.phase, []op{f})
	}
	o, w, err := alternate(ctx, r, e, storage, ours, raw)
	if err != nil {
		return nil, err
	}
	f := Figure{Name: "append.batch10" + suffix, Ours: median(o) * batchSize, Raw: median(w) * batchSize, Ratio: pairedRatio(o, w), Unit: "events/s", Target: ">= 0.90"}
	f.Note = fmt.Sprintf("one writer; per 10-event batch: ours %.2f ms, raw %.2f ms", 1000*batchSize/f.Ours, 1000*batchSize/f.Raw)
	if storage == jetstream.FileStorage {
		f.Note += "; an R1 file stream stages every atomic batch on disk before commit (~3-5 ms per batch), which dominates both"
	}
	f.Note += "; " + roundsNote(r, o, w, batchSize)
	return []Figure{f}, nil
}

// allocs counts heap allocations per single-event append against a raw
// conditional publish.
func (r *runner) allocs(ctx context.Context, e *env) ([]Figure, error) {
	st, done, err := r.newStore(ctx, e, jetstream.FileStorage)
	if err != nil {
		return nil, err
	}
	defer done()
	ours := oursAppend(st, owned(0, 1, latencyAggregates), 1, false)
	raw, err := r.rawAppend(e.js, st, owned(latencyAggregates, 1, 2*latencyAggregates), 1, false)
	if err != nil {
		return nil, err
	}
	oa, ob, err := allocsPerOp(ctx, r.plan.allocOps, ours)
	if err != nil {
		return nil, fmt.Errorf("ours: %w", err)
	}
	ra, rb, err := allocsPerOp(ctx, r.plan.allocOps, raw)
	if err != nil {
		return nil, fmt.Errorf("raw: %w", err)
	}
	where := "the in-process server's allocations for each message included"
	if e.srv == nil {
		where = "client only (external server)"
	}
	return []Figure{{
		Name: "append.allocs", Ours: oa, Raw: ra, Unit: "allocs/op",
		Note: fmt.Sprintf("whole-process heap allocations per single-event append over %d calls, %s; ours %+.0f allocs, %.0f vs %.0f B/op; lower is better",
			r.plan.allocOps, where, oa-ra, ob, rb),
	}}, nil
}

// allocsPerOp warms f up and then returns the heap allocations and bytes
// per call over n calls.
func allocsPerOp(ctx context.Context, n int, f op) (allocs, bytes float64, err error) {
	for range 200 {
		if err := f(ctx); err != nil {
			return 0, 0, err
		}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range n {
		if err := f(ctx); err != nil {
			return 0, 0, err
		}
	}
	runtime.ReadMemStats(&after)
	return float64(after.Mallocs-before.Mallocs) / float64(n), float64(after.TotalAlloc-before.TotalAlloc) / float64(n), nil
}
