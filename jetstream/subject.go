package jetstream

import (
	"fmt"
	"strings"

	"github.com/lexigram/events/platform"
)

// escapeByte starts an escape in a subject token. '=' is valid both in
// NATS subjects and in KV keys, so the same token serves the event
// subject and the snapshot key.
const escapeByte = '='

const hexDigits = "0123456789ABCDEF"

// EncodeToken maps an aggregate ID to exactly one subject token, reversibly.
// Letters, digits, '-' and '_' stay as they are; every other byte, '=' included,
// becomes '=' and two upper-case hex digits. So no ID can produce '.', '*', '>'
// or white space, and two IDs never share a token. The ID must be valid
// (platform.StreamID.Validate).
func EncodeToken(id string) string {
	n := 0
	for i := 0; i < len(id); i++ {
		if !plainByte(id[i]) {
			n++
		}
	}
	if n == 0 {
		return id
	}
	var b strings.Builder
	b.Grow(len(id) + 2*n)
	for i := 0; i < len(id); i++ {
		c := id[i]
		if plainByte(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte(escapeByte)
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&0xf])
	}
	return b.String()
}

// DecodeToken reverses EncodeToken. It accepts only tokens EncodeToken can
// produce, so each ID has one token and each token one ID.
func DecodeToken(token string) (string, error) {
	if strings.IndexByte(token, escapeByte) < 0 {
		for i := 0; i < len(token); i++ {
			if !plainByte(token[i]) {
				return "", fmt.Errorf("subject token %q: byte %q is neither plain nor escaped", token, token[i])
			}
		}
		if token == "" {
			return "", fmt.Errorf("subject token is empty")
		}
		return token, nil
	}
	var b strings.Builder
	b.Grow(len(token))
	for i := 0; i < len(token); i++ {
		c := token[i]
		switch {
		case plainByte(c):
			b.WriteByte(c)
		case c == escapeByte && i+2 < len(token):
			hi, lo := strings.IndexByte(hexDigits, token[i+1]), strings.IndexByte(hexDigits, token[i+2])
			if hi < 0 || lo < 0 {
				return "", fmt.Errorf("subject token %q: bad escape at byte %d", token, i)
			}
			d := byte(hi<<4 | lo)
			if plainByte(d) {
				return "", fmt.Errorf("subject token %q: %q must not be escaped", token, d)
			}
			b.WriteByte(d)
			i += 2
		default:
			return "", fmt.Errorf("subject token %q: bad byte %q at %d", token, c, i)
		}
	}
	return b.String(), nil
}

func plainByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// subjectOf is the subject of one aggregate's events: <prefix>.<type>.<id token>.
func subjectOf(prefix string, s platform.StreamID) string {
	return prefix + "." + s.Type + "." + EncodeToken(s.ID)
}

// streamOf parses a subject made by subjectOf.
func streamOf(prefix, subject string) (platform.StreamID, error) {
	rest, ok := strings.CutPrefix(subject, prefix+".")
	typ, token, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 {
		return platform.StreamID{}, fmt.Errorf("subject %q is not <%s>.<aggregate type>.<aggregate id>", subject, prefix)
	}
	id, err := DecodeToken(token)
	if err != nil {
		return platform.StreamID{}, err
	}
	return platform.StreamID{Type: typ, ID: id}, nil
}
