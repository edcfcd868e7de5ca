package encryption

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"

	"github.com/lexigram/events/platform"
)

// A sealed body: the byte 0xC1, which msgpack never writes and no JSON
// text starts with, so no codec mistakes it for an event; the format
// version; the mode; for ModeFields the event with its personal fields
// zeroed, as the codec encodes it, after its length (uvarint); then the
// sealed part: a random 96-bit nonce, the AES-256-GCM ciphertext and its
// tag. The sealed part of ModeFields holds the personal fields, and
// authenticates the readable part too.
const (
	sealMagic   = 0xC1
	sealVersion = 1
	sealWhole   = 'W'
	sealFields  = 'F'
)

// aadWhole is the additional data of a whole-body seal.
var aadWhole = []byte("lexigram sealed event v1")

// Seal encodes event with c and seals it with its data subject's key,
// creating the key on the subject's first event (platform.Sealer).
func (k *Keyring) Seal(ctx context.Context, stream platform.StreamID, et *platform.EventType, c platform.Codec, event any) ([]byte, string, error) {
	p := k.planOf(et)
	if p.err != nil {
		return nil, "", platform.Errorf(platform.CodeInvalidArgument, "encryption: event %s: %w", et, p.err)
	}
	if p.mode == ModeNone {
		body, err := c.Marshal(event)
		return body, "", err
	}
	subject := p.subjectOf(event)
	dk, err := k.sealKey(ctx, stream, subject)
	if err != nil {
		return nil, "", err
	}
	if dk.forgotten() {
		if subject == "" {
			subject = AggregateSubject(stream)
		}
		return nil, "", platform.Errorf(platform.CodeInvalidArgument,
			"encryption: data subject %q (key %s) is forgotten: nothing of it is stored again; name another subject, or start a new aggregate", subject, dk.id)
	}
	if p.mode == ModeWhole {
		body, err := c.Marshal(event)
		if err != nil {
			return nil, "", err
		}
		out := make([]byte, 3, 3+len(body)+dk.aead.Overhead())
		out[0], out[1], out[2] = sealMagic, sealVersion, sealWhole
		return dk.aead.Seal(out, nil, body, aadWhole), dk.id, nil
	}
	public, secret := p.split(event)
	plain, err := c.Marshal(public)
	if err != nil {
		return nil, "", err
	}
	hidden, err := c.Marshal(secret)
	if err != nil {
		return nil, "", err
	}
	out := make([]byte, 3, 3+binary.MaxVarintLen64+len(plain)+len(hidden)+dk.aead.Overhead())
	out[0], out[1], out[2] = sealMagic, sealVersion, sealFields
	out = binary.AppendUvarint(out, uint64(len(plain)))
	out = append(out, plain...)
	return dk.aead.Seal(out, nil, hidden, plain), dk.id, nil
}

// errNotSealed is a body Open cannot parse.
var errNotSealed = errors.New("the body is not in the sealed format")

// Open opens a body Seal sealed with data key keyID and decodes it as
// et's Go type. A forgotten key gives the event with placeholders and
// shredded true: personal fields read as Placeholder (strings) or zero,
// a whole-sealed event as its type's zero value (platform.Sealer).
func (k *Keyring) Open(ctx context.Context, stream platform.StreamID, et *platform.EventType, c platform.Codec, keyID string, body []byte) (any, bool, error) {
	if len(body) < 3 || body[0] != sealMagic {
		return nil, false, errNotSealed
	}
	if body[1] != sealVersion {
		return nil, false, fmt.Errorf("sealed format version %d is newer than this build's %d: upgrade", body[1], sealVersion)
	}
	dk, err := k.key(ctx, keyID, false)
	if err != nil {
		return nil, false, err
	}
	switch body[2] {
	case sealWhole:
		if dk.forgotten() {
			return reflect.Zero(et.GoType()).Interface(), true, nil
		}
		plain, err := dk.aead.Open(nil, nil, body[3:], aadWhole)
		if err != nil {
			return nil, false, fmt.Errorf("the body does not open with data key %s: it was altered or belongs to another key: %w", keyID, err)
		}
		v, err := et.Decode(c, plain)
		return v, false, err
	case sealFields:
		n, size := binary.Uvarint(body[3:])
		if size <= 0 || n > uint64(len(body)-3-size) {
			return nil, false, errNotSealed
		}
		plain := body[3+size : 3+size+int(n)]
		p := k.planOf(et)
		if p.secret == nil {
			return nil, false, fmt.Errorf("%v has no field tagged personal now, and the event was stored with some sealed: keep the tags on every stored version", et.GoType())
		}
		// Both parts decode onto one value: the sealed part encodes the
		// personal fields by name, so decoding it sets those and leaves
		// the others (msgpack and JSON both work that way).
		v := reflect.New(p.goType)
		if err := c.Unmarshal(plain, v.Interface()); err != nil {
			return nil, false, fmt.Errorf("decode the readable part with %s: %w", c.Name(), err)
		}
		if dk.forgotten() {
			p.placeholders(v.Elem())
			return v.Elem().Interface(), true, nil
		}
		hidden, err := dk.aead.Open(nil, nil, body[3+size+int(n):], plain)
		if err != nil {
			return nil, false, fmt.Errorf("the personal fields do not open with data key %s: the event was altered or belongs to another key: %w", keyID, err)
		}
		if err := c.Unmarshal(hidden, v.Interface()); err != nil {
			return nil, false, fmt.Errorf("decode the personal fields with %s: %w", c.Name(), err)
		}
		return v.Elem().Interface(), false, nil
	}
	return nil, false, fmt.Errorf("sealed mode %q is unknown to this build: upgrade", body[2])
}
