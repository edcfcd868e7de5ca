package encryption

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/lexigram/events/platform"
)

// DefaultBucket is the KV bucket of Options{}.
const DefaultBucket = "LEXIGRAM_KEYS"

// DefaultCacheSize is how many unwrapped data keys a key ring keeps by
// default: each, ready to use (AES key schedule and GCM tables), takes
// about a kilobyte.
const DefaultCacheSize = 8192

// Mode says what of an event is sealed.
type Mode uint8

const (
	// ModeFields seals the fields tagged `lexigram:"personal"` only; the
	// rest of the event stays readable, and an event type without such
	// fields is stored as encoded.
	ModeFields Mode = iota
	// ModeWhole seals the whole body.
	ModeWhole
	// ModeNone stores the event as encoded, tags or not.
	ModeNone
)

func (m Mode) String() string {
	switch m {
	case ModeFields:
		return "fields"
	case ModeWhole:
		return "whole"
	case ModeNone:
		return "none"
	}
	return fmt.Sprintf("Mode(%d)", m)
}

// Options configure Open. The zero value works: bucket LEXIGRAM_KEYS, one
// replica, file storage, personal fields sealed, the default registry.
type Options struct {
	Bucket   string                // default DefaultBucket
	Replicas int                   // default 1
	Storage  jetstream.StorageType // default file
	// Mode is what is sealed of every event type not in Modes.
	Mode Mode
	// Modes overrides Mode by event type name.
	Modes map[string]Mode
	// CacheSize bounds the unwrapped data keys kept in memory; 0 means
	// DefaultCacheSize.
	CacheSize int
	// Registry gets the key ring as its sealer (platform.Registry.SetSealer)
	// and SubjectForgotten registered; nil means platform.DefaultRegistry.
	Registry *platform.Registry
	// Events is where Forget appends SubjectForgotten, a store on
	// Registry; nil appends nothing.
	Events platform.EventStore
	Logger *slog.Logger // default slog.Default()
}

// Keyring keeps the data keys in a KV bucket of their own, wrapped by a
// master key from a KeyProvider, and seals and opens event bodies with
// them: it is a platform.Sealer. Unwrapped keys are cached in memory; a
// watch on the bucket drops a cached key as soon as any process changes
// it (Forget, Rewrap).
type Keyring struct {
	kv       jetstream.KeyValue
	provider KeyProvider
	opts     Options

	mu       sync.RWMutex
	byID     map[string]*dataKey
	byStream map[platform.StreamID]*dataKey // aggregate subjects, looked up without building their name

	plans   sync.Map // *platform.EventType → *plan (fields.go)
	watcher jetstream.KeyWatcher
	stopped chan struct{}
}

var _ platform.Sealer = (*Keyring)(nil)

// dataKey is one unwrapped data key, or the tombstone of a forgotten one
// (aead nil).
type dataKey struct {
	id   string
	rev  uint64 // the KV revision it was read at
	aead cipher.AEAD
	gone atomic.Bool // changed in the bucket since: look it up again
}

func (k *dataKey) forgotten() bool { return k.aead == nil }

// keyRecord is a data key's KV value.
type keyRecord struct {
	Master    string    `msgpack:"master,omitempty"`  // the master key that wrapped it
	Wrapped   []byte    `msgpack:"wrapped,omitempty"` // nil in a tombstone
	Created   time.Time `msgpack:"created"`
	Forgotten time.Time `msgpack:"forgotten,omitempty"` // set in a tombstone
}

// checkRecord is a master key's key-check value: a constant wrapped by
// it, so that a changed or lost master key is found at start rather than
// when an event does not open.
type checkRecord struct {
	Wrapped []byte    `msgpack:"wrapped"`
	Created time.Time `msgpack:"created"`
}

var checkPlain = sha256.Sum256([]byte("lexigram master key check v1"))

// KV key prefixes.
const (
	dataPrefix  = "data."
	checkPrefix = "check."
)

// Open opens the key ring in its bucket, creating the bucket if needed,
// and checks that provider holds every master key that wrapped a data key
// there (an error naming the key and the fix if not). It sets the ring as
// the sealer of opts.Registry.
func Open(ctx context.Context, js jetstream.JetStream, provider KeyProvider, opts Options) (*Keyring, error) {
	if provider == nil {
		return nil, platform.Errorf(platform.CodeInvalidArgument, "encryption: no key provider: pass FileKeys, EnvKeys or your KMS's")
	}
	if err := validMasterKeyID(provider.KeyID()); err != nil {
		return nil, err
	}
	if opts.Bucket == "" {
		opts.Bucket = DefaultBucket
	}
	if opts.Replicas == 0 {
		opts.Replicas = 1
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = DefaultCacheSize
	}
	if opts.Registry == nil {
		opts.Registry = platform.DefaultRegistry
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	for name, m := range opts.Modes {
		if m > ModeNone {
			return nil, platform.Errorf(platform.CodeInvalidArgument, "encryption: mode of %q is %v: use ModeFields, ModeWhole or ModeNone", name, m)
		}
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      opts.Bucket,
		Description: "lexigram data keys, wrapped by a master key",
		History:     1,
		Storage:     opts.Storage,
		Replicas:    opts.Replicas,
	})
	if err != nil {
		return nil, storeErr(err, "create or update key bucket %q", opts.Bucket)
	}
	k := &Keyring{kv: kv, provider: provider, opts: opts,
		byID: map[string]*dataKey{}, byStream: map[platform.StreamID]*dataKey{}, stopped: make(chan struct{})}
	if err := k.checkMasterKeys(ctx); err != nil {
		return nil, err
	}
	if err := registerForgotten(opts.Registry); err != nil {
		return nil, err
	}
	// The watch lives as long as the ring, not the caller's ctx.
	if k.watcher, err = kv.Watch(context.WithoutCancel(ctx), dataPrefix+">", jetstream.UpdatesOnly()); err != nil {
		return nil, storeErr(err, "watch key bucket %q", opts.Bucket)
	}
	go k.watch()
	opts.Registry.SetSealer(k)
	return k, nil
}

// Close stops watching the bucket. The ring still seals and opens, but
// no longer learns of keys other processes forget.
func (k *Keyring) Close() error {
	select {
	case <-k.stopped:
		return nil
	default:
	}
	err := k.watcher.Stop()
	<-k.stopped
	return err
}

// Bucket is the KV bucket holding the data keys.
func (k *Keyring) Bucket() string { return k.opts.Bucket }

func (k *Keyring) watch() {
	defer close(k.stopped)
	for e := range k.watcher.Updates() {
		if e == nil {
			continue
		}
		k.evict(strings.TrimPrefix(e.Key(), dataPrefix), e.Revision())
	}
}

// evict drops a cached key that changed in the bucket at rev.
func (k *Keyring) evict(id string, rev uint64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if dk := k.byID[id]; dk != nil && dk.rev < rev {
		dk.gone.Store(true)
		delete(k.byID, id)
	}
}

// checkMasterKeys opens every master key's key check in the bucket, and
// adds the current key's if it has none.
func (k *Keyring) checkMasterKeys(ctx context.Context) error {
	masters, err := k.listKeys(ctx, checkPrefix)
	if err != nil {
		return err
	}
	current := k.provider.KeyID()
	haveCurrent := false
	for _, key := range masters {
		id := strings.TrimPrefix(key, checkPrefix)
		entry, err := k.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // retired by a Rewrap meanwhile
		}
		if err != nil {
			return storeErr(err, "read the key check of master key %q in bucket %q", id, k.opts.Bucket)
		}
		var rec checkRecord
		if err := msgpack.Unmarshal(entry.Value(), &rec); err != nil {
			return platform.Errorf(platform.CodeConfigConflict, "encryption: the key check of master key %q in bucket %q does not decode: %w: restore the bucket from a backup", id, k.opts.Bucket, err)
		}
		plain, err := k.provider.Unwrap(ctx, id, rec.Wrapped)
		switch {
		case errors.Is(err, ErrUnknownMasterKey):
			return platform.Errorf(platform.CodeConfigConflict,
				"encryption: data keys in bucket %q are wrapped by master key %q, which the key provider does not hold (its current key is %q): add %q back to the key file or variable, after the current key; if it is lost, every event sealed with those data keys is unreadable",
				k.opts.Bucket, id, current, id)
		case err != nil:
			return platform.Errorf(platform.CodeConfigConflict,
				"encryption: master key %q does not open its key check in bucket %q: the key material differs from the key that wrapped the data keys: restore the original key for ID %q (a new key needs a new ID, then Rewrap): %w",
				id, k.opts.Bucket, id, err)
		case subtle.ConstantTimeCompare(plain, checkPlain[:]) != 1:
			return platform.Errorf(platform.CodeConfigConflict,
				"encryption: master key %q opens its key check in bucket %q to the wrong value: the key provider is not returning what it wrapped: check its configuration",
				id, k.opts.Bucket)
		}
		haveCurrent = haveCurrent || id == current
	}
	if haveCurrent {
		return nil
	}
	wrapped, err := k.provider.Wrap(ctx, checkPlain[:])
	if err != nil {
		return platform.Errorf(platform.CodeConfigConflict, "encryption: wrap the key check with master key %q: %w", current, err)
	}
	value, err := msgpack.Marshal(&checkRecord{Wrapped: wrapped, Created: time.Now().UTC()})
	if err != nil {
		return err
	}
	if _, err := k.kv.Create(ctx, checkPrefix+current, value); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return storeErr(err, "store the key check of master key %q in bucket %q", current, k.opts.Bucket)
	} else if err != nil {
		return k.checkMasterKeys(ctx) // another process stored it first: check theirs
	}
	return nil
}

// listKeys lists the bucket's keys under prefix.
func (k *Keyring) listKeys(ctx context.Context, prefix string) ([]string, error) {
	lister, err := k.kv.ListKeysFiltered(ctx, prefix+">")
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil, nil
		}
		return nil, storeErr(err, "list keys %s> in bucket %q", prefix, k.opts.Bucket)
	}
	defer func() { _ = lister.Stop() }()
	var keys []string
	for key := range lister.Keys() {
		keys = append(keys, key)
	}
	return keys, nil
}

// AggregateSubject is the data subject of an aggregate's own key, the
// default for its events: "aggregate:<type>:<id>".
func AggregateSubject(stream platform.StreamID) string {
	return "aggregate:" + stream.Type + ":" + stream.ID
}

// KeyID is the ID of the data key of a data subject: a digest of its
// name, so that neither the stored events' headers nor the key bucket
// name the subject.
func KeyID(subject string) string {
	sum := sha256.Sum256([]byte("lexigram data subject\x00" + subject))
	// 128 bits in base64url: valid in KV keys and headers, and short, as
	// every sealed event carries it.
	return "k" + base64.RawURLEncoding.EncodeToString(sum[:16])
}

// sealKey returns the data key that seals an event for stream: the
// subject's, or the aggregate's when subject is "", created on first use.
func (k *Keyring) sealKey(ctx context.Context, stream platform.StreamID, subject string) (*dataKey, error) {
	if subject == "" {
		k.mu.RLock()
		dk := k.byStream[stream]
		k.mu.RUnlock()
		if dk != nil && !dk.gone.Load() {
			return dk, nil
		}
		subject = AggregateSubject(stream)
		dk, err := k.key(ctx, KeyID(subject), true)
		if err != nil {
			return nil, err
		}
		k.mu.Lock()
		if len(k.byStream) >= k.opts.CacheSize {
			shrink(k.byStream)
		}
		k.byStream[stream] = dk
		k.mu.Unlock()
		return dk, nil
	}
	return k.key(ctx, KeyID(subject), true)
}

// key returns data key id: cached, read from the bucket, or, with
// create, made and stored if the bucket has none.
func (k *Keyring) key(ctx context.Context, id string, create bool) (*dataKey, error) {
	k.mu.RLock()
	dk := k.byID[id]
	k.mu.RUnlock()
	if dk != nil {
		return dk, nil
	}
	for attempt := 0; ; attempt++ {
		dk, err := k.fetch(ctx, id)
		if err != nil || dk != nil {
			return k.cache(dk), err
		}
		if !create {
			return nil, platform.Errorf(platform.CodeConfigConflict,
				"encryption: data key %q is not in bucket %q, and no tombstone says it was forgotten: the bucket lost it (deleted, or restored from a backup older than the event): restore the bucket",
				id, k.opts.Bucket)
		}
		if dk, err = k.create(ctx, id); err != nil || dk != nil {
			return k.cache(dk), err
		}
		if attempt >= 3 { // created and forgotten under us, over and over
			return nil, platform.Errorf(platform.CodeStoreUnavailable, "encryption: data key %q in bucket %q keeps changing: try again", id, k.opts.Bucket)
		}
	}
}

func (k *Keyring) cache(dk *dataKey) *dataKey {
	if dk == nil {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if cur := k.byID[dk.id]; cur != nil && cur.rev >= dk.rev {
		return cur
	}
	if len(k.byID) >= k.opts.CacheSize {
		shrink(k.byID)
	}
	k.byID[dk.id] = dk
	return dk
}

// shrink drops about a quarter of a full cache, chosen by map order,
// which is random.
func shrink[K comparable](m map[K]*dataKey) {
	n := len(m) / 4
	for key := range m {
		if n <= 0 {
			break
		}
		delete(m, key)
		n--
	}
}

// fetch reads data key id from the bucket; nil, nil if it has none.
func (k *Keyring) fetch(ctx context.Context, id string) (*dataKey, error) {
	entry, err := k.kv.Get(ctx, dataPrefix+id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, storeErr(err, "read data key %q in bucket %q", id, k.opts.Bucket)
	}
	return k.unwrap(ctx, id, entry)
}

func (k *Keyring) unwrap(ctx context.Context, id string, entry jetstream.KeyValueEntry) (*dataKey, error) {
	var rec keyRecord
	if err := msgpack.Unmarshal(entry.Value(), &rec); err != nil {
		return nil, platform.Errorf(platform.CodeConfigConflict, "encryption: data key %q in bucket %q, revision %d, does not decode: %w: restore the bucket from a backup",
			id, k.opts.Bucket, entry.Revision(), err)
	}
	dk := &dataKey{id: id, rev: entry.Revision()}
	if !rec.Forgotten.IsZero() {
		return dk, nil
	}
	plain, err := k.provider.Unwrap(ctx, rec.Master, rec.Wrapped)
	if err != nil {
		if ctx.Err() != nil {
			return nil, platform.Errorf(platform.CodeStoreUnavailable, "encryption: unwrap data key %q: %w", id, ctx.Err())
		}
		return nil, platform.Errorf(platform.CodeConfigConflict, "encryption: unwrap data key %q of bucket %q with master key %q: %w: configure the master key that wrapped it", id, k.opts.Bucket, rec.Master, err)
	}
	if dk.aead, err = newAEAD(plain); err != nil {
		return nil, platform.Errorf(platform.CodeConfigConflict, "encryption: data key %q of bucket %q: %w", id, k.opts.Bucket, err)
	}
	clear(plain)
	return dk, nil
}

// create makes data key id and stores it if the bucket still has none;
// nil, nil if another process stored one first (read theirs).
func (k *Keyring) create(ctx context.Context, id string) (*dataKey, error) {
	plain := make([]byte, 32)
	rand.Read(plain) // never fails (crypto/rand)
	defer clear(plain)
	wrapped, err := k.provider.Wrap(ctx, plain)
	if err != nil {
		return nil, platform.Errorf(platform.CodeStoreUnavailable, "encryption: wrap a new data key with master key %q: %w", k.provider.KeyID(), err)
	}
	value, err := msgpack.Marshal(&keyRecord{Master: k.provider.KeyID(), Wrapped: wrapped, Created: time.Now().UTC()})
	if err != nil {
		return nil, err
	}
	rev, err := k.kv.Create(ctx, dataPrefix+id, value)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return nil, nil
	}
	if err != nil {
		return nil, storeErr(err, "store new data key %q in bucket %q", id, k.opts.Bucket)
	}
	dk := &dataKey{id: id, rev: rev}
	if dk.aead, err = newAEAD(plain); err != nil {
		return nil, err
	}
	return dk, nil
}

func storeErr(err error, format string, args ...any) error {
	return platform.Errorf(platform.CodeStoreUnavailable, "encryption: "+format+": %w", append(args, err)...)
}
