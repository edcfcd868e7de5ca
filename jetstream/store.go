package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/platform"
)

// Options configure an EventStore. The zero value works: stream EVENTS on
// subjects events.>, one replica, file storage, msgpack.
type Options struct {
	Stream          string                // default "EVENTS"
	SubjectPrefix   string                // default "events"
	Replicas        int                   // default 1
	Storage         jetstream.StorageType // default file
	MaxAge          time.Duration         // 0: keep events forever
	MaxBytes        int64                 // 0: no limit; when reached, appends fail rather than drop history
	DuplicateWindow time.Duration         // how long a retried Any append is recognised; default 2m
	Codec           platform.Codec        // default msgpack
	Registry        *platform.Registry    // default platform.DefaultRegistry
	Logger          *slog.Logger          // default slog.Default()
	// GroupCommit shares atomic batches among concurrent appends when
	// enough are in flight for a batch to pay; off by default. Turn it on
	// where the server fsyncs every write on R1 file storage (see
	// GroupCommit).
	GroupCommit GroupCommit

	// RequireDurability is the least durability the store works with
	// (platform.DurabilityAny, DurabilityReplicated, DurabilityFsync; ""
	// is any; see the package documentation): below it New fails, and
	// appends fail once RefreshDurability finds the stream below it.
	RequireDurability platform.DurabilityLevel
	// ServerSync is the servers' fsync setting when the caller knows it,
	// as for an embedded server in this process (its JetStreamConfig()).
	// Nil: the store asks the servers' VARZ ($SYS.REQ.SERVER.PING.VARZ),
	// which only the system account answers; otherwise the setting is
	// reported unknown, never guessed.
	ServerSync *ServerSync
	// SystemConn is a system-account connection for that question; nil:
	// the store's own connection, answered if its account imports the
	// subject from the system account.
	SystemConn *nats.Conn
	// ChainCache is how many aggregates' last event hashes the store
	// remembers for the hash chain (chain.go), so that an append after a
	// load needs no read of its own. 0 means DefaultChainCache; negative
	// remembers none: each append at an exact revision then reads the
	// event it builds on first.
	ChainCache int
	// AttemptTimeout bounds one request of an append or a single-message
	// read to the server, within the caller's deadline: an answer lost
	// with a cut connection is asked for again (safely: a resent append
	// is recognised) instead of waited for until the caller gives up.
	// 0: the JetStream context's default timeout (5s unless set).
	AttemptTimeout time.Duration
}

// EventStore is a platform.EventStore on a JetStream stream.
type EventStore struct {
	js       jetstream.JetStream
	stream   jetstream.Stream
	opts     Options
	codec    platform.Codec
	registry *platform.Registry
	caps     Capabilities
	maxMsg   int // the server's max_payload
	getter   *batchGetter
	group    *committer  // nil without group commit
	chain    *chainCache // the hash chain's last links (chain.go)

	dur   atomic.Pointer[durabilityState] // what appends report, and refuse on
	durMu sync.Mutex                      // serialises RefreshDurability
	syncs SyncSettings                    // the servers' fsync settings; guarded by durMu
}

// Capabilities are what the connected server can do for the store.
type Capabilities struct {
	ServerVersion string
	APILevel      int  // JetStream API level (0 before 2.11)
	BatchGet      bool // batched direct get, 2.11+
	AtomicBatch   bool // atomic batch publish, 2.12+: needed for multi-event appends
}

// New connects the store to its stream, creating it or bringing its
// configuration up to date. It refuses to start on a stream whose
// configuration contradicts what an event store needs.
func New(ctx context.Context, js jetstream.JetStream, opts Options) (*EventStore, error) {
	opts = withDefaults(opts)
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = js.Options().DefaultTimeout
	}
	if err := validate(opts); err != nil {
		return nil, err
	}
	s := &EventStore{js: js, opts: opts, codec: opts.Codec, registry: opts.Registry, maxMsg: int(js.Conn().MaxPayload()), chain: newChainCache(opts.ChainCache)}
	var err error
	if s.caps, err = capabilities(ctx, js); err != nil {
		return nil, err
	}
	if s.stream, err = s.ensureStream(ctx); err != nil {
		return nil, err
	}
	if err := s.openDurability(ctx, s.stream.CachedInfo()); err != nil {
		return nil, err
	}
	s.getter = newBatchGetter(js, opts.Stream)
	switch {
	case opts.GroupCommit.Enabled && s.caps.AtomicBatch:
		s.group = newCommitter(s, opts.GroupCommit)
		s.group.probe(ctx)
	case opts.GroupCommit.Enabled:
		opts.Logger.WarnContext(ctx, "group commit is off: it needs atomic batch publish, from nats-server 2.12", "server", s.caps.ServerVersion)
	}
	opts.Logger.InfoContext(ctx, "event store ready", "stream", opts.Stream, "subjects", opts.SubjectPrefix+".>",
		"server", s.caps.ServerVersion, "api_level", s.caps.APILevel, "atomic_batch", s.caps.AtomicBatch,
		"replicas", opts.Replicas, "storage", opts.Storage.String(), "group_commit", s.group != nil,
		"durability", s.Durability().String(), "durability_level", s.Durability().Level())
	return s, nil
}

// attempt bounds one request to the server by Options.AttemptTimeout
// within ctx.
func (s *EventStore) attempt(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	switch {
	case !ok && s.opts.AttemptTimeout == s.js.Options().DefaultTimeout:
		return ctx, func() {} // nats.go bounds a request without a deadline by just that
	case ok && time.Until(deadline) <= s.opts.AttemptTimeout:
		return ctx, func() {} // the caller's deadline comes first
	}
	return context.WithTimeout(ctx, s.opts.AttemptTimeout)
}

// Capabilities reports what the server supports.
func (s *EventStore) Capabilities() Capabilities { return s.caps }

// headerRoom is the part of max_payload kept for an event's headers.
const headerRoom = 4096

// MaxEventSize is the largest encoded event body the store accepts: the
// server's max_payload less room for the envelope headers.
func (s *EventStore) MaxEventSize() int { return s.maxMsg - headerRoom }

// StreamName is the name of the JetStream stream holding the events.
func (s *EventStore) StreamName() string { return s.opts.Stream }

// SubjectPrefix is the first token of every event's subject: the stream
// holds <prefix>.<aggregate type>.<aggregate id token>.
func (s *EventStore) SubjectPrefix() string { return s.opts.SubjectPrefix }

// Subject returns the subject that holds an aggregate's events, for tools
// that read the stream directly.
func (s *EventStore) Subject(stream platform.StreamID) (string, error) {
	if err := stream.Validate(); err != nil {
		return "", err
	}
	return subjectOf(s.opts.SubjectPrefix, stream), nil
}

func withDefaults(o Options) Options {
	if o.Stream == "" {
		o.Stream = "EVENTS"
	}
	if o.SubjectPrefix == "" {
		o.SubjectPrefix = "events"
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.DuplicateWindow == 0 {
		o.DuplicateWindow = 2 * time.Minute
	}
	if o.Codec == nil {
		o.Codec = platform.Msgpack
	}
	if o.Registry == nil {
		o.Registry = platform.DefaultRegistry
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if l, err := platform.ParseDurabilityLevel(string(o.RequireDurability)); err == nil {
		o.RequireDurability = l
	}
	return o
}

func validate(o Options) error {
	var errs []error
	if strings.ContainsAny(o.Stream, " \t.*>/\\") {
		errs = append(errs, platform.Errorf(platform.CodeInvalidArgument, "stream name %q: use letters, digits, '-' and '_'", o.Stream))
	}
	for _, tok := range strings.Split(o.SubjectPrefix, ".") {
		if tok == "" || strings.ContainsAny(tok, " \t*>") {
			errs = append(errs, platform.Errorf(platform.CodeInvalidArgument, "subject prefix %q: use dot-separated tokens without spaces or wildcards, e.g. \"events\"", o.SubjectPrefix))
			break
		}
	}
	if o.Replicas < 1 || o.Replicas > 5 {
		errs = append(errs, platform.Errorf(platform.CodeInvalidArgument, "replicas %d: use 1 to 5", o.Replicas))
	}
	if o.MaxAge < 0 || o.MaxBytes < 0 {
		errs = append(errs, platform.Errorf(platform.CodeInvalidArgument, "max age %v and max bytes %d: use 0 for no limit, or a positive limit", o.MaxAge, o.MaxBytes))
	}
	if _, err := platform.ParseDurabilityLevel(string(o.RequireDurability)); err != nil {
		errs = append(errs, platform.Errorf(platform.CodeInvalidArgument, "require durability %q: use %q, %q or %q", o.RequireDurability,
			platform.DurabilityAny, platform.DurabilityReplicated, platform.DurabilityFsync))
	}
	if o.DuplicateWindow < 100*time.Millisecond {
		errs = append(errs, platform.Errorf(platform.CodeInvalidArgument, "duplicate window %v: use at least 100ms; it must outlast your retries", o.DuplicateWindow))
	}
	return errors.Join(errs...)
}

// capabilities reads the server version and the JetStream API level.
func capabilities(ctx context.Context, js jetstream.JetStream) (Capabilities, error) {
	info, err := js.AccountInfo(ctx)
	if err != nil {
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			return Capabilities{}, platform.Errorf(platform.CodeStoreUnavailable, "read JetStream account info: %w: the event store needs JetStream: start nats-server with -js (or jetstream {} in its configuration), and enable it for this account", err)
		}
		return Capabilities{}, platform.Errorf(platform.CodeStoreUnavailable, "read JetStream account info: %w: is JetStream enabled on the server?", err)
	}
	c := Capabilities{ServerVersion: js.Conn().ConnectedServerVersion(), APILevel: info.API.Level}
	c.BatchGet = ServerAtLeast(c.ServerVersion, 2, 11)
	c.AtomicBatch = ServerAtLeast(c.ServerVersion, 2, 12)
	return c, nil
}

// ServerAtLeast reports whether a nats-server version ("major.minor.patch[-suffix]",
// as nats.Conn.ConnectedServerVersion gives it) is major.minor or newer.
func ServerAtLeast(v string, major, minor int) bool {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}

// ensureStream creates the stream or updates it to the settings the store
// needs, keeping whatever else the operator configured.
func (s *EventStore) ensureStream(ctx context.Context) (jetstream.Stream, error) {
	o := s.opts
	want := jetstream.StreamConfig{
		Name:        o.Stream,
		Subjects:    []string{o.SubjectPrefix + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew,
		Storage:     o.Storage,
		Replicas:    o.Replicas,
		MaxAge:      o.MaxAge,
		MaxBytes:    orUnlimited(o.MaxBytes),
		MaxMsgs:     -1,
		Duplicates:  min(o.DuplicateWindow, nonZero(o.MaxAge)),
		AllowDirect: true,
		// Atomic batches are unknown before 2.12; older servers get
		// single-event appends only.
		AllowAtomicPublish: s.caps.AtomicBatch,
	}
	st, err := s.js.Stream(ctx, o.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		st, err = s.js.CreateStream(ctx, want)
		// nats-server 2.15.2 removes an account's streams directory in a
		// goroutine once its last stream is deleted; a stream created at
		// that moment fails with "error creating store for stream". The
		// race is over within milliseconds; a lasting cause (a directory
		// that cannot be written) fails every attempt and is reported.
		for backoff := 20 * time.Millisecond; apiCode(err) == codeStreamStoreFailed && backoff <= 320*time.Millisecond; backoff *= 2 {
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return nil, platform.Errorf(platform.CodeStoreUnavailable, "create stream %s: %w", o.Stream, ctx.Err())
			}
			st, err = s.js.CreateStream(ctx, want)
		}
		if apiCode(err) == codeStreamStoreFailed {
			return nil, platform.Errorf(platform.CodeStoreUnavailable, "create stream %s: %w (the server could not create the stream's files: check that its JetStream store directory is writable and has room; the server's log names the cause)", o.Stream, err)
		}
		if err != nil {
			return nil, platform.Errorf(platform.CodeStoreUnavailable, "create stream %s: %w", o.Stream, err)
		}
		return st, nil
	}
	if err != nil {
		return nil, platform.Errorf(platform.CodeStoreUnavailable, "look up stream %s: %w", o.Stream, err)
	}
	have := st.CachedInfo().Config
	if err := contradictions(have, want); err != nil {
		return nil, err
	}
	upd := have
	upd.Replicas, upd.MaxAge, upd.MaxBytes, upd.Duplicates = want.Replicas, want.MaxAge, want.MaxBytes, want.Duplicates
	upd.AllowDirect, upd.AllowAtomicPublish, upd.Discard = true, want.AllowAtomicPublish || have.AllowAtomicPublish, jetstream.DiscardNew
	if !sameConfig(have, upd) {
		if st, err = s.js.UpdateStream(ctx, upd); err != nil {
			return nil, platform.Errorf(platform.CodeConfigConflict, "update stream %s to the event store's settings: %w", o.Stream, err)
		}
	}
	return st, nil
}

// contradictions lists what an existing stream has that the store cannot
// change and cannot work with.
func contradictions(have, want jetstream.StreamConfig) error {
	var problems []string
	if !slices.Contains(have.Subjects, want.Subjects[0]) {
		problems = append(problems, fmt.Sprintf("its subjects are %q, not %q: add %q to them or configure another store.subject_prefix or store.stream",
			have.Subjects, want.Subjects[0], want.Subjects[0]))
	}
	if have.Retention != jetstream.LimitsPolicy {
		problems = append(problems, fmt.Sprintf("its retention is %s, which deletes events once consumed: an event store needs limits retention; recreate the stream or use another store.stream", have.Retention))
	}
	if have.Storage != want.Storage {
		problems = append(problems, fmt.Sprintf("its storage is %s, not %s: storage cannot change; set store.storage to %q or use another store.stream", have.Storage, want.Storage, have.Storage))
	}
	if have.DenyPurge {
		problems = append(problems, "it denies purges, which deleting and truncating aggregates need: clear deny_purge")
	}
	if have.PersistMode == jetstream.AsyncPersistMode {
		problems = append(problems, "its persist mode is async, which acknowledges before writing and rules out atomic batches: use the default persist mode")
	}
	if have.MaxMsgsPerSubject > 0 {
		problems = append(problems, fmt.Sprintf("it keeps at most %d messages per subject, which would drop aggregates' history: set max_msgs_per_subject to -1", have.MaxMsgsPerSubject))
	}
	if len(problems) == 0 {
		return nil
	}
	return platform.Errorf(platform.CodeConfigConflict, "stream %s exists but %s", have.Name, strings.Join(problems, "; and "))
}

func sameConfig(a, b jetstream.StreamConfig) bool {
	return a.Replicas == b.Replicas && a.MaxAge == b.MaxAge && a.MaxBytes == b.MaxBytes && a.Duplicates == b.Duplicates &&
		a.AllowDirect == b.AllowDirect && a.AllowAtomicPublish == b.AllowAtomicPublish && a.Discard == b.Discard
}

func orUnlimited(n int64) int64 {
	if n == 0 {
		return -1
	}
	return n
}

// nonZero maps "no max age" to the longest duration, for min().
func nonZero(d time.Duration) time.Duration {
	if d == 0 {
		return time.Duration(1<<63 - 1)
	}
	return d
}

// State is a summary of the event stream.
type State struct {
	Events       uint64
	Bytes        uint64
	LastPosition uint64
}

// State reads the stream's current size and head.
func (s *EventStore) State(ctx context.Context) (State, error) {
	info, err := s.stream.Info(ctx)
	if err != nil {
		return State{}, platform.Errorf(platform.CodeStoreUnavailable, "stream %s info: %w", s.opts.Stream, err)
	}
	return State{Events: info.State.Msgs, Bytes: info.State.Bytes, LastPosition: info.State.LastSeq}, nil
}
