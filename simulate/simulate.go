package simulate

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// SeedEnv names the environment variable that replays one seed.
const SeedEnv = "LEXIGRAM_SIMULATE_SEED"

// Options configure Check. The zero value works.
type Options struct {
	// Seed is the first seed; 0: one from the clock (printed).
	Seed uint64
	// Runs is how many seeds to try, Seed, Seed+1, ... Default 100.
	Runs int
	// Faults are the odds of each fault; the zero value: Defaults.
	Faults Faults
}

// Faults are the odds, 0 to 1, of each fault at each chance it has.
type Faults struct {
	Duplicate float64 // an acked event is delivered again at once (the ack was lost)
	Redeliver float64 // an acked event is delivered again later, after other aggregates' events
	Crash     float64 // the process dies after the handler's effect, before the ack: delivered again
	Fail      float64 // the handler's call times out before it runs: delivered again (a retry)
	Conflict  float64 // an append meets a concurrency conflict (Store)
	// LateTimer and FireCancelled are the faults of saga timers
	// (sagas.StubOptions.Timers: a Sim is a sagas.TimerFaults): a timer
	// fires up to MaxLate after it is due, and a timer whose wait ended
	// (its cancel lost the race with the fire) fires anyway.
	LateTimer     float64
	FireCancelled float64
	MaxLate       time.Duration // the most a late timer is late; 0: DefaultMaxLate
}

// DefaultMaxLate is how late a late timer can be when Faults.MaxLate is
// 0: far past the server's schedule floor (about 250 ms), as when no
// manager runs for a while.
const DefaultMaxLate = 5 * time.Minute

// Defaults are the odds Options' zero Faults take: each fault often
// enough that 100 seeds meet all of them many times.
var Defaults = Faults{Duplicate: 0.1, Redeliver: 0.1, Crash: 0.1, Fail: 0.05, Conflict: 0.2, LateTimer: 0.3, FireCancelled: 0.3}

// Sim is one seed's world: its faults come from its random source, in
// the order the scenario asks. Use it from one goroutine: its faults are
// deterministic only then.
type Sim struct {
	Seed   uint64
	rng    *rand.Rand
	faults Faults
	trace  []string
}

func newSim(seed uint64, faults Faults) *Sim {
	return &Sim{Seed: seed, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), faults: faults}
}

// chance is true with probability p.
func (s *Sim) chance(p float64) bool { return p > 0 && s.rng.Float64() < p }

// note adds a line to the seed's trace.
func (s *Sim) note(format string, args ...any) {
	s.trace = append(s.trace, fmt.Sprintf(format, args...))
}

// Trace is what happened so far in this seed, one line per fault or
// delivery.
func (s *Sim) Trace() []string { return s.trace }

// Check runs scenario once per seed and fails t at the first seed whose
// scenario returns an error (or panics), printing the error, the trace
// and how to replay the seed. With SeedEnv set it runs only that seed.
func Check(t testing.TB, opts Options, scenario func(*Sim) error) {
	t.Helper()
	faults := opts.Faults
	if faults == (Faults{}) {
		faults = Defaults
	}
	first, runs := opts.Seed, opts.Runs
	if runs <= 0 {
		runs = 100
	}
	if v := os.Getenv(SeedEnv); v != "" {
		seed, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: give a seed as a failing run printed it", SeedEnv, v)
		}
		first, runs = seed, 1
	} else if first == 0 {
		first = uint64(time.Now().UnixNano())
		t.Logf("simulate: seeds %d to %d", first, first+uint64(runs)-1)
	}
	for i := range runs {
		seed := first + uint64(i)
		s := newSim(seed, faults)
		if err := run(s, scenario); err != nil {
			t.Fatalf("simulate: seed %d failed: %v\ntrace of seed %d (%d lines):\n  %s\nreplay it alone: %s=%d go test -run '%s'",
				seed, err, seed, len(s.trace), strings.Join(tail(s.trace, 60), "\n  "), SeedEnv, seed, t.Name())
			return
		}
	}
}

func run(s *Sim, scenario func(*Sim) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return scenario(s)
}

// tail is the last n lines, with a line saying how many were left out.
func tail(lines []string, n int) []string {
	if len(lines) <= n {
		return lines
	}
	return append([]string{fmt.Sprintf("... %d earlier lines", len(lines)-n)}, lines[len(lines)-n:]...)
}
