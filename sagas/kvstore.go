package sagas

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/platform"
)

// DefaultKVBucket is the bucket of KVOptions{}.
const DefaultKVBucket = "lexigram_sagas"

// KVOptions configures NewKVStore. The zero value works.
type KVOptions struct {
	Bucket   string                // KV bucket; "" means DefaultKVBucket
	Replicas int                   // 0 means 1
	Storage  jetstream.StorageType // zero value: file storage
}

// KVStore is a Store on a JetStream key-value bucket, the default one: it
// needs nothing the event store does not already have. The bucket keeps
// one value per key (history 1):
//
//	i.<instance ID>  the instance: the JSON of Instance
//
// An instance's ID is InstanceID(type, key), so the record is also its
// key's index: Create is one create-only write, which one of any number
// of concurrent Creates for the key wins, and FindByKey one read. An
// instance's Revision is the KV revision of its record, which grows with
// every write to the bucket, not by one; Save writes with compare-and-set
// on it.
type KVStore struct {
	kv     jetstream.KeyValue
	stream jetstream.Stream // the bucket's, for the start sweep's window reads
	bucket string
}

var _ Store = (*KVStore)(nil)

// NewKVStore creates the bucket, or binds to it and brings its
// configuration up to date if it exists. A bucket that cannot be made to
// fit, such as one with other storage, is a platform.ErrConfigConflict.
func NewKVStore(ctx context.Context, js jetstream.JetStream, opts KVOptions) (*KVStore, error) {
	if opts.Bucket == "" {
		opts.Bucket = DefaultKVBucket
	}
	kv, err := openKVBucket(ctx, js, jetstream.KeyValueConfig{
		Bucket:      opts.Bucket,
		Description: "lexigram saga instances",
		History:     1,
		Storage:     opts.Storage,
		Replicas:    max(opts.Replicas, 1),
	})
	if err != nil {
		return nil, err
	}
	stream, err := js.Stream(ctx, "KV_"+opts.Bucket)
	if err != nil {
		return nil, kvErr(err, "open the stream of bucket %q", opts.Bucket)
	}
	return &KVStore{kv: kv, stream: stream, bucket: opts.Bucket}, nil
}

// openKVBucket creates the bucket, or updates an existing one to want, as
// kvsnapshot does with its buckets. It first checks what the server
// cannot change, to say so and what to do instead of passing on the
// server's terse refusal.
func openKVBucket(ctx context.Context, js jetstream.JetStream, want jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	existing, err := js.KeyValue(ctx, want.Bucket)
	switch {
	case errors.Is(err, jetstream.ErrBucketNotFound):
		existing = nil
	case errors.Is(err, jetstream.ErrInvalidBucketName):
		return nil, platform.Errorf(platform.CodeInvalidArgument,
			"sagas: bucket name %q: %w: use letters, digits, '-' and '_'", want.Bucket, err)
	case errors.Is(err, jetstream.ErrBadBucket):
		return nil, platform.Errorf(platform.CodeConfigConflict,
			"sagas: stream KV_%s exists but is not a key-value bucket: %w: set KVOptions.Bucket to another name", want.Bucket, err)
	case err != nil:
		return nil, kvErr(err, "look up bucket %q", want.Bucket)
	}
	var have jetstream.KeyValueConfig
	if existing != nil {
		status, err := existing.Status(ctx)
		if err != nil {
			return nil, kvErr(err, "read the configuration of bucket %q", want.Bucket)
		}
		have = status.Config()
		if have.Storage != want.Storage {
			return nil, platform.Errorf(platform.CodeConfigConflict,
				"sagas: bucket %q exists with %s storage, not the %s storage asked for: storage cannot change; set KVOptions.Storage to jetstream.%sStorage or use another KVOptions.Bucket",
				want.Bucket, have.Storage, want.Storage, have.Storage)
		}
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, want)
	switch {
	case err == nil:
		return kv, nil
	case existing != nil && !kvUnavailable(err):
		return nil, platform.Errorf(platform.CodeConfigConflict,
			"sagas: bucket %q exists with %d replicas and history %d, and the server refused to change it to %d replicas and history 1: %w: set KVOptions.Replicas to %d or use another KVOptions.Bucket",
			want.Bucket, have.Replicas, have.History, want.Replicas, err, have.Replicas)
	}
	return nil, kvErr(err, "create bucket %q (%s storage, %d replicas)", want.Bucket, want.Storage, want.Replicas)
}

func kvRecordKey(id string) string { return "i." + id }

// Create stores in unless an instance of its type has its key.
func (s *KVStore) Create(ctx context.Context, in Instance) (Instance, bool, error) {
	if err := CheckNew(in); err != nil {
		return Instance{}, false, err
	}
	data, err := encodeStored(in)
	if err != nil {
		return Instance{}, false, err
	}
	key := kvRecordKey(in.ID)
	rev, err := s.kv.Create(ctx, key, data)
	if err == nil {
		// As Load will return it: after the encoding, sharing nothing
		// with the caller's in.
		stored, err := decodeStored(in.ID, data)
		if err != nil {
			return Instance{}, false, err
		}
		stored.Revision = rev
		return stored, true, nil
	}
	if !kvConflict(err) {
		return Instance{}, false, kvErr(err, "create saga instance %s: create key %q in bucket %q", in.ID, key, s.bucket)
	}
	stored, err := s.get(ctx, in.ID)
	if err != nil {
		return Instance{}, false, err
	}
	return stored, false, nil
}

// Load returns the instance with the ID.
func (s *KVStore) Load(ctx context.Context, id string) (Instance, error) {
	if err := CheckID(id); err != nil {
		return Instance{}, err
	}
	return s.get(ctx, id)
}

// get reads and decodes the record of id.
func (s *KVStore) get(ctx context.Context, id string) (Instance, error) {
	key := kvRecordKey(id)
	entry, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Instance{}, platform.Errorf(platform.CodeSagaNotFound,
			"sagas: no saga instance has ID %q in bucket %q: %w: check the ID and KVOptions.Bucket", id, s.bucket, err)
	}
	if err != nil {
		return Instance{}, kvErr(err, "load saga instance %s: get key %q in bucket %q", id, key, s.bucket)
	}
	in, err := decodeStored(id, entry.Value())
	if err != nil {
		return Instance{}, &CorruptError{ID: id, Type: storedType(entry.Value()), Revision: entry.Revision(),
			Err: fmt.Errorf("key %q in bucket %q: %w", key, s.bucket, err)}
	}
	in.Revision = entry.Revision()
	return in, nil
}

// FindByKey returns the instance of the type with the association key:
// the record of InstanceID(sagaType, key).
func (s *KVStore) FindByKey(ctx context.Context, sagaType, key string) (Instance, error) {
	if err := CheckType(sagaType); err != nil {
		return Instance{}, err
	}
	if err := CheckKey(sagaType, key); err != nil {
		return Instance{}, err
	}
	in, err := s.get(ctx, InstanceID(sagaType, key))
	if errors.Is(err, platform.ErrSagaNotFound) {
		return Instance{}, platform.Errorf(platform.CodeSagaNotFound,
			"sagas: no saga instance of type %q has association key %q in bucket %q: %w: start one, or check the type, the key and KVOptions.Bucket",
			sagaType, key, s.bucket, err)
	}
	return in, err
}

// Save writes in over its record if that is still at in.Revision.
func (s *KVStore) Save(ctx context.Context, in Instance) (uint64, error) {
	if err := CheckID(in.ID); err != nil {
		return 0, err
	}
	data, err := encodeStored(in)
	if err != nil {
		return 0, err
	}
	key := kvRecordKey(in.ID)
	// Revision 0 would ask KV to create the record; Save never creates.
	writeErr := errors.New("revision 0 is no stored revision")
	if in.Revision != 0 {
		var rev uint64
		if rev, writeErr = s.kv.Update(ctx, key, data, in.Revision); writeErr == nil {
			return rev, nil
		}
		if !kvConflict(writeErr) {
			return 0, kvErr(writeErr, "save saga instance %s: update key %q in bucket %q at revision %d", in.ID, key, s.bucket, in.Revision)
		}
	}
	// Only to tell a missing instance from a moved one and to name the
	// stored revision; the write failed whatever this read returns.
	cur, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, platform.Errorf(platform.CodeSagaNotFound,
			"sagas: save saga instance %s: bucket %q has no instance with that ID: %w: Create it first", in.ID, s.bucket, err)
	}
	if err != nil {
		return 0, kvErr(err, "save saga instance %s at revision %d: the write failed, and so did reading key %q in bucket %q", in.ID, in.Revision, key, s.bucket)
	}
	return 0, platform.Errorf(platform.CodeSagaConflict,
		"sagas: save saga instance %s at revision %d: bucket %q holds revision %d: %w: another process saved it since; load it and decide again",
		in.ID, in.Revision, s.bucket, cur.Revision(), writeErr)
}

// List reads the instance keys, then the records after q.After in ID
// order until it has q.Limit matching ones: one read per record, so the
// Type and States filters cost as much as reading what they skip. A
// corrupt record matches as its CorruptError's Parked instance does.
func (s *KVStore) List(ctx context.Context, q Query) ([]Instance, error) {
	if err := validateStoredQuery(q); err != nil {
		return nil, err
	}
	ids, err := s.instanceIDs(ctx)
	if err != nil {
		return nil, err
	}
	start, found := slices.BinarySearch(ids, q.After)
	if found {
		start++
	}
	return page(q, ids[start:], func(id string) (Instance, bool, error) {
		in, err := s.get(ctx, id)
		var corrupt *CorruptError
		switch {
		case errors.As(err, &corrupt):
			return corrupt.Parked(), true, nil
		case errors.Is(err, platform.ErrSagaNotFound):
			return Instance{}, false, nil
		}
		return in, err == nil, err
	})
}

// instanceIDs returns the IDs of the records in the bucket, sorted.
func (s *KVStore) instanceIDs(ctx context.Context) ([]string, error) {
	lister, err := s.kv.ListKeysFiltered(ctx, kvRecordKey("*"))
	if err != nil {
		return nil, kvErr(err, "list saga instances: list keys in bucket %q", s.bucket)
	}
	var ids []string
	// The lister closes the channel when it has sent every key, and also
	// when ctx ends, so only ctx tells a short list from a whole one.
	for key := range lister.Keys() {
		ids = append(ids, strings.TrimPrefix(key, kvRecordKey("")))
	}
	if err := ctx.Err(); err != nil {
		return nil, kvErr(err, "list saga instances: list keys in bucket %q", s.bucket)
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// kvErr wraps a NATS error with what we were doing. Errors that mean the
// server was not reached in time get CodeStoreUnavailable, so callers can
// tell "try again later" from a misconfiguration.
func kvErr(err error, format string, args ...any) error {
	msg := "sagas: " + fmt.Sprintf(format, args...)
	if kvUnavailable(err) {
		return platform.Errorf(platform.CodeStoreUnavailable, "%s: %w", msg, err)
	}
	return fmt.Errorf("%s: %w", msg, err)
}

func kvUnavailable(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrConnectionClosed)
}

// kvConflict reports a compare-and-set failure. Create reports one over a
// delete marker as a bare "wrong last sequence" API error, and replicated
// buckets use code 10164 instead of 10071, so the sentinels are not enough.
func kvConflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
