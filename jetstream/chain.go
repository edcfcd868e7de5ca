package jetstream

import (
	"context"
	"iter"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/platform"
)

// The hash chain (platform/chain.go has the specification): every event
// the store writes carries, in Lx-Prev, the platform.ChainHash of its
// aggregate's previous event; the first event's is empty. An append
// computes the hashes of its events itself, so what it needs is the hash
// of the event it builds on, the aggregate's last:
//
//   - a new aggregate (NoStream) has none;
//   - an append that reads the aggregate's last event anyway (Any, or
//     an exact version without its position) hashes that event;
//   - an append at an exact revision, as the repository makes after a
//     load, finds it in a per-process cache that reads and appends fill:
//     the last event's position and hash per aggregate. A miss costs one
//     direct get of the event at that position (ChainStats counts them).
//
// An entry says "the event at position p on this subject hashes to h", a
// fact that stays true, so a stale entry can only miss: the server takes
// an append only if its expected position is the subject's last, which
// is then the event the hash was computed from. A conflict writes no
// entry.
const (
	// PrevHeader carries the ChainHash of the aggregate's previous event.
	PrevHeader = "Lx-Prev"
	// VersionHeader carries a stored event's aggregate version.
	VersionHeader = hdrVersion
)

// prevRoom is what Lx-Prev adds to a message's size.
const prevRoom = len(PrevHeader) + platform.ChainHashLen + 4

// DefaultChainCache is the number of aggregates whose last event's hash
// a store remembers when Options.ChainCache is 0.
const DefaultChainCache = 10_000

// ChainStats counts how appends found the hash of the event they build on.
type ChainStats struct {
	Hits    uint64 // from the cache
	Misses  uint64 // read from the server: one direct get each
	Entries int    // aggregates remembered now
}

// ChainStats reports the chain cache's counters since the store started.
func (s *EventStore) ChainStats() ChainStats {
	return ChainStats{Hits: s.chain.hits.Load(), Misses: s.chain.misses.Load(), Entries: s.chain.len()}
}

// chainCache remembers, per subject, the position and hash of the last
// event seen. It holds at most about twice its size: two generations,
// the older dropped whole when the newer fills, so recently used
// aggregates stay.
type chainCache struct {
	size         int // per generation; 0: off
	hits, misses atomic.Uint64

	mu       sync.Mutex
	cur, old map[string]chainLink
}

type chainLink struct {
	seq  uint64
	hash string
}

func newChainCache(size int) *chainCache {
	switch {
	case size == 0:
		size = DefaultChainCache
	case size < 0:
		size = 0
	}
	return &chainCache{size: size, cur: map[string]chainLink{}}
}

// get returns the hash of the event at seq on subject, if remembered.
func (c *chainCache) get(subject string, seq uint64) (string, bool) {
	if c.size == 0 {
		return "", false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.cur[subject]
	if !ok {
		if l, ok = c.old[subject]; ok {
			c.store(subject, l)
		}
	}
	if !ok || l.seq != seq {
		return "", false
	}
	return l.hash, true
}

// put remembers the hash of the event at seq on subject, unless a later
// event of it is remembered already.
func (c *chainCache) put(subject string, seq uint64, hash string) {
	if c.size == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if l, ok := c.cur[subject]; ok && l.seq > seq {
		return
	}
	c.store(subject, chainLink{seq: seq, hash: hash})
}

// store puts a link in the newer generation. Called with c.mu held.
func (c *chainCache) store(subject string, l chainLink) {
	if _, ok := c.cur[subject]; !ok && len(c.cur) >= c.size {
		c.old, c.cur = c.cur, make(map[string]chainLink, c.size)
	}
	c.cur[subject] = l
}

func (c *chainCache) forget(subject string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.cur, subject)
	delete(c.old, subject)
}

func (c *chainCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cur) + len(c.old)
}

// StoredEventOf reads a message of the store's stream as the hash chain
// sees it. An event stored before the chain has Chained false.
func StoredEventOf(seq uint64, h nats.Header, data []byte) (platform.StoredEvent, error) {
	e := platform.StoredEvent{Position: seq, ID: eventID(h), Type: h.Get(hdrType), Body: data}
	var err error
	if e.Version, err = versionOf(h, seq); err != nil {
		return platform.StoredEvent{}, err
	}
	if e.SchemaVersion, err = strconv.Atoi(h.Get(hdrSchema)); err != nil {
		return platform.StoredEvent{}, platform.Errorf(platform.CodeCorruptEvent, "event at position %d: bad %s header: %w", seq, hdrSchema, err)
	}
	if v, ok := h[PrevHeader]; ok && len(v) > 0 {
		e.Prev, e.Chained = v[0], true
	}
	return e, nil
}

// StreamOf parses the subject of an event stored with this subject
// prefix: <prefix>.<aggregate type>.<aggregate id token>.
func StreamOf(prefix, subject string) (platform.StreamID, error) {
	return streamOf(prefix, subject)
}

// SubjectOf is the subject holding an aggregate's events under prefix.
func SubjectOf(prefix string, stream platform.StreamID) string {
	return subjectOf(prefix, stream)
}

// tailOf reads a stored message as the tail an append builds on.
func tailOf(m *jetstream.RawStreamMsg) (tail, error) {
	e, err := StoredEventOf(m.Sequence, m.Header, m.Data)
	if err != nil {
		return tail{}, err
	}
	return tail{version: e.Version, seq: m.Sequence, eventID: e.ID, hash: e.Hash()}, nil
}

// chainedBase fills in the hash of the event an exact-revision append
// builds on: from the cache, or by reading that event.
func (a *appendOp) chainedBase(ctx context.Context, base tail) (tail, error) {
	c := a.s.chain
	if h, ok := c.get(a.subject, base.seq); ok {
		c.hits.Add(1)
		base.hash = h
		return base, nil
	}
	c.misses.Add(1)
	m, err := a.s.getMsg(ctx, msgRequest{Seq: base.seq})
	switch {
	case err == nil && m.Subject == a.subject:
		t, err := tailOf(m)
		if err != nil {
			return tail{}, err
		}
		base.hash = t.hash
		c.put(a.subject, base.seq, t.hash)
	case err == nil, isNotFound(err):
		// Not this aggregate's event (any more): the server refuses the
		// append, whose expected position cannot be the subject's last.
	default:
		return tail{}, platform.Errorf(platform.CodeStoreUnavailable, "append to %s: read the event at position %d to chain to it: %w", a.stream, base.seq, err)
	}
	return base, nil
}

// chain stamps the messages' previous-hashes from base on and returns the
// hash of the last, which the event after them will carry.
func (a *appendOp) chain(base tail) string {
	prev := base.hash
	if a.prevs == nil {
		a.prevs = make([]string, len(a.msgs)) // the header values, one allocation
	}
	for i, m := range a.msgs {
		a.prevs[i] = prev
		m.Header[PrevHeader] = a.prevs[i : i+1 : i+1]
		e := &a.events[i]
		prev = platform.ChainHash(prev, e.ID, e.Type, e.SchemaVersion, base.version+uint64(i)+1, m.Data)
	}
	return prev
}

// ReadChain yields the aggregate's stored events as the hash chain sees
// them (platform.ChainReader), oldest first.
func (s *EventStore) ReadChain(ctx context.Context, stream platform.StreamID) iter.Seq2[platform.StoredEvent, error] {
	return func(yield func(platform.StoredEvent, error) bool) {
		if err := stream.Validate(); err != nil {
			yield(platform.StoredEvent{}, err)
			return
		}
		for m, err := range s.readSubject(ctx, subjectOf(s.opts.SubjectPrefix, stream), 1) {
			if err != nil {
				yield(platform.StoredEvent{}, platform.Errorf(platform.CodeStoreUnavailable, "read the chain of %s: %w", stream, err))
				return
			}
			e, err := StoredEventOf(m.Sequence, m.Header, m.Data)
			if !yield(e, err) || err != nil {
				return
			}
		}
	}
}
