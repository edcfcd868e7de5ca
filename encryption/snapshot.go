package encryption

import (
	"context"

	"github.com/lexigram/events/platform"
)

// A sealed snapshot state: the byte 0xC1, the format version, 'S', then
// nonce, ciphertext and tag under the aggregate's own data key.
const sealSnapshot = 'S'

var aadSnapshot = []byte("lexigram sealed snapshot v1")

// SealSnapshot seals an aggregate's encoded snapshot state with the
// aggregate's own data key (kvsnapshot.SnapshotOptions.Sealer). An
// aggregate whose key is forgotten gets no snapshot: the error says so.
func (k *Keyring) SealSnapshot(ctx context.Context, stream platform.StreamID, state []byte) ([]byte, string, error) {
	dk, err := k.sealKey(ctx, stream, "")
	if err != nil {
		return nil, "", err
	}
	if dk.forgotten() {
		return nil, "", platform.Errorf(platform.CodeInvalidArgument, "encryption: snapshot %s: its data key %s is forgotten: nothing of it is stored again", stream, dk.id)
	}
	out := make([]byte, 3, 3+len(state)+dk.aead.Overhead())
	out[0], out[1], out[2] = sealMagic, sealVersion, sealSnapshot
	return dk.aead.Seal(out, nil, state, aadSnapshot), dk.id, nil
}

// OpenSnapshot opens a state SealSnapshot sealed with key keyID. A
// forgotten key gives shredded true and no state: the snapshot store
// then reports no snapshot, and the repository replays the aggregate's
// events, which read with placeholders.
func (k *Keyring) OpenSnapshot(ctx context.Context, stream platform.StreamID, keyID string, sealed []byte) ([]byte, bool, error) {
	if len(sealed) < 3 || sealed[0] != sealMagic || sealed[2] != sealSnapshot {
		return nil, false, platform.Errorf(platform.CodeCorruptEvent, "encryption: snapshot %s: %v", stream, errNotSealed)
	}
	if sealed[1] != sealVersion {
		return nil, false, platform.Errorf(platform.CodeCorruptEvent, "encryption: snapshot %s: sealed format version %d is newer than this build's %d: upgrade", stream, sealed[1], sealVersion)
	}
	dk, err := k.key(ctx, keyID, false)
	if err != nil {
		return nil, false, err
	}
	if dk.forgotten() {
		return nil, true, nil
	}
	state, err := dk.aead.Open(nil, nil, sealed[3:], aadSnapshot)
	if err != nil {
		return nil, false, platform.Errorf(platform.CodeCorruptEvent, "encryption: snapshot %s does not open with data key %s: it was altered or belongs to another key: %v", stream, keyID, err)
	}
	return state, false, nil
}
