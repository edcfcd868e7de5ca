package jetstream

import (
	"context"
	"math"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

// costModel chooses, from what the committer measures, between the two
// ways of committing concurrent appends:
//
//   - singles: each append is its own conditional publish, all of them in
//     flight side by side, as without group commit. The server stores
//     them one after another, so an append waits about D × s: D appends
//     in flight (the demand) times s, what each costs the server (one
//     fsync on an R1 file stream).
//   - groups: appends queue while an atomic batch commits and go together
//     as the next one. An append waits about g, one batch commit: hardly
//     more for 500 appends than for 5, but with a high floor (an R1 file
//     stream stages every batch in a file store of its own, about 3 ms).
//
// So singles are cheaper below a demand of about g/s and groups above it
// (about 25 appends in flight on R1 file storage with fsync here; see
// docs/benchmarks.md). The model keeps moving averages of D, s and g, and
// switches when the other way would save at least a fifth. The way not in
// use keeps its last measurement and is tried again now and then (see
// cheaper). Before groups have ever run, g is estimated from a probe (see
// committer.probe), so no caller pays for finding the floor.
type costModel struct {
	grouping bool
	demand   average // appends in the committer, over time
	single   average // a single's latency
	beside   average // the singles in flight when it was sent, itself included
	lone     average // a single's latency with nothing else in flight
	group    average // an append's latency while grouping: its wait in the queue and its batch
	floor    time.Duration
	// fresh counts the measurements of the way in use since the last
	// switch; the model keeps to a way until it has measured it anew.
	fresh    int
	switches uint64
	// The way not in use is tried again from retryAt (see cheaper); why
	// tells set what the last choice was made for.
	retryAt    time.Time
	retryEvery time.Duration
	why        switchReason
	tried      bool // the way in use is being tried

	probing  bool
	probedAt time.Time
}

// Switching needs the other way to be this much cheaper, so that noise
// around the crossover does not flap between the two: each switch costs
// the appends in flight a wait (the singles in flight finish before a
// group goes; a batch in flight holds up the singles sent beside it).
const switchMargin = 0.8

// Measurements of a way, after switching to it, before switching back:
// singles complete many at a time and vary more than groups.
const (
	dwellSingles = 64
	dwellGroups  = 8
)

// Before groups have run, a group is estimated at this many times the
// probe's floor: the batch's callers also wait for the one before it.
const floorToGroup = 1.25

// probeRetry spaces probes that failed.
const probeRetry = 10 * time.Second

// averageOver is the memory of the moving averages. A single's latency
// varies with every fsync and a pause of the process stalls hundreds at
// once; what decides is the mean over many, whatever the rate.
const averageOver = 100 * time.Millisecond

// average is the mean of the samples of about the last averageOver, each
// sample's weight decaying with its age; until then it is the plain mean.
type average struct {
	sum, weight float64
	at          time.Time
	n           int
}

// add records x with weight w at now.
func (a *average) add(now time.Time, x, w float64) {
	if a.n > 0 {
		decay := math.Exp(-float64(now.Sub(a.at)) / float64(averageOver))
		a.sum *= decay
		a.weight *= decay
	}
	a.sum += x * w
	a.weight += w
	a.at = now
	a.n++
}

func (a *average) value() float64 {
	if a.weight == 0 {
		return 0
	}
	return a.sum / a.weight
}

// sawSingle records a single sent with inFlight singles in flight.
func (m *costModel) sawSingle(now time.Time, latency time.Duration, inFlight int) {
	if inFlight <= 1 {
		m.lone.add(now, float64(latency), 1)
	}
	if float64(inFlight) < m.demand.value()/2 {
		// Sent with few beside it while many appends are in flight: the
		// ones that waited for a group going out at once, or writers
		// starting. The way singles settle to comes after.
		return
	}
	m.single.add(now, float64(latency), 1)
	m.beside.add(now, float64(max(inFlight, 1)), 1)
	if !m.grouping {
		m.fresh++
	}
}

// sawGroup records the mean latency of the appends of a group (or of an
// append that went alone while grouping).
func (m *costModel) sawGroup(now time.Time, latency time.Duration) {
	if m.grouping && m.fresh == 0 {
		m.group = average{} // the first measurement since switching replaces the old ones
	}
	m.group.add(now, float64(latency), 1)
	if m.grouping {
		m.fresh++
	}
}

// estimates are the latencies an append would see now in each way; ok is
// false until both can be told.
func (m *costModel) estimates() (single, group time.Duration, ok bool) {
	if m.single.n == 0 || m.demand.n == 0 {
		return 0, 0, false
	}
	// Singles are stored one after another: the latency grows with the
	// appends in flight.
	single = time.Duration(max(m.demand.value(), 1) / m.beside.value() * m.single.value())
	switch {
	case m.group.n > 0:
		group = time.Duration(m.group.value())
	case m.floor > 0:
		// A batch costs at least what one append alone does: on a
		// replicated stream the probe, refused before it is replicated,
		// measures less.
		group = time.Duration(floorToGroup * max(float64(m.floor), m.lone.value()))
	default:
		return single, 0, false
	}
	return single, group, true
}

// cheaper reports the way the estimates choose, keeping to the way in
// use until it has been measured anew and unless the other saves enough.
// The estimate of the way not in use ages: it was measured at another
// moment (at start, with every aggregate new, say). So from time to time,
// when the other way is not far off, the model tries it again: singles
// when they are estimated within 1.5 times a group's latency (trying them
// costs a few hundred appends), groups within 1.2 times a single's (each
// try holds the appends in flight for a batch or two). A try that does
// not pay doubles the wait for the next, up to maxRetryEvery.
func (m *costModel) cheaper() bool {
	m.why = switchForCost
	single, group, ok := m.estimates()
	if !ok {
		return m.grouping
	}
	if m.fresh < dwellSingles && !m.grouping || m.fresh < dwellGroups && m.grouping {
		return m.grouping
	}
	// Right after a try both ways are freshly measured: the cheaper wins,
	// and going back counts as part of the try (the wait for the next
	// grows).
	margin, after := switchMargin, m.tried
	if after {
		margin, m.tried = 1, false
	}
	retry := !m.retryAt.IsZero() && !m.demand.at.Before(m.retryAt)
	if m.grouping {
		switch {
		case float64(single) < margin*float64(group):
			m.why = whyAfter(after)
			return false
		case retry && float64(single) < retrySingles*float64(group):
			m.why = switchToTry
			return false
		}
		return true
	}
	switch {
	case m.demand.value() < 1.5: // a group needs two appends waiting at once
		return false
	case float64(group) < margin*float64(single):
		m.why = whyAfter(after)
		return true
	case retry && float64(group) < retryGroups*float64(single):
		m.why = switchToTry
		return true
	}
	return false
}

// switchReason is what a choice of the cost model was made for.
type switchReason int

const (
	switchForCost  switchReason = iota // the other way is cheaper by switchMargin
	switchToTry                        // the other way is near enough to be tried again
	switchBackFrom                     // a try did not pay
)

func whyAfter(try bool) switchReason {
	if try {
		return switchBackFrom
	}
	return switchForCost
}

// How near the way not in use must be estimated to be tried again, and
// how often.
const (
	retrySingles  = 1.5
	retryGroups   = 1.2
	firstRetry    = 250 * time.Millisecond
	maxRetryEvery = 30 * time.Second
)

// set switches to grouping or singles; it reports whether that changed.
func (m *costModel) set(grouping bool) bool {
	if grouping == m.grouping {
		return false
	}
	switch m.why {
	case switchToTry:
		m.retryEvery = min(2*m.retryEvery, maxRetryEvery)
	case switchForCost:
		m.retryEvery = firstRetry
	}
	m.tried = m.why == switchToTry
	m.retryAt = m.demand.at.Add(m.retryEvery)
	m.grouping, m.fresh = grouping, 0
	m.switches++
	return true
}

// wantsProbe reports whether a probe should measure the batch floor now:
// appends are concurrent, groups have never run and no probe has answered.
func (m *costModel) wantsProbe(now time.Time) bool {
	return !m.probing && m.floor == 0 && m.group.n == 0 && m.demand.n > 0 && m.demand.value() >= 1.5 &&
		(m.probedAt.IsZero() || now.Sub(m.probedAt) >= probeRetry)
}

// queueing is how long an append sent now waits for the singles in flight
// before the server turns to it.
func (m *costModel) queueing(inFlight int) time.Duration {
	if m.single.n == 0 || inFlight == 0 {
		return 0
	}
	return time.Duration(float64(inFlight) * m.single.value() / m.beside.value())
}

// probe measures a batch's floor with a batch the server is bound to
// refuse: one message expecting a last sequence its subject cannot have.
// The server stages and flushes it as it does any atomic batch and checks
// expectations only at commit (nats-server 2.15.2 stream.go,
// processJetStreamAtomicBatchMsg), so it costs what a batch costs and
// stores nothing. The subject has two tokens, where every aggregate's
// has three, so no aggregate ever shares it. The store probes as it
// starts, on a stream with nothing else in flight; a later probe, after
// that one failed, discounts the singles it found in flight.
func (c *committer) probe(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c.mu.Lock()
	c.cost.probing, c.cost.probedAt = true, time.Now()
	ahead := c.cost.queueing(c.singles)
	c.mu.Unlock()

	msg := nats.NewMsg(c.s.opts.SubjectPrefix + ".lexigram-group-commit-probe")
	msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, uitoa(math.MaxUint64))
	began := time.Now()
	_, err := jetstreamext.PublishMsgBatch(ctx, c.s.js, []*nats.Msg{msg}, noFirstAck)
	took := time.Since(began)

	c.mu.Lock()
	defer c.mu.Unlock()
	c.cost.probing = false
	if apiCode(err) != codeWrongLastSeq {
		c.s.opts.Logger.Debug("group commit: the batch probe did not answer as expected; appends go one by one until one does", "error", err)
		return
	}
	c.cost.floor = max(took-ahead, took/4)
	c.decide()
}
