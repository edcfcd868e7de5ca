package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// groupCommitJobs lists the figures of group commit (issue 5): the
// store with group commit on against raw conditional single publishes.
func (r *runner) groupCommitJobs() []job {
	durability := []string{envFsync, envNoFsync}
	if r.opts.NATSURL != "" {
		durability = []string{envExternal}
	}
	var jobs []job
	add := func(name, v string, writers, pct int) {
		jobs = append(jobs, job{
			names: []string{name + "/" + v, name + ".p50/" + v, name + ".p99/" + v}, env: v,
			run: func(ctx context.Context, e *env) ([]Figure, error) {
				return r.groupConcurrent(ctx, e, name, "/"+v, writers, pct)
			},
		})
	}
	for _, v := range durability {
		add("groupcommit.concurrent", v, concurrentWriters, 0)
	}
	// The conflict and scaling figures matter where group commit is on.
	add("groupcommit.conflicts5", durability[0], concurrentWriters, 5)
	add("groupcommit.concurrent512", durability[0], 512, 0)
	if r.opts.NATSURL == "" {
		add("groupcommit.concurrent", envR3, concurrentWriters, 0)
	}
	for _, v := range durability[:1] {
		jobs = append(jobs, job{
			names: []string{"groupcommit.latency.p50/" + v, "groupcommit.latency.p99/" + v}, env: v,
			run: func(ctx context.Context, e *env) ([]Figure, error) { return r.groupLatency(ctx, e, "/"+v) },
		})
	}
	sweep := func(where, suffix string, storage jetstream.StorageType, writers []int) {
		for _, n := range writers {
			name := fmt.Sprintf("groupcommit.sweep.w%d", n)
			jobs = append(jobs, job{
				names: []string{name + suffix, name + ".p99" + suffix}, env: where,
				run: func(ctx context.Context, e *env) ([]Figure, error) {
					return r.groupSweep(ctx, e, name, suffix, storage, n)
				},
			})
		}
	}
	// The whole range users meet, not only its ends, where group commit is
	// on by default; a coarser one on the other storage.
	full, coarse := []int{1, 2, 4, 8, 16, 32, 64, 128, 512}, []int{1, 4, 16, 64, 512}
	if r.opts.Quick {
		full, coarse = full[:7], coarse[:4]
	}
	sweep(durability[0], "/"+durability[0], jetstream.FileStorage, full)
	if r.opts.NATSURL == "" {
		sweep(envNoFsync, "/"+envNoFsync, jetstream.FileStorage, coarse)
		sweep(envNoFsync, "/mem", jetstream.MemoryStorage, coarse)
		sweep(envR3, "/"+envR3, jetstream.FileStorage, coarse)
	}
	return jobs
}

func withGroupCommit(o *lxjs.Options) { o.GroupCommit = lxjs.GroupCommit{Enabled: true} }

// loadRound is one side of one round under load: the rate and every
// call's duration.
type loadRound struct {
	rate  float64
	lat   []time.Duration
	stats lxjs.GroupCommitStats // ours only
}

// hammerTimed is hammer that also keeps each call's duration.
func hammerTimed(ctx context.Context, d time.Duration, ops []op) (loadRound, error) {
	lats := make([][]time.Duration, len(ops))
	timedOps := make([]op, len(ops))
	var mu sync.Mutex
	for i, f := range ops {
		timedOps[i] = func(ctx context.Context) error {
			t := time.Now()
			err := f(ctx)
			el := time.Since(t)
			mu.Lock()
			lats[i] = append(lats[i], el)
			mu.Unlock()
			return err
		}
	}
	rate, err := hammer(ctx, d, timedOps)
	return loadRound{rate: rate, lat: slices.Concat(lats...)}, err
}

// groupConcurrent: writers writers, single events to random aggregates of
// their own share of 10,000; pct percent of the appends carry a stale
// revision, as a writer that lost a race would.
func (r *runner) groupConcurrent(ctx context.Context, e *env, name, suffix string, writers, pct int) ([]Figure, error) {
	side := func(newOp func(st *lxjs.EventStore, ids []int, seed uint64) (op, error)) func(ctx context.Context, st *lxjs.EventStore) (loadRound, error) {
		return func(ctx context.Context, st *lxjs.EventStore) (loadRound, error) {
			ops := make([]op, writers)
			for w := range ops {
				var err error
				if ops[w], err = newOp(st, owned(w, writers, concurrentAggregates), uint64(w)); err != nil {
					return loadRound{}, err
				}
			}
			round, err := hammerTimed(ctx, r.plan.phase, ops)
			round.stats = st.GroupCommitStats()
			return round, err
		}
	}
	ours := side(func(st *lxjs.EventStore, ids []int, seed uint64) (op, error) {
		return oursStaleAppend(st, ids, pct, seed), nil
	})
	raw := side(func(st *lxjs.EventStore, ids []int, seed uint64) (op, error) {
		return r.rawStaleAppend(e.js, st, ids, pct, seed)
	})
	o, w, err := alternateWith(ctx, r, e, jetstream.FileStorage, withGroupCommit, ours, raw)
	if err != nil {
		return nil, err
	}
	or, wr := roundRates(o), roundRates(w)
	sizes := groupSizes(o)
	ol, wl := pooledLatencies(o), pooledLatencies(w)
	target := ""
	if suffix == "/"+envFsync && pct == 0 && writers == concurrentWriters {
		target = ">= 10"
	}
	what := fmt.Sprintf("%d writers, conditional single-event appends to %d aggregates", writers, concurrentAggregates)
	if pct > 0 {
		what += fmt.Sprintf(", %d%% of them with a stale revision (a conflict, answered by the server; counted as done)", pct)
	}
	latNote := fmt.Sprintf("%s; every call's duration, %d ours and %d raw samples pooled from %d alternating rounds; lower is better", what, len(ol), len(wl), r.plan.rounds)
	return []Figure{
		{Name: name + suffix, Ours: median(or), Raw: median(wr), Ratio: pairedRatio(or, wr), Unit: "events/s", Target: target,
			Note: "group commit on against raw single publishes; " + what + "; " + sizes + "; " + roundsNote(r, or, wr, 1)},
		{Name: name + ".p50" + suffix, Ours: ms(percentile(ol, 50)), Raw: ms(percentile(wl, 50)), Unit: "ms", Note: latNote},
		{Name: name + ".p99" + suffix, Ours: ms(percentile(ol, 99)), Raw: ms(percentile(wl, 99)), Unit: "ms", Note: latNote},
	}, nil
}

// groupSweep: the store with group commit on against the same store with
// it off, writers writers appending single events to their own aggregates,
// so that group commit is never slower than plain appends at any
// concurrency.
func (r *runner) groupSweep(ctx context.Context, e *env, name, suffix string, storage jetstream.StorageType, writers int) ([]Figure, error) {
	side := func(ctx context.Context, st *lxjs.EventStore) (loadRound, error) {
		ops := make([]op, writers)
		for w := range ops {
			ops[w] = oursStaleAppend(st, owned(w, writers, concurrentAggregates), 0, uint64(w))
		}
		round, err := hammerTimed(ctx, r.plan.phase, ops)
		round.stats = st.GroupCommitStats()
		return round, err
	}
	on, off, err := alternateWith(ctx, r, e, storage, withGroupCommit, side, side)
	if err != nil {
		return nil, err
	}
	onRates, offRates := roundRates(on), roundRates(off)
	onLat, offLat := pooledLatencies(on), pooledLatencies(off)
	// Never slower anywhere; worth having where it is on by default.
	target := ">= 0.95"
	switch {
	case suffix == "/"+envFsync && writers == 512:
		target = ">= 6"
	case suffix == "/"+envFsync && writers == 64:
		target = ">= 2"
	}
	what := fmt.Sprintf("%d writers, conditional single-event appends to their own aggregates; raw is the same store with group commit off", writers)
	return []Figure{
		{Name: name + suffix, Ours: median(onRates), Raw: median(offRates), Ratio: pairedRatio(onRates, offRates), Unit: "events/s", Target: target,
			Note: "group commit on against off; " + what + "; " + groupSizes(on) + "; " + roundsNote(r, onRates, offRates, 1)},
		{Name: name + ".p99" + suffix, Ours: ms(percentile(onLat, 99)), Raw: ms(percentile(offLat, 99)), Unit: "ms", Target: "<= 1.1",
			Note: fmt.Sprintf("%s; every call's duration, %d on and %d off samples pooled; lower is better", what, len(onLat), len(offLat))},
	}, nil
}

func roundRates(rs []loadRound) []float64 {
	out := make([]float64, len(rs))
	for i, x := range rs {
		out[i] = x.rate
	}
	return out
}

func pooledLatencies(rs []loadRound) []time.Duration {
	var all []time.Duration
	for _, x := range rs {
		all = append(all, x.lat...)
	}
	slices.Sort(all)
	return all
}

// groupSizes says what groups the rounds formed.
func groupSizes(rs []loadRound) string {
	var groups, grouped, failures, switches uint64
	for _, x := range rs {
		groups, grouped, failures, switches = groups+x.stats.Groups, grouped+x.stats.Appends, failures+x.stats.Failures, switches+x.stats.Switches
	}
	last := rs[len(rs)-1].stats
	way := fmt.Sprintf("%d switches between singles and groups; at the end of the last round %.1f appends in flight, an append expected to take %.2f ms alone and %.2f ms in a group", switches, last.Demand, ms(last.Single), ms(last.Group))
	if groups == 0 {
		return "no groups formed; " + way
	}
	return fmt.Sprintf("%d groups of %.1f appends on average, %d groups settled after a failure; %s", groups, float64(grouped)/float64(groups), failures, way)
}

// groupLatency: one writer with group commit on, sequential appends.
func (r *runner) groupLatency(ctx context.Context, e *env, suffix string) ([]Figure, error) {
	return r.sequentialLatency(ctx, e, "groupcommit.latency", suffix, withGroupCommit, "one writer, group commit on: an append alone goes out at once; ")
}

// oursStaleAppend is oursAppend where pct percent of the calls append on
// the aggregate's previous revision: the store must answer them with a
// conflict, which counts as done.
func oursStaleAppend(st *lxjs.EventStore, ids []int, pct int, seed uint64) op {
	revs := make([]platform.Revision, len(ids))
	prev := make([]platform.Revision, len(ids))
	streams := make([]platform.StreamID, len(ids))
	evs := make([][]platform.Envelope, len(ids))
	for k, i := range ids {
		streams[k] = streamID(i)
		evs[k] = events(streams[k].ID, 1)
	}
	rng := rand.New(rand.NewPCG(seed, 5))
	return func(ctx context.Context) error {
		k := rng.IntN(len(ids))
		if revs[k].Version > 0 && rng.IntN(100) < pct {
			_, err := st.Append(ctx, streams[k], platform.ExactRevision(prev[k]), evs[k])
			if errors.Is(err, platform.ErrConcurrency) {
				return nil
			}
			return fmt.Errorf("a stale append to %v: want a conflict, got %v", streams[k], err)
		}
		res, err := st.Append(ctx, streams[k], platform.ExactRevision(revs[k]), evs[k])
		if err != nil {
			return err
		}
		prev[k], revs[k] = revs[k], res.Revision()
		return nil
	}
}

// rawStaleAppend is oursStaleAppend done with js.PublishMsg.
func (r *runner) rawStaleAppend(js jetstream.JetStream, st *lxjs.EventStore, ids []int, pct int, seed uint64) (op, error) {
	subjects, err := subjectsOf(st, ids)
	if err != nil {
		return nil, err
	}
	last := make([]uint64, len(ids))
	prev := make([]uint64, len(ids))
	rng := rand.New(rand.NewPCG(seed, 5))
	return func(ctx context.Context) error {
		k := rng.IntN(len(ids))
		stale := last[k] > 0 && rng.IntN(100) < pct
		expect := last[k]
		if stale {
			expect = prev[k]
		}
		ack, err := js.PublishMsg(ctx, &nats.Msg{Subject: subjects[k], Header: nats.Header{}, Data: r.body},
			jetstream.WithExpectLastSequencePerSubject(expect))
		if stale {
			var apiErr *jetstream.APIError
			if errors.As(err, &apiErr) && apiErr.ErrorCode == 10071 {
				return nil
			}
			return fmt.Errorf("a stale publish to %s expecting %s: want error 10071, got %v", subjects[k], strconv.FormatUint(expect, 10), err)
		}
		if err != nil {
			return err
		}
		prev[k], last[k] = last[k], ack.Sequence
		return nil
	}, nil
}
