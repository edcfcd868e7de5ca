package kvsnapshot

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	lexjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// DefaultSnapshotBucket is the KV bucket of SnapshotOptions{}.
const DefaultSnapshotBucket = "lexigram_snapshots"

// headerRoom is what a KV write needs besides the value: the
// compare-and-set header and the subject travel in the same message.
const headerRoom = 1024

// maxSaveAttempts bounds SaveSnapshot's read-decide-write loop. Every
// conflict means another saver stored a later version, so a saver competing
// with n others needs at most n+1 attempts.
const maxSaveAttempts = 64

// SnapshotOptions configures NewSnapshotStore. The zero value works.
type SnapshotOptions struct {
	Bucket   string                // KV bucket; "" means DefaultSnapshotBucket
	Replicas int                   // 0 means 1
	Storage  jetstream.StorageType // zero value: file storage
	// MaxInlineSize is the largest encoded KV value in bytes; bigger
	// snapshots keep their state in the object store bucket "<Bucket>_large".
	// 0 or anything above the connection's max payload (minus room for
	// headers) means that limit.
	MaxInlineSize int
	// Sealer, if set, encrypts every state saved with the aggregate's data
	// key and opens it on load (encryption.Keyring is one).
	Sealer Sealer
}

// Sealer seals snapshot states. An aggregate whose key is gone for good
// (its data subject forgotten) reads as having no snapshot, so the
// repository replays its events instead, which read with placeholders.
type Sealer interface {
	SealSnapshot(ctx context.Context, stream platform.StreamID, state []byte) (sealed []byte, keyID string, err error)
	OpenSnapshot(ctx context.Context, stream platform.StreamID, keyID string, sealed []byte) (state []byte, shredded bool, err error)
}

// SnapshotStore is a platform.SnapshotStore on a JetStream KV bucket, with
// an object store bucket for snapshots too large for a KV value.
type SnapshotStore struct {
	js        jetstream.JetStream
	kv        jetstream.KeyValue
	bucket    string
	objBucket string
	opts      SnapshotOptions

	mu  sync.Mutex
	obs jetstream.ObjectStore // created on first need
}

var _ platform.SnapshotStore = (*SnapshotStore)(nil)

// NewSnapshotStore creates the snapshot bucket, or updates its
// configuration if it exists.
func NewSnapshotStore(ctx context.Context, js jetstream.JetStream, opts SnapshotOptions) (*SnapshotStore, error) {
	if opts.Bucket == "" {
		opts.Bucket = DefaultSnapshotBucket
	}
	if opts.Replicas == 0 {
		opts.Replicas = 1
	}
	kv, err := openBucket(ctx, js, opts.Bucket, "lexigram aggregate snapshots", opts.Replicas, opts.Storage)
	if err != nil {
		return nil, err
	}
	return &SnapshotStore{js: js, kv: kv, bucket: opts.Bucket, objBucket: opts.Bucket + "_large", opts: opts}, nil
}

// record is the KV value of a snapshot; doc.go describes the layout.
type record struct {
	Version       uint64    `msgpack:"version"`
	Position      uint64    `msgpack:"position"`
	SchemaVersion int       `msgpack:"schema"`
	Codec         string    `msgpack:"codec"`
	Time          time.Time `msgpack:"time"`
	State         []byte    `msgpack:"state"`
	Object        string    `msgpack:"object,omitempty"`
	Size          int       `msgpack:"size,omitempty"`
	SHA256        []byte    `msgpack:"sha256,omitempty"`
	Key           string    `msgpack:"key,omitempty"` // the data key State is sealed with
}

func newRecord(snap platform.Snapshot) record {
	return record{
		Version:       snap.Revision.Version,
		Position:      snap.Revision.Position,
		SchemaVersion: snap.SchemaVersion,
		Codec:         snap.Codec,
		Time:          snap.Time,
		State:         snap.State,
	}
}

func snapshotKey(s platform.StreamID) string { return s.Type + "." + lexjs.EncodeToken(s.ID) }

// SaveSnapshot stores snap unless the bucket holds the same or a later
// version of the aggregate.
func (s *SnapshotStore) SaveSnapshot(ctx context.Context, snap platform.Snapshot) error {
	if err := snap.Stream.Validate(); err != nil {
		return err
	}
	key := snapshotKey(snap.Stream)
	rec := newRecord(snap)
	if s.opts.Sealer != nil {
		var err error
		if rec.State, rec.Key, err = s.opts.Sealer.SealSnapshot(ctx, snap.Stream, snap.State); err != nil {
			return fmt.Errorf("kvsnapshot: save snapshot %s: %w", snap.Stream, err)
		}
	}
	value, err := msgpack.Marshal(&rec)
	if err != nil {
		return platform.Errorf(platform.CodeInvalidArgument, "kvsnapshot: save snapshot %s: encode: %w", snap.Stream, err)
	}
	large := len(value) > s.inlineLimit()

	for attempt := 0; attempt < maxSaveAttempts; attempt++ {
		cur, rev, err := s.current(ctx, key)
		if err != nil && platform.CodeOf(err) != platform.CodeCorruptEvent {
			return s.abandon(ctx, key, rec.Object, err)
		}
		if cur != nil && cur.Version >= rec.Version {
			return s.abandon(ctx, key, rec.Object, nil)
		}
		if large && rec.Object == "" {
			// Uploaded once, after we know it is needed, and reused across
			// conflicts: the name is ours alone.
			if value, err = s.upload(ctx, key, &rec); err != nil {
				return err
			}
		}
		if rev == 0 {
			_, err = s.kv.Create(ctx, key, value)
		} else {
			_, err = s.kv.Update(ctx, key, value, rev)
		}
		switch {
		case err == nil:
			if cur != nil && cur.Object != "" {
				s.deleteObject(ctx, cur.Object)
			}
			return nil
		case !isConflict(err):
			return s.abandon(ctx, key, rec.Object,
				storeErr(err, "save snapshot %s: write key %q in bucket %q at revision %d", snap.Stream, key, s.bucket, rev))
		}
		if err := backoff(ctx, attempt); err != nil {
			return s.abandon(ctx, key, rec.Object, fmt.Errorf("kvsnapshot: save snapshot %s: retry after a conflict on key %q: %w", snap.Stream, key, err))
		}
	}
	return s.abandon(ctx, key, rec.Object, platform.Errorf(platform.CodeConcurrency,
		"kvsnapshot: save snapshot %s: key %q in bucket %q changed under each of %d attempts: try again later",
		snap.Stream, key, s.bucket, maxSaveAttempts))
}

// LoadSnapshot returns the latest snapshot of the aggregate.
func (s *SnapshotStore) LoadSnapshot(ctx context.Context, stream platform.StreamID) (platform.Snapshot, bool, error) {
	if err := stream.Validate(); err != nil {
		return platform.Snapshot{}, false, err
	}
	key := snapshotKey(stream)
	for attempt := 0; ; attempt++ {
		rec, _, err := s.current(ctx, key)
		if err != nil || rec == nil {
			return platform.Snapshot{}, false, err
		}
		if rec.Object != "" {
			rec.State, err = s.download(ctx, key, rec)
			// A newer save deletes the object it replaced; the entry then
			// points to the newer one.
			if errors.Is(err, jetstream.ErrObjectNotFound) && attempt < 2 {
				continue
			}
			if err != nil {
				return platform.Snapshot{}, false, err
			}
		}
		if rec.Key != "" {
			if s.opts.Sealer == nil {
				return platform.Snapshot{}, false, platform.Errorf(platform.CodeConfigConflict,
					"kvsnapshot: snapshot %s is encrypted with data key %q, and this snapshot store has none: set SnapshotOptions.Sealer (the encryption key ring)", stream, rec.Key)
			}
			state, shredded, err := s.opts.Sealer.OpenSnapshot(ctx, stream, rec.Key, rec.State)
			if err != nil || shredded {
				return platform.Snapshot{}, false, err
			}
			rec.State = state
		}
		return platform.Snapshot{
			Stream:        stream,
			Revision:      platform.Revision{Version: rec.Version, Position: rec.Position},
			SchemaVersion: rec.SchemaVersion,
			Codec:         rec.Codec,
			State:         rec.State,
			Time:          rec.Time,
		}, true, nil
	}
}

// DeleteSnapshot removes the aggregate's snapshot, if any.
func (s *SnapshotStore) DeleteSnapshot(ctx context.Context, stream platform.StreamID) error {
	if err := stream.Validate(); err != nil {
		return err
	}
	key := snapshotKey(stream)
	for attempt := 0; attempt < maxSaveAttempts; attempt++ {
		entry, err := s.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return storeErr(err, "delete snapshot %s: get key %q in bucket %q", stream, key, s.bucket)
		}
		// At the revision we read, so we know which object we unlinked.
		err = s.kv.Delete(ctx, key, jetstream.LastRevision(entry.Revision()))
		if isConflict(err) {
			continue
		}
		if err != nil {
			return storeErr(err, "delete snapshot %s: delete key %q in bucket %q", stream, key, s.bucket)
		}
		var rec record
		if msgpack.Unmarshal(entry.Value(), &rec) == nil && rec.Object != "" {
			s.deleteObject(ctx, rec.Object)
		}
		return nil
	}
	return platform.Errorf(platform.CodeConcurrency,
		"kvsnapshot: delete snapshot %s: key %q in bucket %q changed under each of %d attempts: try again later",
		stream, key, s.bucket, maxSaveAttempts)
}

// current reads and decodes the entry at key: nil and revision 0 if there
// is none; the record is nil and the error CodeCorruptEvent, with the
// revision set, if the value does not decode.
func (s *SnapshotStore) current(ctx context.Context, key string) (*record, uint64, error) {
	entry, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, storeErr(err, "get snapshot key %q in bucket %q", key, s.bucket)
	}
	var rec record
	if err := msgpack.Unmarshal(entry.Value(), &rec); err != nil {
		return nil, entry.Revision(), platform.Errorf(platform.CodeCorruptEvent,
			"kvsnapshot: snapshot key %q in bucket %q, revision %d, does not decode: %w", key, s.bucket, entry.Revision(), err)
	}
	if !rec.Time.IsZero() {
		rec.Time = rec.Time.UTC()
	}
	return &rec, entry.Revision(), nil
}

func (s *SnapshotStore) inlineLimit() int {
	limit := int(s.js.Conn().MaxPayload()) - headerRoom
	if s.opts.MaxInlineSize > 0 && s.opts.MaxInlineSize < limit {
		limit = s.opts.MaxInlineSize
	}
	return limit
}

// upload moves rec.State to a new object and returns the pointer record's
// encoding; rec keeps the state so a retry can decide again.
func (s *SnapshotStore) upload(ctx context.Context, key string, rec *record) ([]byte, error) {
	obs, err := s.objects(ctx)
	if err != nil {
		return nil, err
	}
	name := key + "/" + rand.Text()
	if _, err := obs.PutBytes(ctx, name, rec.State); err != nil {
		s.deleteObject(ctx, name) // a failed Put may still have stored the object's meta record
		return nil, storeErr(err, "save snapshot key %q: put object %q in bucket %q", key, name, s.objBucket)
	}
	sum := sha256.Sum256(rec.State)
	rec.Object, rec.Size, rec.SHA256 = name, len(rec.State), sum[:]
	ptr := *rec
	ptr.State = nil
	value, err := msgpack.Marshal(&ptr)
	if err != nil {
		return nil, s.abandon(ctx, key, name, platform.Errorf(platform.CodeInvalidArgument, "kvsnapshot: save snapshot key %q: encode: %w", key, err))
	}
	return value, nil
}

func (s *SnapshotStore) download(ctx context.Context, key string, rec *record) ([]byte, error) {
	obs, err := s.objects(ctx)
	if err != nil {
		return nil, err
	}
	state, err := obs.GetBytes(ctx, rec.Object)
	switch {
	case errors.Is(err, jetstream.ErrObjectNotFound):
		return nil, platform.Errorf(platform.CodeCorruptEvent,
			"kvsnapshot: snapshot key %q in bucket %q points to object %q, which bucket %q lacks: %w", key, s.bucket, rec.Object, s.objBucket, err)
	case err != nil:
		return nil, storeErr(err, "load snapshot key %q: get object %q in bucket %q", key, rec.Object, s.objBucket)
	}
	if sum := sha256.Sum256(state); len(state) != rec.Size || !bytes.Equal(sum[:], rec.SHA256) {
		return nil, platform.Errorf(platform.CodeCorruptEvent,
			"kvsnapshot: snapshot key %q in bucket %q: object %q in bucket %q has %d bytes and another digest than the %d bytes recorded",
			key, s.bucket, rec.Object, s.objBucket, len(state), rec.Size)
	}
	return state, nil
}

// objects returns the large-snapshot bucket, creating it on first need so
// deployments that never see a large snapshot never get the bucket.
func (s *SnapshotStore) objects(ctx context.Context) (jetstream.ObjectStore, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.obs != nil {
		return s.obs, nil
	}
	obs, err := s.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      s.objBucket,
		Description: "lexigram snapshots too large for bucket " + s.bucket,
		Storage:     s.opts.Storage,
		Replicas:    s.opts.Replicas,
	})
	if err != nil {
		return nil, storeErr(err, "create or update object bucket %q for large snapshots", s.objBucket)
	}
	s.obs = obs
	return obs, nil
}

// abandon ends a save that did not publish object, deleting the object
// unless the entry refers to it after all: a write that timed out may still
// have landed. It returns err.
func (s *SnapshotStore) abandon(ctx context.Context, key, object string, err error) error {
	if object == "" {
		return err
	}
	ctx, cancel := cleanupContext(ctx)
	defer cancel()
	cur, _, getErr := s.current(ctx, key)
	if getErr != nil && platform.CodeOf(getErr) != platform.CodeCorruptEvent {
		return err // unsure: an unreferenced object is better than a dangling pointer
	}
	if cur == nil || cur.Object != object {
		s.deleteObject(ctx, object)
	}
	return err
}

// deleteObject deletes an object no entry refers to. Failure leaves an
// unreferenced object, which costs space but is never read, so it is not
// worth failing a save or delete that already took effect.
func (s *SnapshotStore) deleteObject(ctx context.Context, name string) {
	ctx, cancel := cleanupContext(ctx)
	defer cancel()
	if obs, err := s.objects(ctx); err == nil {
		_ = obs.Delete(ctx, name)
	}
}

// cleanupContext outlives the caller's cancellation, so a save cancelled
// midway still removes what it wrote.
func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
}

// backoff spreads out savers that keep colliding; the first retries are
// immediate because a single collision is the common case.
func backoff(ctx context.Context, attempt int) error {
	if attempt < 2 {
		return ctx.Err()
	}
	d := time.Duration(mathrand.Int64N(int64(min(attempt, 20)) * int64(time.Millisecond)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// openBucket creates a one-value-per-key bucket, or updates its
// configuration if it exists.
func openBucket(ctx context.Context, js jetstream.JetStream, bucket, description string, replicas int, storage jetstream.StorageType) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      bucket,
		Description: description,
		History:     1,
		Storage:     storage,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return nil, storeErr(err, "create or update bucket %q", bucket)
	}
	return kv, nil
}
