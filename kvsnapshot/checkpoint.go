package kvsnapshot

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/platform"
)

// DefaultCheckpointBucket is the KV bucket of CheckpointOptions{}.
const DefaultCheckpointBucket = "lexigram_checkpoints"

// CheckpointOptions configures NewCheckpointStore. The zero value works.
type CheckpointOptions struct {
	Bucket   string                // KV bucket; "" means DefaultCheckpointBucket
	Replicas int                   // 0 means 1
	Storage  jetstream.StorageType // zero value: file storage
}

// CheckpointStore is a platform.CheckpointStore on a JetStream KV bucket;
// a checkpoint's revision is its KV revision.
type CheckpointStore struct {
	kv     jetstream.KeyValue
	bucket string
}

var _ platform.CheckpointStore = (*CheckpointStore)(nil)

// NewCheckpointStore creates the checkpoint bucket, or updates its
// configuration if it exists.
func NewCheckpointStore(ctx context.Context, js jetstream.JetStream, opts CheckpointOptions) (*CheckpointStore, error) {
	if opts.Bucket == "" {
		opts.Bucket = DefaultCheckpointBucket
	}
	kv, err := openBucket(ctx, js, opts.Bucket, "lexigram projection and handler checkpoints", opts.Replicas, opts.Storage)
	if err != nil {
		return nil, err
	}
	return &CheckpointStore{kv: kv, bucket: opts.Bucket}, nil
}

// LoadCheckpoint returns the named checkpoint, or Position and Revision 0
// if none is stored.
func (s *CheckpointStore) LoadCheckpoint(ctx context.Context, name string) (platform.Checkpoint, error) {
	if err := validateName(name); err != nil {
		return platform.Checkpoint{}, err
	}
	entry, err := s.kv.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return platform.Checkpoint{Name: name}, nil
	}
	if err != nil {
		return platform.Checkpoint{}, storeErr(err, "load checkpoint: get key %q in bucket %q", name, s.bucket)
	}
	pos, err := strconv.ParseUint(string(entry.Value()), 10, 64)
	if err != nil {
		return platform.Checkpoint{}, platform.Errorf(platform.CodeCorruptEvent,
			"kvsnapshot: checkpoint key %q in bucket %q, revision %d, is not a decimal position: %w", name, s.bucket, entry.Revision(), err)
	}
	return platform.Checkpoint{Name: name, Position: pos, Revision: entry.Revision()}, nil
}

// SaveCheckpoint stores cp.Position if the checkpoint is still at
// cp.Revision (0: not stored yet) and returns it with its new revision.
func (s *CheckpointStore) SaveCheckpoint(ctx context.Context, cp platform.Checkpoint) (platform.Checkpoint, error) {
	if err := validateName(cp.Name); err != nil {
		return platform.Checkpoint{}, err
	}
	value := []byte(strconv.FormatUint(cp.Position, 10))
	var rev uint64
	var err error
	if cp.Revision == 0 {
		rev, err = s.kv.Create(ctx, cp.Name, value)
	} else {
		rev, err = s.kv.Update(ctx, cp.Name, value, cp.Revision)
	}
	if isConflict(err) {
		// Only to name the current revision in the message; the conflict
		// stands whatever this read returns.
		actual := "unknown"
		if cur, getErr := s.kv.Get(ctx, cp.Name); getErr == nil {
			actual = strconv.FormatUint(cur.Revision(), 10)
		} else if errors.Is(getErr, jetstream.ErrKeyNotFound) {
			actual = "0 (not stored)"
		}
		return platform.Checkpoint{}, platform.Errorf(platform.CodeCheckpointConflict,
			"kvsnapshot: checkpoint %q in bucket %q is at revision %s, not %d: another instance moved it; reload it: %w",
			cp.Name, s.bucket, actual, cp.Revision, err)
	}
	if err != nil {
		return platform.Checkpoint{}, storeErr(err, "save checkpoint: write key %q in bucket %q at revision %d", cp.Name, s.bucket, cp.Revision)
	}
	cp.Revision = rev
	return cp, nil
}

// validateName adds to platform.ValidateCheckpointName what KV keys forbid:
// a '.' at either end or two in a row.
func validateName(name string) error {
	if err := platform.ValidateCheckpointName(name); err != nil {
		return err
	}
	if strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") || strings.Contains(name, "..") {
		return platform.Errorf(platform.CodeInvalidArgument,
			"checkpoint name %q: a '.' must not start or end it or follow another '.'", name)
	}
	return nil
}
