package encryption

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/lexigram/events/platform"
)

// ForgottenEventType is the registered name of SubjectForgotten.
const ForgottenEventType = "lexigram.subject-forgotten"

// ForgottenAggregateType is the aggregate type of the streams Forget
// appends SubjectForgotten to: one stream per forgotten key, its ID the
// key ID.
const ForgottenAggregateType = "lexigram-forgotten"

// SubjectForgotten is appended by Forget once a data subject's key is
// gone, so that projections can drop what they built from its events
// (rows, search entries, caches). It is never sealed.
type SubjectForgotten struct {
	Subject string // as Forget was given it; an aggregate's is "aggregate:<type>:<id>"
	KeyID   string
	At      time.Time
}

// registerForgotten registers SubjectForgotten in reg unless it is.
func registerForgotten(reg *platform.Registry) error {
	if _, err := reg.TypeOf(SubjectForgotten{}); err == nil {
		return nil
	}
	if err := platform.Register[SubjectForgotten](reg, ForgottenEventType, 1); err != nil {
		if _, again := reg.TypeOf(SubjectForgotten{}); again == nil {
			return nil // registered concurrently
		}
		return err
	}
	return nil
}

// ForgetAggregate forgets the data subject of an aggregate's own key:
// Forget(ctx, AggregateSubject(stream)).
func (k *Keyring) ForgetAggregate(ctx context.Context, stream platform.StreamID) error {
	if err := stream.Validate(); err != nil {
		return err
	}
	return k.Forget(ctx, AggregateSubject(stream))
}

// Forget shreds a data subject: its data key is replaced by a tombstone
// in the bucket, so that every event sealed with it reads from
// then on with placeholders and Envelope.Shredded, in every process (each
// drops the key from its cache as the bucket's watch tells it), and no
// event of the subject is sealed again. Then SubjectForgotten is appended
// to Options.Events, if set. Forgetting a subject again, or one that never
// had a key, is not an error; a failed Forget may be retried.
func (k *Keyring) Forget(ctx context.Context, subject string) error {
	if subject == "" {
		return platform.Errorf(platform.CodeInvalidArgument, "encryption: forget: the subject is empty: name it as the events do (or use ForgetAggregate)")
	}
	id := KeyID(subject)
	key := dataPrefix + id
	tomb, err := msgpack.Marshal(&keyRecord{Forgotten: time.Now().UTC()})
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		entry, err := k.kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			_, err = k.kv.Create(ctx, key, tomb)
			if errors.Is(err, jetstream.ErrKeyExists) && attempt < 8 {
				continue // a key was made meanwhile: erase it too
			}
		case err != nil:
		default:
			var rec keyRecord
			if msgpack.Unmarshal(entry.Value(), &rec) == nil && !rec.Forgotten.IsZero() {
				break // forgotten already
			}
			// The bucket keeps one revision per key, so the tombstone
			// replaces the wrapped key (docs/encryption.md says what may
			// remain on disk, and how master-key rotation ends it).
			_, err = k.kv.Update(ctx, key, tomb, entry.Revision())
			if isConflict(err) && attempt < 8 {
				continue // changed meanwhile (a Rewrap): read it again
			}
		}
		if err != nil {
			return storeErr(err, "forget %q: store the tombstone of data key %q in bucket %q", subject, id, k.opts.Bucket)
		}
		break
	}
	k.mu.Lock()
	if dk := k.byID[id]; dk != nil {
		dk.gone.Store(true)
		delete(k.byID, id)
	}
	k.mu.Unlock()
	return k.announce(ctx, subject, id)
}

// announce appends SubjectForgotten, once per key.
func (k *Keyring) announce(ctx context.Context, subject, id string) error {
	if k.opts.Events == nil {
		return nil
	}
	stream := platform.StreamID{Type: ForgottenAggregateType, ID: id}
	_, err := k.opts.Events.Append(ctx, stream, platform.NoStream(), []platform.Envelope{{
		Event: SubjectForgotten{Subject: subject, KeyID: id, At: time.Now().UTC()},
	}})
	if errors.Is(err, platform.ErrConcurrency) {
		return nil // announced by an earlier Forget
	}
	if err != nil {
		return platform.Errorf(platform.CodeOf(err), "encryption: forget %q: the key is erased; appending %s failed (run Forget again to append it): %w", subject, ForgottenEventType, err)
	}
	return nil
}

// isConflict reports a KV compare-and-set that lost.
func isConflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists)
}
