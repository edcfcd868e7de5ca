package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/lexigram/events/platform"
)

// Leases decide which of the processes running a projection applies its
// events: the one holding the projection's lease.
type Leases interface {
	// Acquire waits until this process holds the lease on name, or ctx
	// ends. The lease is kept until Release or until ctx ends.
	Acquire(ctx context.Context, name string) (Lease, error)
}

// Lease is a held lease.
type Lease interface {
	// Lost is closed when the lease is no longer held: another process
	// took it or it could not be renewed in time.
	Lost() <-chan struct{}
	// Release gives the lease up so that another process takes over at
	// once.
	Release(ctx context.Context) error
}

// soloLeases is the Leases of Options{}: this process is the only one.
type soloLeases struct{}

func (soloLeases) Acquire(ctx context.Context, name string) (Lease, error) {
	return soloLease{}, ctx.Err()
}

type soloLease struct{}

func (soloLease) Lost() <-chan struct{}             { return nil }
func (soloLease) Release(ctx context.Context) error { return nil }

// DefaultLeaseBucket is the KV bucket of KVLeaseOptions{}.
const DefaultLeaseBucket = "lexigram_leases"

// KVLeaseOptions configure NewKVLeases. The zero value works.
type KVLeaseOptions struct {
	Bucket   string                // default DefaultLeaseBucket
	TTL      time.Duration         // how long a lease outlives its holder's last renewal; default 5s, at least 1s
	Instance string                // this process's name in the lease; default host-pid-random
	Replicas int                   // 0 means 1
	Storage  jetstream.StorageType // zero value: file storage
	Logger   *slog.Logger          // default slog.Default()
}

// KVLeases are leases on a JetStream key-value bucket: the key
// "projection.<name>" holds the holder's instance name. Acquire creates the
// key (compare-and-set on revision 0); the holder rewrites it every TTL/3
// with compare-and-set on its revision. The bucket's max age is the TTL, so
// a key its holder stops renewing (the process died, its connection
// closed) expires after at most TTL, and the server leaves a delete marker
// that wakes the waiting processes through a watch. Release deletes the
// key, so a clean stop hands over at once.
//
// A lease is not strict exclusion (a paused holder can run on for a moment
// after its lease expired): the projection's checkpoint, written with
// compare-and-set, stops the loser of such an overlap.
type KVLeases struct {
	kv   jetstream.KeyValue
	nc   *nats.Conn
	opts KVLeaseOptions

	// beforeFollow, set by tests only, runs as Follow starts: it lets a
	// test make a subscription take effect late, as CPU load can.
	beforeFollow func()

	mu sync.Mutex
	// announced is the highest position announced per projection: what
	// the lease holder answers a process that starts following it.
	announced map[string]uint64
}

// NewKVLeases creates the lease bucket, or updates its settings.
func NewKVLeases(ctx context.Context, js jetstream.JetStream, opts KVLeaseOptions) (*KVLeases, error) {
	if opts.Bucket == "" {
		opts.Bucket = DefaultLeaseBucket
	}
	if opts.TTL == 0 {
		opts.TTL = 5 * time.Second
	}
	if opts.TTL < time.Second {
		return nil, platform.Errorf(platform.CodeInvalidArgument, "lease TTL %v: use at least 1s (the server's delete markers live at least a second)", opts.TTL)
	}
	if opts.Instance == "" {
		host, _ := os.Hostname()
		// A nuid's head is the same for every call in a process; its tail
		// differs with each.
		id := nuid.Next()
		opts.Instance = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), id[len(id)-8:])
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	cfg := jetstream.KeyValueConfig{
		Bucket:         opts.Bucket,
		Description:    "lexigram projection leases: which process applies a projection's events",
		History:        1,
		TTL:            opts.TTL,
		Replicas:       max(opts.Replicas, 1),
		Storage:        opts.Storage,
		LimitMarkerTTL: opts.TTL,
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, cfg)
	if errors.Is(err, jetstream.ErrLimitMarkerTTLNotSupported) {
		// Before 2.11 expiries leave no marker: waiting processes notice
		// on their next try instead, within TTL/4.
		cfg.LimitMarkerTTL = 0
		kv, err = js.CreateOrUpdateKeyValue(ctx, cfg)
	}
	if err != nil {
		return nil, platform.Errorf(platform.CodeStoreUnavailable, "projections: open lease bucket %q: %w", opts.Bucket, err)
	}
	return &KVLeases{kv: kv, nc: js.Conn(), opts: opts, announced: map[string]uint64{}}, nil
}

// ProgressRelay is implemented by Leases that carry the active process's
// applied position to the processes standing by, so that WaitFor works on
// every process of a read model they share (a database, a KV bucket).
type ProgressRelay interface {
	// Announce tells the others that projection name has applied position.
	Announce(name string, position uint64)
	// Follow calls f with each position announced for name until ctx
	// ends, starting with the one the active process has reached, so
	// that a process that starts following after the last announcement
	// (the store is idle) still learns it.
	Follow(ctx context.Context, name string, f func(position uint64)) error
}

var _ ProgressRelay = (*KVLeases)(nil)

// progressSubject carries a projection's applied positions: core NATS,
// at most once; a lost one is made good by the next batch's, or on an
// idle store by the followers' next question on positionSubject.
func (l *KVLeases) progressSubject(name string) string {
	return "lexigram.projections." + l.opts.Bucket + "." + name + ".applied"
}

// positionSubject is where the lease holder answers the question "where
// are you?" of the processes that follow its progress.
func (l *KVLeases) positionSubject(name string) string {
	return "lexigram.projections." + l.opts.Bucket + "." + name + ".position"
}

// Announce publishes the position on core NATS; it never blocks on the
// network and a failure only delays the standby processes' WaitFor.
func (l *KVLeases) Announce(name string, position uint64) {
	// Recorded before it is published, so that an answer given after the
	// server has seen this announcement counts it.
	l.mu.Lock()
	l.announced[name] = max(l.announced[name], position)
	l.mu.Unlock()
	_ = l.nc.Publish(l.progressSubject(name), strconv.AppendUint(nil, position, 10))
}

func (l *KVLeases) lastAnnounced(name string) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.announced[name]
}

// Follow subscribes to the positions announced for name, and asks the
// lease holder for the position it has reached.
//
// An announcement the server handles before this subscription never
// arrives, and when it was the last one (the active process caught up
// and the store is idle) no later one makes it good: a standby started a
// moment too late, or whose subscription reached the server late under
// load, would wait forever. The question travels after the subscription
// on the same connection, so by the time the holder answers, the server
// delivers every later announcement here, and the answer counts every
// earlier one. Asking again every TTL makes good announcements lost on
// the way (core NATS is at most once).
func (l *KVLeases) Follow(ctx context.Context, name string, f func(position uint64)) error {
	if l.beforeFollow != nil {
		l.beforeFollow()
	}
	sub, err := l.nc.Subscribe(l.progressSubject(name), func(m *nats.Msg) {
		if pos, err := strconv.ParseUint(string(m.Data), 10, 64); err == nil {
			f(pos)
		}
	})
	if err != nil {
		return platform.Errorf(platform.CodeStoreUnavailable, "projections: follow the progress of %q: %w", name, err)
	}
	// Asked in the background: a holder slow to answer must not hold up
	// this process's own attempt at the lease.
	go func() {
		defer func() { _ = sub.Unsubscribe() }()
		t := time.NewTicker(l.opts.TTL)
		defer t.Stop()
		for {
			l.askPosition(ctx, name, f)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return nil
}

// askPosition asks the lease holder of name for the position it has
// announced, and hands it to f.
func (l *KVLeases) askPosition(ctx context.Context, name string, f func(position uint64)) {
	rctx, cancel := context.WithTimeout(ctx, l.opts.TTL)
	defer cancel()
	m, err := l.nc.RequestWithContext(rctx, l.positionSubject(name), nil)
	switch {
	case err == nil:
		if pos, err := strconv.ParseUint(string(m.Data), 10, 64); err == nil {
			f(pos)
		}
	case ctx.Err() != nil, errors.Is(err, nats.ErrNoResponders):
		// Stopped following, or no process holds the lease: the next
		// holder announces the position it starts from.
	default:
		l.opts.Logger.Debug("projection progress: the lease holder did not tell its position; asking again later", "projection", name, "err", err)
	}
}

// answerPosition answers, while this process holds the lease on name,
// the followers' questions with the highest position it announced.
func (l *KVLeases) answerPosition(name string) *nats.Subscription {
	sub, err := l.nc.Subscribe(l.positionSubject(name), func(m *nats.Msg) {
		_ = m.Respond(strconv.AppendUint(nil, l.lastAnnounced(name), 10))
	})
	if err != nil {
		l.opts.Logger.Warn("projection lease: cannot answer the standby processes' questions; they see this process's progress from its next announcement", "projection", name, "err", err)
		return nil
	}
	return sub
}

// Instance is this process's name in the leases it holds.
func (l *KVLeases) Instance() string { return l.opts.Instance }

// Holder returns the instance holding the lease on name, or "" if none
// does.
func (l *KVLeases) Holder(ctx context.Context, name string) (string, error) {
	e, err := l.kv.Get(ctx, "projection."+name)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return "", nil
	}
	if err != nil {
		return "", platform.Errorf(platform.CodeStoreUnavailable, "projections: read lease %q: %w", name, err)
	}
	return string(e.Value()), nil
}

// Acquire waits until it holds the lease on name: it tries at once, then
// whenever the key is deleted or expires, and every TTL/4 in case a wake-up
// was missed.
func (l *KVLeases) Acquire(ctx context.Context, name string) (Lease, error) {
	key := "projection." + name
	var freed <-chan jetstream.KeyValueEntry
	if w, err := l.kv.Watch(ctx, key, jetstream.UpdatesOnly(), jetstream.MetaOnly()); err == nil {
		defer func() { _ = w.Stop() }()
		freed = w.Updates()
	}
	retry := time.NewTicker(l.opts.TTL / 4)
	defer retry.Stop()
	for {
		rev, err := l.kv.Create(ctx, key, []byte(l.opts.Instance))
		if err == nil {
			return l.hold(ctx, name, key, rev), nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, nats.ErrConnectionClosed) {
			return nil, platform.Errorf(platform.CodeStoreUnavailable, "projections: acquire lease %q: %w", key, err)
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			l.opts.Logger.WarnContext(ctx, "projection lease: cannot reach the lease bucket; trying again", "lease", key, "err", err)
		}
		for waiting := true; waiting; {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-retry.C:
				waiting = false
			case e, ok := <-freed:
				if !ok {
					freed = nil
				} else if e != nil && e.Operation() != jetstream.KeyValuePut {
					waiting = false
				}
			}
		}
	}
}

// hold renews the lease until Release or until ctx ends; a process whose
// work ends without a Release (a crash of its run) stops renewing, and the
// key expires after the TTL.
func (l *KVLeases) hold(ctx context.Context, name, key string, rev uint64) *kvLease {
	ctx, cancel := context.WithCancel(ctx)
	h := &kvLease{l: l, key: key, rev: rev, lost: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
	// Subscribed before the lease is handed out, so on this connection
	// ahead of every announcement the holder makes.
	h.answer = l.answerPosition(name)
	go h.renew(ctx)
	return h
}

type kvLease struct {
	l      *KVLeases
	key    string
	cancel context.CancelFunc
	done   chan struct{}      // closed when renew returns
	answer *nats.Subscription // answerPosition's while the lease is held; nil if it failed

	mu       sync.Mutex
	rev      uint64
	lost     chan struct{}
	lostOnce sync.Once
}

func (h *kvLease) Lost() <-chan struct{} { return h.lost }

func (h *kvLease) markLost() { h.lostOnce.Do(func() { close(h.lost) }) }

// renew rewrites the key every TTL/3. A revision mismatch means another
// process holds it now; failing to renew for longer than the TTL means the
// key has expired on the server.
func (h *kvLease) renew(ctx context.Context) {
	defer close(h.done)
	// Before done closes, so that a released lease has stopped answering
	// by the time the next holder can take it.
	defer func() {
		if h.answer != nil {
			_ = h.answer.Unsubscribe()
		}
	}()
	ttl := h.l.opts.TTL
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	lastOK := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h.mu.Lock()
		rev := h.rev
		h.mu.Unlock()
		rctx, cancel := context.WithTimeout(ctx, ttl/3)
		next, err := h.l.kv.Update(rctx, h.key, []byte(h.l.opts.Instance), rev)
		cancel()
		switch {
		case err == nil:
			h.mu.Lock()
			h.rev = next
			h.mu.Unlock()
			lastOK = time.Now()
		case ctx.Err() != nil:
			return
		case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyNotFound):
			h.l.opts.Logger.Warn("projection lease lost: another process holds it", "lease", h.key, "instance", h.l.opts.Instance)
			h.markLost()
			return
		case time.Since(lastOK) >= ttl*2/3:
			// Give up before the server expires the key, so the overlap
			// with the next holder stays short.
			h.l.opts.Logger.Warn("projection lease lost: not renewed in time", "lease", h.key, "instance", h.l.opts.Instance, "err", err)
			h.markLost()
			return
		}
	}
}

// Release stops renewing and deletes the key if this process still holds
// it.
func (h *kvLease) Release(ctx context.Context) error {
	h.cancel()
	<-h.done
	select {
	case <-h.lost:
		return nil
	default:
	}
	h.markLost()
	h.mu.Lock()
	rev := h.rev
	h.mu.Unlock()
	err := h.l.kv.Delete(ctx, h.key, jetstream.LastRevision(rev))
	if err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, jetstream.ErrKeyExists) {
		return platform.Errorf(platform.CodeStoreUnavailable, "projections: release lease %q: %w", h.key, err)
	}
	return nil
}
