package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"sync"
)

// Standard Webhooks headers.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

const secretPrefix = "whsec_"

// NewSecret returns a fresh endpoint secret: "whsec_" and the base64 of
// 32 random bytes.
func NewSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("webhook: read random bytes for a secret: %w", err)
	}
	return secretPrefix + base64.StdEncoding.EncodeToString(b), nil
}

// parseSecret decodes a "whsec_" secret to its key. Errors never repeat
// the secret.
func parseSecret(s string) ([]byte, error) {
	b64, ok := strings.CutPrefix(s, secretPrefix)
	if !ok {
		return nil, fmt.Errorf("it does not begin with %q: give \"whsec_\" and the base64 of 24 to 64 random bytes (webhook.NewSecret makes one)", secretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("the part after %q is not standard base64: give \"whsec_\" and the base64 of 24 to 64 random bytes", secretPrefix)
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("it holds %d bytes: Standard Webhooks secrets hold 24 to 64 (webhook.NewSecret makes one of 32)", len(key))
	}
	return key, nil
}

// signer signs with an endpoint's keys, reusing their HMAC states.
type signer struct {
	macs []*sync.Pool // of hash.Hash, one pool per key
}

func newSigner(keys [][]byte) *signer {
	s := &signer{}
	for _, k := range keys {
		s.macs = append(s.macs, &sync.Pool{New: func() any { return hmac.New(sha256.New, k) }})
	}
	return s
}

// sign returns the webhook-signature value for one request: one
// "v1,<base64 HMAC-SHA256 of id.timestamp.body>" per key, separated by
// spaces.
func (s *signer) sign(id string, ts int64, body []byte) string {
	var b strings.Builder
	var tsBuf [20]byte
	tsText := strconv.AppendInt(tsBuf[:0], ts, 10)
	var sum [sha256.Size]byte
	var enc [44]byte // base64 of 32 bytes
	for i, pool := range s.macs {
		mac := pool.Get().(hash.Hash)
		mac.Reset()
		mac.Write([]byte(id))
		mac.Write([]byte{'.'})
		mac.Write(tsText)
		mac.Write([]byte{'.'})
		mac.Write(body)
		sig := mac.Sum(sum[:0])
		pool.Put(mac)
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("v1,")
		base64.StdEncoding.Encode(enc[:], sig)
		b.Write(enc[:])
	}
	return b.String()
}
