package faults

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"
)

// SeedEnv names the environment variable that replays a run's seed.
const SeedEnv = "LEXIGRAM_FAULT_SEED"

// Seed is the run's seed: SeedEnv's value when set (replaying a failed
// run), else a fresh one. The error names the bad value and the fix.
func Seed() (uint64, error) {
	v := os.Getenv(SeedEnv)
	if v == "" {
		return rand.Uint64() >> 1, nil // shorter to print and to paste
	}
	seed, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("faults: %s=%q: use the decimal seed a run printed, e.g. %s=12345", SeedEnv, v, SeedEnv)
	}
	return seed, nil
}

// Kind is a kind of fault.
type Kind string

// The faults the suite injects.
const (
	StepDown  Kind = "stream-leader step-down"
	Restart   Kind = "node shut down and restarted"
	ClientCut Kind = "client connections cut"
	Partition Kind = "node partitioned (routes cut)"
	Kill      Kind = "server SIGKILLed and restarted"
)

// Fault is one step of a schedule: wait Pause, then inject Kind on Node
// (the stream leader when Leader is set) and hold it for Hold before
// healing.
type Fault struct {
	Kind   Kind
	Pause  time.Duration
	Node   int
	Leader bool
	Hold   time.Duration
}

func (f Fault) String() string {
	target := fmt.Sprintf("node %d", f.Node)
	if f.Leader {
		target = "the stream leader"
	}
	return fmt.Sprintf("after %v: %s on %s, held %v", f.Pause.Round(time.Millisecond), f.Kind, target, f.Hold.Round(time.Millisecond))
}

// ScheduleOptions shape a schedule.
type ScheduleOptions struct {
	// Kinds each occur at least once, in an order the seed decides.
	Kinds []Kind
	// Extra faults of those kinds are added at random places.
	Extra int
	// Nodes is how many nodes a fault may target.
	Nodes int
	// MaxPause and MaxHold bound the random pauses and holds; at least
	// MinPause and MinHold.
	MinPause, MaxPause, MinHold, MaxHold time.Duration
}

// NewSchedule draws a schedule from rng: the same rng state gives the
// same schedule, so a seed replays it.
func NewSchedule(rng *rand.Rand, o ScheduleOptions) []Fault {
	kinds := append([]Kind(nil), o.Kinds...)
	for range o.Extra {
		kinds = append(kinds, o.Kinds[rng.IntN(len(o.Kinds))])
	}
	rng.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
	between := func(lo, hi time.Duration) time.Duration {
		if hi <= lo {
			return lo
		}
		return lo + time.Duration(rng.Int64N(int64(hi-lo)))
	}
	faults := make([]Fault, len(kinds))
	for i, k := range kinds {
		faults[i] = Fault{
			Kind:   k,
			Pause:  between(o.MinPause, o.MaxPause),
			Node:   rng.IntN(max(o.Nodes, 1)),
			Leader: rng.IntN(2) == 0,
			Hold:   between(o.MinHold, o.MaxHold),
		}
	}
	return faults
}

// FormatSchedule lists a schedule, one fault a line.
func FormatSchedule(faults []Fault) string {
	var b strings.Builder
	for i, f := range faults {
		fmt.Fprintf(&b, "  %2d. %s\n", i+1, f)
	}
	return b.String()
}
