//go:build faults

package faults_test

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lexigram/events/faults"
	"github.com/lexigram/events/platform"
)

// valueAdded carries a value no other event carries.
type valueAdded struct{ Value string }

// tally is the aggregate the writers append to; it keeps no state, so
// that a load costs the read alone.
type tally struct {
	platform.AggregateRoot
	events int
}

func (t *tally) AggregateType() string { return "tally" }
func (t *tally) Apply(any)             { t.events++ }

func registry() *platform.Registry {
	r := platform.NewRegistry()
	platform.MustRegister[valueAdded](r, "faults.value-added", 1)
	return r
}

func valueOf(e platform.Envelope) string {
	if v, ok := e.Event.(valueAdded); ok {
		return v.Value
	}
	return fmt.Sprintf("not a value: %T at position %d", e.Event, e.Position)
}

// workload is writers appending unique values, one to three at a time,
// to a few hot aggregates (every writer meets every other there) and
// many cold ones, through the repository and its retry on conflict.
type workload struct {
	Writers, Hot, Cold int
	// UpdateTimeout bounds one repository update, retries included.
	UpdateTimeout time.Duration
	// HotPercent is the share of updates that go to a hot aggregate.
	HotPercent int
	// pairs gives every two writers an aggregate of their own instead.
	pairs bool

	rec  *faults.Recorder
	repo *platform.Repository[*tally]

	updates, failures atomic.Int64
	lastErr           atomic.Value // a recent failure, for the log
	stop              chan struct{}
	wg                sync.WaitGroup
}

func newWorkload(store platform.EventStore, writers, hot, cold int) *workload {
	rec := faults.NewRecorder(store)
	return &workload{
		Writers: writers, Hot: hot, Cold: cold, UpdateTimeout: 4 * time.Second, HotPercent: 50,
		rec:  rec,
		repo: platform.NewRepository(rec, func() *tally { return &tally{} }, platform.RepositoryOptions{UpdateRetries: 10}),
		stop: make(chan struct{}),
	}
}

// start runs the writers until halt; each draws its choices from seed
// and scenario.
func (w *workload) start(seed uint64, scenario string) {
	base := streamOf(scenario)
	for i := range w.Writers {
		w.wg.Add(1)
		go w.write(i, rand.New(rand.NewPCG(seed, base+uint64(i)+1)))
	}
}

func (w *workload) write(writer int, rng *rand.Rand) {
	defer w.wg.Done()
	for op := 0; ; op++ {
		select {
		case <-w.stop:
			return
		default:
		}
		id := fmt.Sprintf("cold-%d", rng.IntN(w.Cold))
		switch {
		case w.pairs:
			id = fmt.Sprintf("pair-%d", writer/2)
		case rng.IntN(100) < w.HotPercent:
			id = fmt.Sprintf("hot-%d", rng.IntN(w.Hot))
		}
		n := 1
		if rng.IntN(4) == 0 {
			n = 2 + rng.IntN(2) // an atomic batch
		}
		ctx, cancel := context.WithTimeout(context.Background(), w.UpdateTimeout)
		_, _, err := w.repo.Update(ctx, id, func(t *tally) error {
			for j := range n {
				platform.Raise(t, valueAdded{Value: fmt.Sprintf("w%d.%d.%d", writer, op, j)})
			}
			return nil
		})
		cancel()
		w.updates.Add(1)
		if err != nil && !errors.Is(err, platform.ErrConcurrency) {
			w.failures.Add(1)
			w.lastErr.Store(err.Error())
			// The store is unreachable: try again soon, not in a spin.
			select {
			case <-w.stop:
				return
			case <-time.After(time.Duration(20+rng.IntN(80)) * time.Millisecond):
			}
		}
	}
}

// halt stops the writers and waits for the updates in flight to end.
func (w *workload) halt() {
	close(w.stop)
	w.wg.Wait()
}

// streamOf spreads the scenarios' random streams apart.
func streamOf(scenario string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(scenario))
	return h.Sum64()
}

// waitAcked waits until n appends were acknowledged after since: the
// store is available again.
func (w *workload) waitAcked(t *testing.T, since time.Time, n int) {
	t.Helper()
	if err := poll(t.Context(), fmt.Sprintf("%d appends acknowledged after the last fault was healed", n), func() bool {
		return w.rec.AckedSince(since) >= n
	}); err != nil {
		last, _ := w.lastErr.Load().(string)
		t.Fatalf("%v; the last failure: %s", err, last)
	}
}
