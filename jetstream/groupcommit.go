package jetstream

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/lexigram/events/platform"
)

// GroupCommit configures group commit: concurrent appends to different
// aggregates share one atomic batch, so a server that fsyncs before it
// acknowledges pays one fsync for the group instead of one per append.
//
// An append that finds nothing being committed goes out at once on its
// own, so a lone writer waits no longer than without group commit. While
// commits are in flight, appends queue; the next group is the queue, at
// most MaxEvents events and one append per aggregate (JetStream checks
// one expected sequence per subject in a batch), each append's expected
// sequence on its first message. A group that fails on a conflict is
// taken apart: the store reads the last event of every aggregate in it
// (one request on R1), answers the appends that conflict, and commits the
// others again, so only the conflicting callers see a ConcurrencyError.
// While conflicts are frequent, each group is checked that way before it
// is sent. After a group, the committer waits up to an eighth of its
// commit time (at most 2 ms) for that group's callers to queue their next
// appends, so that they travel together.
//
// Group commit pays where every message is made durable on its own: R1
// file streams on a server that fsyncs before acknowledging
// (sync_interval: always; the embedded server's default). Without fsync,
// single publishes are cheaper than batches and it costs throughput; see
// docs/benchmarks.md for the figures. It needs atomic batch publish
// (nats-server 2.12+); on older servers it is off.
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
}

// committer runs group commit for one store.
type committer struct {
	s           *EventStore
	maxEvents   int
	maxInFlight int

	groups, grouped, failed, oneByOne, prechecked atomic.Uint64

	mu       sync.Mutex
	queue    []*pending
	inFlight int            // commits under way, single or grouped
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
	sent     bool // taken into a group; guarded by committer.mu
	attempts int
	done     chan outcome // buffered: the group never waits for a caller
}

type outcome struct {
	res platform.AppendResult
	err error
}

// GroupCommitStats counts what group commit did since the store started.
type GroupCommitStats struct {
	Groups   uint64 // atomic batches of several appends stored
	Appends  uint64 // appends stored in those batches
	Failures uint64 // group batches the server did not store (conflicts, timeouts); their appends were settled
	OneByOne uint64 // failed groups whose appends were sent one by one, the error explaining nothing
	Checked  uint64 // groups checked against the aggregates' last events before they were sent, conflicts being frequent
	Queued   int    // appends waiting for a group now
}

// GroupCommitStats reports group commit's counters; all zero when it is off.
func (s *EventStore) GroupCommitStats() GroupCommitStats {
	c := s.group
	if c == nil {
		return GroupCommitStats{}
	}
	c.mu.Lock()
	queued := len(c.queue)
	c.mu.Unlock()
	return GroupCommitStats{Groups: c.groups.Load(), Appends: c.grouped.Load(), Failures: c.failed.Load(), OneByOne: c.oneByOne.Load(), Checked: c.prechecked.Load(), Queued: queued}
}

func newCommitter(s *EventStore, gc GroupCommit) *committer {
	c := &committer{s: s, maxEvents: gc.MaxEvents, maxInFlight: gc.MaxInFlight, busy: map[string]int{}}
	if c.maxEvents <= 0 || c.maxEvents > platform.MaxAppendEvents {
		c.maxEvents = platform.MaxAppendEvents
	}
	if c.maxInFlight <= 0 {
		c.maxInFlight = 1
	}
	return c
}

// append stores one append, alone when nothing else is being committed,
// otherwise in the next group.
func (c *committer) append(ctx context.Context, a *appendOp) (platform.AppendResult, error) {
	base, res, stored, err := a.start(ctx)
	if stored || err != nil {
		return res, err
	}
	c.mu.Lock()
	if c.inFlight < c.maxInFlight && len(c.queue) == 0 && c.busy[a.subject] == 0 && c.linger == nil {
		c.take(a.subject)
		c.mu.Unlock()
		res, err := a.send(ctx, base)
		c.mu.Lock()
		c.release(a.subject)
		c.dispatch()
		c.mu.Unlock()
		return res, err
	}
	p := &pending{a: a, base: base, done: make(chan outcome, 1)}
	c.queue = append(c.queue, p)
	if c.linger != nil && len(c.queue) >= c.expect {
		c.endLinger()
	}
	c.dispatch()
	c.mu.Unlock()

	select {
	case o := <-p.done:
		return o.res, o.err
	case <-ctx.Done():
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !p.sent {
		for i, q := range c.queue {
			if q == p {
				c.queue = append(c.queue[:i], c.queue[i+1:]...)
				break
			}
		}
		return platform.AppendResult{}, platform.Errorf(platform.CodeStoreUnavailable,
			"append to %s: %w while waiting for a group commit (nothing was stored)", a.stream, ctx.Err())
	}
	return platform.AppendResult{}, platform.Errorf(platform.CodeStoreUnavailable,
		"append to %s: %w during a group commit (the events may or may not be stored: read the aggregate to find out)", a.stream, ctx.Err())
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

// dispatch starts groups from the queue while commits may start. An
// append whose aggregate is being committed waits for the outcome: its
// base would be stale the moment that commit lands. Called with c.mu held.
func (c *committer) dispatch() {
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
		go c.commit(group, c.conflictRate > precheckAbove)
	}
}

// precheckAbove is the share of recent groups with a conflict above which
// a group is checked before it is sent: one read of every aggregate's
// last event (one request on R1) answers the conflicting appends at once,
// where a failed batch would cost a whole commit and a read anyway.
const precheckAbove = 0.2

// commit stores a group and answers each of its appends.
func (c *committer) commit(group []*pending, precheck bool) {
	began := time.Now()
	conflicted := false
	defer func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.conflictRate *= 0.8
		if conflicted {
			c.conflictRate += 0.2
		}
		c.inFlight--
		for _, p := range group {
			if c.busy[p.a.subject]--; c.busy[p.a.subject] <= 0 {
				delete(c.busy, p.a.subject)
			}
		}
		if n := len(group); n > 1 && c.inFlight == 0 && c.linger == nil && len(c.queue) < n {
			c.startLinger(n, min(time.Since(began)/8, maxLinger))
			return
		}
		c.dispatch()
	}()
	// No deadline: each request then gets the JetStream context's default
	// timeout, and maxAttempts bounds the whole.
	ctx := context.Background()

	open := group
	if precheck && len(open) > 1 {
		c.prechecked.Add(1)
		var moved int
		if checked, n, err := c.settle(ctx, open); err == nil {
			open, moved = checked, n
		}
		conflicted = moved > 0
	}
	backoff := firstBackoff
	for len(open) > 0 {
		if len(open) == 1 {
			p := open[0]
			res, err := p.a.send(ctx, p.base)
			p.done <- outcome{res, err}
			return
		}
		err := c.publish(ctx, open)
		if err == nil {
			c.groups.Add(1)
			c.grouped.Add(uint64(len(open)))
			return
		}
		c.failed.Add(1)
		code := apiCode(err)
		conflict := code == codeWrongLastSeq || code == codeWrongLastSeqConstant || code == codeBatchDuplicateMsgID
		if !conflict && !retryable(err) {
			// Nothing in the group is at fault that we can tell (a batch
			// over a lower server limit, say): each append on its own
			// gets its own answer.
			c.oneByOne.Add(1)
			c.s.opts.Logger.Warn("group commit failed; committing its appends one by one", "appends", len(open), "error", err)
			c.alone(ctx, open)
			return
		}
		conflicted = conflicted || conflict
		if open, _, err = c.settle(ctx, open); err != nil {
			for _, p := range open {
				p.done <- outcome{err: err}
			}
			return
		}
		if !conflict && len(open) > 0 {
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
			}
			backoff = min(2*backoff, maxBackoff)
		}
	}
}

// publish commits the group as one atomic batch and answers every append
// in it; on an error it answers none.
func (c *committer) publish(ctx context.Context, group []*pending) error {
	var msgs []*nats.Msg
	for _, p := range group {
		p.attempts++
		p.a.stamp(p.base)
		msgs = append(msgs, p.a.msgs...)
	}
	ack, err := jetstreamext.PublishMsgBatch(ctx, c.s.js, msgs, noFirstAck)
	if err != nil {
		return err
	}
	// A batch is stored in one piece, in order, so the positions of each
	// append follow from the last one.
	pos := ack.Sequence - uint64(len(msgs)) + 1
	for _, p := range group {
		n := uint64(len(p.a.msgs))
		p.done <- outcome{res: platform.AppendResult{
			FirstVersion: p.base.version + 1, LastVersion: p.base.version + n,
			FirstPosition: pos, LastPosition: pos + n - 1,
		}}
		pos += n
	}
	return nil
}

// settle decides the appends of a group that was not stored, from the
// last event of each aggregate now: an aggregate that has not moved goes
// into the next group as it was; one that moved was either written by an
// earlier attempt of the same append (it succeeded), or by someone else
// (a conflict; Any takes the new base). It returns the appends to commit
// again.
func (c *committer) settle(ctx context.Context, group []*pending) (again []*pending, moved int, err error) {
	current, err := c.lasts(ctx, group)
	if err != nil {
		return group, 0, err
	}
	for _, p := range group {
		cur := current[p.a.subject]
		if cur.seq == p.base.seq && p.attempts < maxAttempts {
			again = append(again, p)
			continue
		}
		if cur.seq != p.base.seq {
			moved++
			if res, ok, err := p.a.landed(ctx, p.base); err != nil {
				p.done <- outcome{err: err}
				continue
			} else if ok {
				p.done <- outcome{res: res}
				continue
			}
			if res, ok := p.a.alreadyStored(cur); ok {
				p.done <- outcome{res: res}
				continue
			}
			if p.a.expected.IsAny() && p.attempts < maxAttempts {
				p.base = cur
				again = append(again, p)
				continue
			}
			p.done <- outcome{err: &platform.ConcurrencyError{Stream: p.a.stream, Expected: p.a.expected, Actual: cur.version}}
			continue
		}
		p.done <- outcome{err: platform.Errorf(platform.CodeStoreUnavailable,
			"append to %s: gave up after %d group commits (the events may or may not be stored: read the aggregate, or retry with the same event IDs)", p.a.stream, p.attempts)}
	}
	return again, moved, nil
}

// lasts reads the last event of each aggregate in the group. On R1 one
// batched direct get answers for all; a replicated stream's followers
// may be behind, so there each is asked of the leader.
func (c *committer) lasts(ctx context.Context, group []*pending) (map[string]tail, error) {
	current := make(map[string]tail, len(group))
	if c.s.opts.Replicas == 1 {
		subjects := make([]string, len(group))
		for i, p := range group {
			subjects[i] = p.a.subject
		}
		for m, err := range c.s.getter.lasts(ctx, subjects) {
			if err != nil {
				return nil, platform.Errorf(platform.CodeStoreUnavailable, "group commit: read the aggregates' last events: %w", err)
			}
			v, err := versionOf(m.Header, m.Sequence)
			if err != nil {
				return nil, err
			}
			current[m.Subject] = tail{version: v, seq: m.Sequence, eventID: eventID(m.Header)}
		}
		return current, nil
	}
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		firstErr error
	)
	for _, p := range group {
		wg.Go(func() {
			cur, err := c.s.last(ctx, p.a.subject)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			current[p.a.subject] = cur
		})
	}
	wg.Wait()
	return current, firstErr
}

// alone sends each append of a group by itself, side by side.
func (c *committer) alone(ctx context.Context, group []*pending) {
	var wg sync.WaitGroup
	for _, p := range group {
		wg.Go(func() {
			res, err := p.a.send(ctx, p.base)
			p.done <- outcome{res, err}
		})
	}
	wg.Wait()
}
