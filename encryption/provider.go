package encryption

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/lexigram/events/platform"
)

// KeyProvider holds the master keys that wrap data keys. It is small on
// purpose: a KMS or Vault transit engine implements it with its
// encrypt/decrypt calls, and the master key never has to leave it.
type KeyProvider interface {
	// KeyID names the master key Wrap uses: the current one. New data
	// keys are wrapped with it; Rewrap moves older ones to it.
	KeyID() string
	// Wrap encrypts a data key with the current master key.
	Wrap(ctx context.Context, dataKey []byte) ([]byte, error)
	// Unwrap decrypts a data key wrapped by the master key named keyID,
	// the current one or an older one the provider still holds. A key it
	// lacks is ErrUnknownMasterKey; wrapped bytes it cannot open are
	// ErrWrongMasterKey.
	Unwrap(ctx context.Context, keyID string, wrapped []byte) ([]byte, error)
}

// Errors of key providers, matched with errors.Is.
var (
	ErrUnknownMasterKey = errors.New("the key provider has no master key of that ID")
	ErrWrongMasterKey   = errors.New("the master key does not open what was wrapped: it is not the key that wrapped it")
)

// MasterKeySize is the size of a master key: AES-256.
const MasterKeySize = 32

// StaticKeys is a KeyProvider holding master keys in process memory:
// what FileKeys and EnvKeys read. Wrapping is AES-256-GCM with a random
// nonce, the master key's ID as additional data.
type StaticKeys struct {
	current string
	ids     []string // in the order given, the current one first
	aeads   map[string]cipher.AEAD
}

// NewStaticKeys returns a provider of keys (ID → 32 bytes) whose current
// key is current.
func NewStaticKeys(current string, keys map[string][]byte) (*StaticKeys, error) {
	p := &StaticKeys{current: current, aeads: map[string]cipher.AEAD{}}
	ids := make([]string, 0, len(keys))
	for id := range keys {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	p.ids = append([]string{current}, slices.DeleteFunc(ids, func(id string) bool { return id == current })...)
	for id, key := range keys {
		if err := validMasterKeyID(id); err != nil {
			return nil, err
		}
		if len(key) != MasterKeySize {
			return nil, platform.Errorf(platform.CodeInvalidArgument, "master key %q is %d bytes: use %d random bytes (head -c 32 /dev/urandom | base64)", id, len(key), MasterKeySize)
		}
		aead, err := newAEAD(key)
		if err != nil {
			return nil, err
		}
		p.aeads[id] = aead
	}
	if _, ok := p.aeads[current]; !ok {
		return nil, platform.Errorf(platform.CodeInvalidArgument, "current master key %q is not among the keys given: give its key material", current)
	}
	return p, nil
}

// KeyID is the current master key's ID.
func (p *StaticKeys) KeyID() string { return p.current }

// KeyIDs are the IDs of every master key held, the current one first.
func (p *StaticKeys) KeyIDs() []string { return slices.Clone(p.ids) }

// Wrap encrypts dataKey with the current master key.
func (p *StaticKeys) Wrap(_ context.Context, dataKey []byte) ([]byte, error) {
	return p.aeads[p.current].Seal(nil, nil, dataKey, []byte(p.current)), nil
}

// Unwrap decrypts a data key wrapped by master key keyID.
func (p *StaticKeys) Unwrap(_ context.Context, keyID string, wrapped []byte) ([]byte, error) {
	aead, ok := p.aeads[keyID]
	if !ok {
		return nil, fmt.Errorf("master key %q (the provider holds %s): %w", keyID, strings.Join(p.ids, ", "), ErrUnknownMasterKey)
	}
	key, err := aead.Open(nil, nil, wrapped, []byte(keyID))
	if err != nil {
		return nil, fmt.Errorf("master key %q: %w", keyID, ErrWrongMasterKey)
	}
	return key, nil
}

// EnvVar is the environment variable EnvKeys reads by default.
const EnvVar = "LEXIGRAM_MASTER_KEYS"

// EnvKeys reads master keys from an environment variable ("" means
// EnvVar): "id:base64key", several separated by commas, the current one
// first. Keep older keys after it until Rewrap has moved every data key
// off them.
func EnvKeys(name string) (*StaticKeys, error) {
	if name == "" {
		name = EnvVar
	}
	v, ok := os.LookupEnv(name)
	if !ok || strings.TrimSpace(v) == "" {
		return nil, platform.Errorf(platform.CodeInvalidArgument, "environment variable %s is not set: set it to id:base64key (32 random bytes: head -c 32 /dev/urandom | base64)", name)
	}
	return parseKeys("environment variable "+name, strings.Split(v, ","))
}

// FileKeys reads master keys from a file: one "id:base64key" a line, the
// current one first; blank lines and lines starting with # are skipped.
// Keep older keys after the current one until Rewrap has moved every data
// key off them.
func FileKeys(path string) (*StaticKeys, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, platform.Errorf(platform.CodeInvalidArgument, "read the master key file: %w: point the key file setting at a file of id:base64key lines", err)
	}
	return parseKeys("master key file "+path, strings.Split(string(b), "\n"))
}

func parseKeys(where string, lines []string) (*StaticKeys, error) {
	keys := map[string][]byte{}
	var current string
	for n, line := range lines {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, enc, ok := strings.Cut(line, ":")
		if !ok {
			return nil, platform.Errorf(platform.CodeInvalidArgument, "%s, entry %d: no ':' between the key ID and the key: write id:base64key", where, n+1)
		}
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(enc))
		if err != nil {
			return nil, platform.Errorf(platform.CodeInvalidArgument, "%s, key %q: not base64: %w: write 32 random bytes in base64 (head -c 32 /dev/urandom | base64)", where, id, err)
		}
		if _, dup := keys[id]; dup {
			return nil, platform.Errorf(platform.CodeInvalidArgument, "%s: key %q is given twice: give each master key once", where, id)
		}
		keys[id] = key
		if current == "" {
			current = id
		}
	}
	if current == "" {
		return nil, platform.Errorf(platform.CodeInvalidArgument, "%s holds no key: write id:base64key (32 random bytes: head -c 32 /dev/urandom | base64)", where)
	}
	p, err := NewStaticKeys(current, keys)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return p, nil
}

// validMasterKeyID keeps master key IDs usable in KV keys and headers.
func validMasterKeyID(id string) error {
	if id == "" || len(id) > 64 {
		return platform.Errorf(platform.CodeInvalidArgument, "master key ID %q: use 1 to 64 letters, digits, '-' or '_'", id)
	}
	for _, c := range []byte(id) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return platform.Errorf(platform.CodeInvalidArgument, "master key ID %q has %q: use letters, digits, '-' and '_'", id, c)
		}
	}
	return nil
}

// newAEAD is AES-256-GCM with a random nonce prepended to each sealed
// message.
func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCMWithRandomNonce(block)
}
