package encryption

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/lexigram/events/platform"
)

// RewrapProgress is how far a Rewrap is.
type RewrapProgress struct {
	Total     int // data keys in the bucket when it started
	Done      int // looked at so far
	Rewrapped int // moved to the current master key
	Forgotten int // tombstones, left alone
	// Retired names the master keys no data key is wrapped by any more:
	// their key checks are removed once the pass ends, and the provider
	// may drop them.
	Retired []string
}

// progressEvery is how many keys a Rewrap goes through between progress
// reports, besides one a second and one at the end.
const progressEvery = 1000

// Rewrap wraps every data key not wrapped by the provider's current
// master key anew with it, in place, with compare-and-set: no event is
// rewritten, and a key that changes meanwhile (a Forget, another Rewrap)
// is read again. progress, if not nil, is called as it goes and at the
// end. Once no data key is wrapped by an older master key, that key's key
// check is removed, and it can go from the key file.
//
// Give every process the new master key as the current one first: a
// process still on the old one would keep wrapping new data keys with it.
func (k *Keyring) Rewrap(ctx context.Context, progress func(RewrapProgress)) (RewrapProgress, error) {
	var p RewrapProgress
	keys, err := k.listKeys(ctx, dataPrefix)
	if err != nil {
		return p, err
	}
	p.Total = len(keys)
	current := k.provider.KeyID()
	stillUsed := map[string]bool{}
	last := time.Now()
	report := func(force bool) {
		if progress != nil && (force || p.Done%progressEvery == 0 || time.Since(last) >= time.Second) {
			last = time.Now()
			progress(p)
		}
	}
	for _, key := range keys {
		master, rewrapped, forgotten, err := k.rewrapOne(ctx, key, current)
		if err != nil {
			report(true)
			return p, err
		}
		p.Done++
		switch {
		case forgotten:
			p.Forgotten++
		case rewrapped:
			p.Rewrapped++
		case master != "":
			stillUsed[master] = true
		}
		report(false)
	}
	checks, err := k.listKeys(ctx, checkPrefix)
	if err != nil {
		return p, err
	}
	for _, c := range checks {
		id := strings.TrimPrefix(c, checkPrefix)
		if id == current || stillUsed[id] {
			continue
		}
		if err := k.kv.Purge(ctx, c); err != nil {
			return p, storeErr(err, "rewrap: remove the key check of master key %q from bucket %q", id, k.opts.Bucket)
		}
		p.Retired = append(p.Retired, id)
	}
	report(true)
	return p, nil
}

// rewrapOne moves one data key to master key current. It returns the
// master key it is wrapped by if it was not moved.
func (k *Keyring) rewrapOne(ctx context.Context, key, current string) (master string, rewrapped, forgotten bool, err error) {
	for attempt := 0; ; attempt++ {
		entry, err := k.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return "", false, false, nil
		}
		if err != nil {
			return "", false, false, storeErr(err, "rewrap: read %q in bucket %q", key, k.opts.Bucket)
		}
		var rec keyRecord
		if err := msgpack.Unmarshal(entry.Value(), &rec); err != nil {
			return "", false, false, platform.Errorf(platform.CodeConfigConflict, "encryption: rewrap: %q in bucket %q does not decode: %w: restore the bucket from a backup", key, k.opts.Bucket, err)
		}
		switch {
		case !rec.Forgotten.IsZero():
			return "", false, true, nil
		case rec.Master == current:
			return current, false, false, nil
		}
		plain, err := k.provider.Unwrap(ctx, rec.Master, rec.Wrapped)
		if err != nil {
			return "", false, false, platform.Errorf(platform.CodeConfigConflict, "encryption: rewrap: unwrap %q with master key %q: %w: keep the old master key in the provider, after the current one, until Rewrap is done", key, rec.Master, err)
		}
		rec.Wrapped, err = k.provider.Wrap(ctx, plain)
		clear(plain)
		if err != nil {
			return "", false, false, platform.Errorf(platform.CodeStoreUnavailable, "encryption: rewrap: wrap %q with master key %q: %w", key, current, err)
		}
		rec.Master = current
		value, err := msgpack.Marshal(&rec)
		if err != nil {
			return "", false, false, err
		}
		_, err = k.kv.Update(ctx, key, value, entry.Revision())
		if err == nil {
			return "", true, false, nil
		}
		if !isConflict(err) || attempt >= 8 {
			return "", false, false, storeErr(err, "rewrap: update %q in bucket %q at revision %d", key, k.opts.Bucket, entry.Revision())
		}
	}
}
