package jetstream

import (
	"math"
	"testing"
	"time"
)

// feed drives a cost model as a committer would: n singles of the given
// latency with inFlight in flight, one every step.
type feed struct {
	m   *costModel
	now time.Time
}

func newFeed() *feed { return &feed{m: &costModel{}, now: time.Unix(1_000_000, 0)} }

// demand records n appends in flight since the last step.
func (f *feed) demand(n int) { f.m.demand.add(f.now, float64(n), 1) }

func (f *feed) singles(n, inFlight int, latency time.Duration) {
	for range n {
		f.now = f.now.Add(latency / time.Duration(inFlight))
		f.demand(inFlight)
		f.m.sawSingle(f.now, latency, inFlight)
	}
}

func (f *feed) groups(n, size int, latency time.Duration) {
	for range n {
		f.now = f.now.Add(latency)
		f.demand(size)
		f.m.sawGroup(f.now, latency)
	}
}

// decide applies the model's choice and reports the way it is on.
func (f *feed) decide() bool {
	f.m.set(f.m.cheaper())
	return f.m.grouping
}

func TestCostModelStaysOnSinglesWhileTheyAreCheaper(t *testing.T) {
	f := newFeed()
	f.m.floor = 3 * time.Millisecond
	for range 20 {
		f.singles(100, 4, time.Millisecond) // four in flight, 0.25 ms each
		if f.decide() {
			t.Fatalf("grouping with four appends in flight at 1 ms alone and a 3 ms batch floor: %+v", f.m)
		}
	}
	single, group, ok := f.m.estimates()
	if !ok || single != time.Millisecond || group != time.Duration(floorToGroup*float64(3*time.Millisecond)) {
		t.Fatalf("estimates %v alone, %v in a group (ok %v); want 1ms and 1.25 times the floor", single, group, ok)
	}
}

func TestCostModelGroupsPastTheCrossoverAndComesBack(t *testing.T) {
	f := newFeed()
	f.m.floor = 3 * time.Millisecond
	f.singles(dwellSingles-1, 64, 13*time.Millisecond)
	if f.decide() {
		t.Fatal("switched to groups before singles were measured enough")
	}
	f.singles(1, 64, 13*time.Millisecond)
	if !f.decide() {
		t.Fatalf("64 appends in flight at 13 ms alone against a 3 ms floor, and still singles: %+v", f.m)
	}
	// Groups measured at 4 ms stay cheaper than 13 ms alone.
	f.groups(20, 64, 4*time.Millisecond)
	if !f.decide() {
		t.Fatal("left groups that are three times cheaper")
	}
	// The demand falls to 2: alone, an append would take 2/64 of 13 ms.
	// The model sees it within a few memories of its averages.
	for range 100 {
		f.now = f.now.Add(4 * time.Millisecond)
		f.demand(2)
		f.m.sawGroup(f.now, 4*time.Millisecond)
	}
	if f.decide() {
		t.Fatalf("still grouping with 2 appends in flight: %+v", f.m)
	}
	if f.m.switches != 2 {
		t.Fatalf("%d switches, want 2", f.m.switches)
	}
}

func TestCostModelMeasuresAWayAnewBeforeLeavingIt(t *testing.T) {
	f := newFeed()
	f.m.floor = 3 * time.Millisecond
	f.singles(dwellSingles, 64, 13*time.Millisecond)
	if !f.decide() {
		t.Fatal("did not switch to groups")
	}
	// The first groups cost more than expected: the model keeps to them
	// until it has measured enough, then weighs what it measured.
	f.groups(dwellGroups-1, 64, 30*time.Millisecond)
	if !f.decide() {
		t.Fatal("left groups before measuring them enough")
	}
	f.groups(1, 64, 30*time.Millisecond)
	if f.decide() {
		t.Fatalf("groups measured at 30 ms against 13 ms alone, and still grouping: %+v", f.m)
	}
	// Back on singles, the measured groups keep it there.
	f.singles(2*dwellSingles, 64, 13*time.Millisecond)
	if f.decide() {
		t.Fatal("went back to groups measured slower")
	}
}

func TestCostModelHoldsStillAtTheCrossover(t *testing.T) {
	f := newFeed()
	f.m.floor = 3 * time.Millisecond
	f.m.group = average{}
	f.m.group.add(f.now, float64(4200*time.Microsecond), 1)
	// Singles at about 4 ms, a tenth either way: never a tenth better
	// than groups at 4.2 ms, nor groups a tenth better than them.
	for i := range 40 {
		lat := 4 * time.Millisecond
		if i%2 == 0 {
			lat = lat * 11 / 10
		} else {
			lat = lat * 9 / 10
		}
		f.singles(50, 20, lat)
		if f.decide() {
			t.Fatalf("switched to groups at the crossover after %d rounds: %+v", i, f.m)
		}
	}
}

func TestCostModelNeverGroupsWithoutAFloorOrAGroup(t *testing.T) {
	f := newFeed()
	f.singles(10*dwellSingles, 512, 100*time.Millisecond)
	if f.decide() {
		t.Fatal("grouped with nothing known of what a group costs")
	}
	if !f.m.wantsProbe(f.now) {
		t.Fatal("wants no probe, with nothing known of groups and appends concurrent")
	}
	f.m.probedAt = f.now
	if f.m.wantsProbe(f.now.Add(probeRetry / 2)) {
		t.Fatal("probes again before probeRetry has passed")
	}
}

func TestCostModelLoneWriterNeverGroups(t *testing.T) {
	f := newFeed()
	f.m.floor = time.Microsecond // batches next to free
	f.singles(10*dwellSingles, 1, time.Millisecond)
	if f.decide() {
		t.Fatal("grouped a lone writer: a group needs two appends waiting")
	}
}

func TestAverageForgetsOldSamples(t *testing.T) {
	var a average
	now := time.Unix(0, 0)
	a.add(now, 10, 1)
	a.add(now, 20, 1)
	if a.value() != 15 {
		t.Fatalf("mean of 10 and 20 is %v", a.value())
	}
	now = now.Add(10 * averageOver)
	a.add(now, 100, 1)
	if v := a.value(); math.Abs(v-100) > 0.01 {
		t.Fatalf("samples ten memories old still weigh: %v", v)
	}
	a.add(now, 0, 3)
	if v := a.value(); math.Abs(v-25) > 0.01 {
		t.Fatalf("a sample of weight 3 beside one of weight 1: %v, want 25", v)
	}
}
