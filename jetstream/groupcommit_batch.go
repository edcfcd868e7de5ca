package jetstream

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/lexigram/events/platform"
)

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
		c.committed(group, conflicted, time.Since(began))
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
			c.answer(p, outcome{res: res, err: err})
			return
		}
		attemptCtx, cancel := c.s.attempt(ctx)
		err := c.publish(attemptCtx, open)
		cancel()
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
				c.answer(p, outcome{err: err})
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
		c.s.chain.put(p.a.subject, pos+n-1, p.a.head)
		c.answer(p, outcome{res: platform.AppendResult{
			FirstVersion: p.base.version + 1, LastVersion: p.base.version + n,
			FirstPosition: pos, LastPosition: pos + n - 1,
		}})
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
				c.answer(p, outcome{err: err})
				continue
			} else if ok {
				c.answer(p, outcome{res: res})
				continue
			}
			if res, ok := p.a.alreadyStored(cur); ok {
				c.answer(p, outcome{res: res})
				continue
			}
			if p.a.expected.IsAny() && p.attempts < maxAttempts {
				p.base = cur
				again = append(again, p)
				continue
			}
			c.answer(p, outcome{err: &platform.ConcurrencyError{Stream: p.a.stream, Expected: p.a.expected, Actual: cur.version}})
			continue
		}
		c.answer(p, outcome{err: platform.Errorf(platform.CodeStoreUnavailable,
			"append to %s: gave up after %d group commits (the events may or may not be stored: read the aggregate, or retry with the same event IDs)", p.a.stream, p.attempts)})
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
			t, err := tailOf(m)
			if err != nil {
				return nil, err
			}
			current[m.Subject] = t
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
			c.answer(p, outcome{res: res, err: err})
		})
	}
	wg.Wait()
}
