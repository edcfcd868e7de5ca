package jetstream

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lexigram/events/platform"
)

// GroupCommit configures group commit: when many appends to different
// aggregates are in flight at once, they share one atomic batch, so a
// server that fsyncs before it acknowledges pays one fsync for the group
// instead of one per append.
//
// A batch has a high fixed cost (an R1 file stream stages each batch in
// a file store of its own, about 3 ms on a machine where one fsync'd
// publish costs 0.2 ms), so it pays only with enough appends waiting.
// The store measures both ways as it runs and uses the cheaper: with few
// appends in flight each goes out at once on its own, side by side, as
// without group commit; past the crossover (about g/s appends in flight,
// g a group's latency and s what each single costs the server) appends
// queue while a batch commits and go as the next one. Either way two
// appends to one aggregate never travel side by side: the second waits
// for the first's outcome. See costModel for the rule and
// docs/benchmarks.md for the crossover measured.
//
// A group holds at most MaxEvents events and one append per aggregate
// (JetStream checks one expected sequence per subject in a batch), each
// append's expected sequence on its first message. A group that fails on
// a conflict is taken apart: the store reads the last event of every
// aggregate in it (one request on R1), answers the appends that conflict,
// and commits the others again, so only the conflicting callers see a
// ConcurrencyError. While conflicts are frequent, each group is checked
// that way before it is sent. After a group, the committer waits up to an
// eighth of its commit time (at most 2 ms) for that group's callers to
// queue their next appends, so that they travel together.
//
// Group commit needs atomic batch publish (nats-server 2.12+); on older
// servers it is off.
type GroupCommit struct {
	Enabled bool
	// MaxEvents bounds the events in one group. 0 means 1000, the
	// server's default batch limit; lower it if the server's is lower.
	MaxEvents int
	// MaxInFlight bounds the groups being committed at once. 0 means 1:
	// on R1 file storage batches committed side by side contend for the
	// same store and split the writers into smaller groups (2 measured
	// 1.52 times raw at 64 writers, 1 measured 2.12).
	MaxInFlight int

	// choose replaces the cost model's choice in tests (export_test.go).
	choose func(m *costModel) bool
}

// committer runs group commit for one store.
type committer struct {
	s           *EventStore
	maxEvents   int
	maxInFlight int
	choose      func(m *costModel) bool

	groups, grouped, failed, oneByOne, prechecked atomic.Uint64

	mu       sync.Mutex
	cost     costModel
	queue    []*pending
	inside   int            // appends in the committer: queued, or being committed
	counted  time.Time      // when inside last changed
	inFlight int            // commits under way: singles and groups
	singles  int            // singles sent while not grouping, in flight
	batches  int            // groups in flight
	busy     map[string]int // subjects in commits under way
	// conflictRate is a moving average of the groups that met a conflict,
	// deciding whether the next group is checked before it is sent.
	conflictRate float64
	// After a group, its callers come back with their next appends a
	// moment apart; lingering until most are queued (or for a fraction of
	// the group's commit time) keeps the first of them from going out on
	// its own and splitting the next group in two.
	linger    *time.Timer // non-nil while lingering
	lingerGen uint64
	expect    int // appends that end the linger
}

// maxLinger bounds the wait for a group's callers to come back.
const maxLinger = 2 * time.Millisecond

// pending is an append waiting in, or committed by, a group.
type pending struct {
	a        *appendOp
	base     tail
	arrived  time.Time
	sent     bool // taken into a group, or sent back to go alone; guarded by committer.mu
	attempts int
	// mixed marks an append queued while singles were still in flight
	// after a switch to grouping: its wait measures the switch, not groups.
	mixed bool
	done  chan outcome // buffered: the group never waits for a caller
}

type outcome struct {
	res platform.AppendResult
	err error
	// alone sends the append back to its caller to go out on its own:
	// the committer stopped grouping while it waited.
	alone bool
}

// GroupCommitStats counts what group commit did since the store started.
type GroupCommitStats struct {
	Groups   uint64 // atomic batches of several appends stored
	Appends  uint64 // appends stored in those batches
	Failures uint64 // group batches the server did not store (conflicts, timeouts); their appends were settled
	OneByOne uint64 // failed groups whose appends were sent one by one, the error explaining nothing
	Checked  uint64 // groups checked against the aggregates' last events before they were sent, conflicts being frequent
	Queued   int    // appends waiting for a group now

	// Grouping tells the way in use now: appends wait for groups (true)
	// or go out on their own (false). Switches counts the changes.
	Grouping bool
	Switches uint64
	// Demand is the moving average of the appends in flight; Single and
	// Group are the latencies an append is expected to see at that demand
	// on its own and in a group (0 while not yet measured). The committer
	// switches to groups when Group is a fifth below Single, and back when
	// Single is a fifth below Group.
	Demand        float64
	Single, Group time.Duration
}

// GroupCommitStats reports group commit's counters; all zero when it is off.
func (s *EventStore) GroupCommitStats() GroupCommitStats {
	c := s.group
	if c == nil {
		return GroupCommitStats{}
	}
	c.mu.Lock()
	st := GroupCommitStats{Queued: len(c.queue), Grouping: c.cost.grouping, Switches: c.cost.switches, Demand: c.cost.demand.value()}
	st.Single, st.Group, _ = c.cost.estimates()
	c.mu.Unlock()
	st.Groups, st.Appends, st.Failures, st.OneByOne, st.Checked = c.groups.Load(), c.grouped.Load(), c.failed.Load(), c.oneByOne.Load(), c.prechecked.Load()
	return st
}

func newCommitter(s *EventStore, gc GroupCommit) *committer {
	c := &committer{s: s, maxEvents: gc.MaxEvents, maxInFlight: gc.MaxInFlight, choose: gc.choose, busy: map[string]int{}}
	if c.maxEvents <= 0 || c.maxEvents > platform.MaxAppendEvents {
		c.maxEvents = platform.MaxAppendEvents
	}
	if c.maxInFlight <= 0 {
		c.maxInFlight = 1
	}
	if c.choose == nil {
		c.choose = (*costModel).cheaper
	}
	c.cost.grouping = c.choose(&c.cost)
	return c
}

// append stores one append: on its own while singles are cheaper, or
// while nothing else is being committed; otherwise in the next group. An
// append whose aggregate is being committed waits for that either way:
// its base would be stale the moment that commit lands.
func (c *committer) append(ctx context.Context, a *appendOp) (platform.AppendResult, error) {
	base, res, stored, err := a.start(ctx)
	if stored || err != nil {
		return res, err
	}
	arrived := time.Now()
	c.mu.Lock()
	c.count(arrived, +1)
	if c.busy[a.subject] == 0 && (!c.cost.grouping || (c.inFlight < c.maxInFlight && len(c.queue) == 0 && c.linger == nil)) {
		c.take(a.subject)
		return c.single(ctx, a, base, arrived)
	}
	p := &pending{a: a, base: base, arrived: arrived, mixed: c.singles > 0, done: make(chan outcome, 1)}
	c.queue = append(c.queue, p)
	if c.linger != nil && len(c.queue) >= c.expect {
		c.endLinger()
	}
	c.dispatch()
	c.mu.Unlock()

	select {
	case o := <-p.done:
		if o.alone {
			c.mu.Lock()
			return c.single(ctx, a, base, arrived)
		}
		return o.res, o.err
	case <-ctx.Done():
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case o := <-p.done: // answered as the context ended
		if !o.alone {
			return o.res, o.err
		}
		c.release(a.subject) // taken for it to go alone
	default:
		if p.sent {
			return platform.AppendResult{}, platform.Errorf(platform.CodeStoreUnavailable,
				"append to %s: %w during a group commit (the events may or may not be stored: read the aggregate to find out)", a.stream, ctx.Err())
		}
		for i, q := range c.queue {
			if q == p {
				c.queue = append(c.queue[:i], c.queue[i+1:]...)
				break
			}
		}
	}
	c.count(time.Now(), -1)
	c.dispatch()
	return platform.AppendResult{}, platform.Errorf(platform.CodeStoreUnavailable,
		"append to %s: %w while waiting for a group commit (nothing was stored)", a.stream, ctx.Err())
}

// single sends an append on its own, its subject taken, and measures what
// that cost. Called with c.mu held; it releases it.
func (c *committer) single(ctx context.Context, a *appendOp, base tail, arrived time.Time) (platform.AppendResult, error) {
	free := !c.cost.grouping // one of many side by side, not one that found the committer idle
	if free {
		c.singles++
	}
	inFlight, clean := c.singles, c.batches == 0 // a single sent beside a batch waits for it
	c.mu.Unlock()

	began := time.Now()
	res, err := a.send(ctx, base)
	took := time.Since(began)

	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	c.release(a.subject)
	c.count(now, -1)
	if free {
		c.singles--
	}
	if answered(err) {
		switch {
		case !free:
			c.cost.sawGroup(now, now.Sub(arrived))
		case clean && len(a.msgs) == 1:
			c.cost.sawSingle(now, took, inFlight)
		}
	}
	c.decide()
	c.dispatch()
	return res, err
}

// answered reports an outcome the server decided, whose time measures
// the way it went.
func answered(err error) bool {
	return err == nil || errors.Is(err, platform.ErrConcurrency)
}

// decide lets the cost model choose the way for the appends to come, and
// starts a probe of the batch floor when it needs one. Called with c.mu
// held.
func (c *committer) decide() {
	if c.cost.set(c.choose(&c.cost)) && !c.cost.grouping && c.linger != nil {
		c.endLinger() // the appends waiting for a group go now, each on its own
	}
	if c.cost.wantsProbe(time.Now()) {
		c.cost.probing = true
		go c.probe(context.Background())
	}
}

// startLinger holds dispatch until n appends are queued or wait passes.
// Called with c.mu held.
func (c *committer) startLinger(n int, wait time.Duration) {
	c.expect = n
	c.lingerGen++
	gen := c.lingerGen
	c.linger = time.AfterFunc(wait, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.linger != nil && c.lingerGen == gen {
			c.endLinger()
			c.dispatch()
		}
	})
}

// endLinger stops lingering. Called with c.mu held.
func (c *committer) endLinger() {
	c.linger.Stop()
	c.linger = nil
	c.lingerGen++
}

func (c *committer) take(subject string) {
	c.inFlight++
	c.busy[subject]++
}

func (c *committer) release(subject string) {
	c.inFlight--
	if c.busy[subject]--; c.busy[subject] <= 0 {
		delete(c.busy, subject)
	}
}

// dispatch starts what the queue holds that may start: while grouping,
// groups as long as commits may start; otherwise each append on its own.
// An append whose aggregate is being committed stays, waiting for the
// outcome. Called with c.mu held.
func (c *committer) dispatch() {
	if !c.cost.grouping {
		rest := c.queue[:0]
		for _, p := range c.queue {
			if c.busy[p.a.subject] > 0 {
				rest = append(rest, p)
				continue
			}
			c.take(p.a.subject)
			p.sent = true
			p.done <- outcome{alone: true}
		}
		clear(c.queue[len(rest):])
		c.queue = rest
		return
	}
	if c.linger != nil {
		return
	}
	for c.inFlight < c.maxInFlight && len(c.queue) > 0 {
		var group []*pending
		events := 0
		rest := c.queue[:0]
		for _, p := range c.queue {
			n := len(p.a.msgs)
			if c.busy[p.a.subject] > 0 || (len(group) > 0 && events+n > c.maxEvents) {
				rest = append(rest, p)
				continue
			}
			group = append(group, p)
			events += n
			p.sent = true
			c.busy[p.a.subject]++
		}
		clear(c.queue[len(rest):])
		c.queue = rest
		if len(group) == 0 {
			return
		}
		c.inFlight++
		c.batches++
		go c.commit(group, c.conflictRate > precheckAbove)
	}
}

// count changes the appends in the committer by delta at now, and
// records how many there were since the last change: the demand is their
// average over time. Called with c.mu held.
func (c *committer) count(now time.Time, delta int) {
	if !c.counted.IsZero() {
		c.cost.demand.add(now, float64(c.inside), float64(now.Sub(c.counted)))
	}
	c.inside += delta
	c.counted = now
}

// answer gives a queued append its outcome; it counts no longer in the
// demand, before its caller can come back with the next. Called without
// c.mu.
func (c *committer) answer(p *pending, o outcome) {
	c.mu.Lock()
	c.count(time.Now(), -1)
	c.mu.Unlock()
	p.done <- o
}

// committed accounts for a group that has answered all its appends, and
// measures it. Called with c.mu held.
func (c *committer) committed(group []*pending, conflicted bool, took time.Duration) {
	c.conflictRate *= 0.8
	if conflicted {
		c.conflictRate += 0.2
	}
	c.inFlight--
	c.batches--
	now := time.Now()
	var waited time.Duration
	mixed := false
	for _, p := range group {
		if c.busy[p.a.subject]--; c.busy[p.a.subject] <= 0 {
			delete(c.busy, p.a.subject)
		}
		waited += now.Sub(p.arrived)
		mixed = mixed || p.mixed
	}
	if !mixed {
		c.cost.sawGroup(now, waited/time.Duration(len(group)))
	}
	c.decide()
	if n := len(group); n > 1 && c.cost.grouping && c.inFlight == 0 && c.linger == nil && len(c.queue) < n {
		c.startLinger(n, min(took/8, maxLinger))
		return
	}
	c.dispatch()
}
