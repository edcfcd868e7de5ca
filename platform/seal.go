package platform

import (
	"context"
	"errors"
)

// Sealer encrypts event bodies before a store writes them and opens them
// when a store reads them; package encryption provides one. Set it on the
// registry (Registry.SetSealer) that the stores read and write with: every
// append and every read of every store on that registry goes through it,
// and no store changes otherwise.
type Sealer interface {
	// Seal returns the body to store for event, a value of et's Go type
	// bound for stream, encoded with c, and the ID of the data key it is
	// sealed with, which the store keeps beside the body (Envelope.KeyID).
	// keyID "" means the body is stored as c encodes it: nothing in the
	// event needs sealing.
	Seal(ctx context.Context, stream StreamID, et *EventType, c Codec, event any) (body []byte, keyID string, err error)
	// Open returns the event that body, stored by Seal under keyID, holds:
	// a value of et's Go type (EventType.Decode decodes one). If the key
	// is gone for good (the data subject was forgotten), it returns the
	// event with its sealed parts replaced by placeholders and shredded
	// true, never an error. An error with CodeStoreUnavailable means the
	// key could not be fetched now and the read should be retried; any
	// other error means this event cannot be opened.
	Open(ctx context.Context, stream StreamID, et *EventType, c Codec, keyID string, body []byte) (event any, shredded bool, err error)
}

// sealerBox lets an atomic pointer hold the interface.
type sealerBox struct{ s Sealer }

// SetSealer makes every append seal event bodies with s and every read
// open them; nil turns sealing off (sealed events then fail to read with
// CodeConfigConflict). Set it at start-up, before the stores run.
func (r *Registry) SetSealer(s Sealer) {
	if s == nil {
		r.sealer.Store(nil)
		return
	}
	r.sealer.Store(&sealerBox{s})
}

// Sealer is the registry's sealer, or nil.
func (r *Registry) Sealer() Sealer {
	if b := r.sealer.Load(); b != nil {
		return b.s
	}
	return nil
}

// Decode decodes data, encoded with c, as a value of this version's Go
// type, without upcasting: for sealers, which decode the bodies they open.
func (et *EventType) Decode(c Codec, data []byte) (any, error) { return et.decode(c, data) }

// encode is one event's stored body: sealed if the registry has a sealer.
func (r *Registry) encode(ctx context.Context, stream StreamID, et *EventType, c Codec, event any) ([]byte, string, error) {
	if b := r.sealer.Load(); b != nil {
		body, keyID, err := b.s.Seal(ctx, stream, et, c, event)
		if err == nil && keyID != "" {
			err = checkHeaderText("data key ID", keyID) // it travels in a header
		}
		return body, keyID, err
	}
	body, err := c.Marshal(event)
	return body, "", err
}

// open decodes a stored body sealed under e.KeyID, setting e.Shredded.
// A failure to open is a *DecodeError, except a key that cannot be
// fetched now (CodeStoreUnavailable) and a process without a sealer
// (CodeConfigConflict): readers stop on those instead of skipping the
// event.
func (r *Registry) open(ctx context.Context, et *EventType, c Codec, e *Envelope, data []byte) (any, error) {
	b := r.sealer.Load()
	if b == nil {
		return nil, Errorf(CodeConfigConflict, "event at position %d (%s version %d, type %q) is encrypted with data key %q, and this process reads without encryption: open the key ring with the master key (encryption.Open) and set it on the registry (Registry.SetSealer)",
			e.Position, e.Stream, e.Version, e.Type, e.KeyID)
	}
	v, shredded, err := b.s.Open(ctx, e.Stream, et, c, e.KeyID, data)
	if err != nil {
		if errors.Is(err, ErrStoreUnavailable) || errors.Is(err, ErrConfigConflict) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return nil, err
		}
		return nil, e.decodeError(Errorf(CodeCorruptEvent, "open %q version %d sealed with data key %q: %w", e.Type, e.SchemaVersion, e.KeyID, err))
	}
	e.Shredded = shredded
	return v, nil
}
