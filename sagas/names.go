package sagas

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/lexigram/events/platform"
)

// The limits on an instance's names. Types and IDs are subject tokens,
// and NATS closes the connection of a client whose subject outgrows its
// protocol line (4096 bytes by default); keys go into PostgreSQL indexes
// and every record, so the names are bounded. Every store applies these
// rules (CheckNew and the others below), so that a saga that runs on one
// store runs on the others.
const (
	maxStoredTypeLen = 64
	maxStoredIDLen   = 256
	maxStoredKeyLen  = 512
)

// CheckID checks an instance ID: the KV key "i.<id>" takes it as it is.
func CheckID(id string) error {
	if problem := tokenProblem(id, maxStoredIDLen); problem != "" {
		return platform.Errorf(platform.CodeInvalidArgument,
			"sagas: saga instance ID %q %s: use 1 to %d letters, digits, '-' and '_'", id, problem, maxStoredIDLen)
	}
	return nil
}

// CheckType checks a saga type name: it is a subject token of the work
// stream and a metric label.
func CheckType(sagaType string) error {
	if problem := tokenProblem(sagaType, maxStoredTypeLen); problem != "" {
		return platform.Errorf(platform.CodeInvalidArgument,
			"sagas: saga type %q %s: use 1 to %d letters, digits, '-' and '_'", sagaType, problem, maxStoredTypeLen)
	}
	return nil
}

// CheckKey checks an association key. Any text will do, but not NUL
// bytes or invalid UTF-8: PostgreSQL text holds neither, and JSON would
// replace invalid UTF-8, so the key would not come back as given.
func CheckKey(sagaType, key string) error {
	var problem string
	switch {
	case key == "":
		problem = "is empty: every instance needs one; use its ID when nothing else finds it"
	case len(key) > maxStoredKeyLen:
		problem = fmt.Sprintf("is %d bytes: use at most %d", len(key), maxStoredKeyLen)
	case !utf8.ValidString(key):
		problem = "is not valid UTF-8: use text"
	case strings.IndexByte(key, 0) >= 0:
		problem = "has a NUL byte: leave it out"
	default:
		return nil
	}
	return platform.Errorf(platform.CodeInvalidArgument, "sagas: association key %q of saga type %q %s", key, sagaType, problem)
}

// InstanceID is the ID of the instance of a saga type with an
// association key: 26 letters and digits of a SHA-256 of the two, the
// same in every process and store. A type has one instance per key, so
// the ID needs no index to be found from the key, and a store makes sure
// a key has one instance by creating its ID once.
func InstanceID(sagaType, key string) string {
	h := sha256.New()
	h.Write([]byte(sagaType))
	h.Write([]byte{0}) // neither a type nor a key holds a NUL
	h.Write([]byte(key))
	return instanceIDEncoding.EncodeToString(h.Sum(nil)[:16])
}

var instanceIDEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// CheckNew checks the names of an instance to create, and that its ID
// is InstanceID(in.Type, in.Key).
func CheckNew(in Instance) error {
	if err := CheckType(in.Type); err != nil {
		return err
	}
	if err := CheckID(in.ID); err != nil {
		return err
	}
	if err := CheckKey(in.Type, in.Key); err != nil {
		return err
	}
	if want := InstanceID(in.Type, in.Key); in.ID != want {
		return platform.Errorf(platform.CodeInvalidArgument,
			"sagas: saga instance ID %q is not the ID of type %q and key %q: set it to sagas.InstanceID(type, key), %q", in.ID, in.Type, in.Key, want)
	}
	return nil
}

// validateStoredQuery checks what List cannot take.
func validateStoredQuery(q Query) error {
	if q.Limit < 0 {
		return platform.Errorf(platform.CodeInvalidArgument, "sagas: list saga instances: limit %d is negative: use 0 for all", q.Limit)
	}
	return nil
}

// tokenProblem says what keeps s from being a token of at most limit
// bytes, or "" when nothing does.
func tokenProblem(s string, limit int) string {
	if s == "" {
		return "is empty"
	}
	if len(s) > limit {
		return fmt.Sprintf("is %d bytes", len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return fmt.Sprintf("has %q at byte %d", c, i)
		}
	}
	return ""
}

// listMatches reports whether in, as List would return it, matches q's
// type and states; After and Limit are the caller's.
func listMatches(q Query, in Instance) bool {
	if q.Type != "" && in.Type != q.Type {
		return false
	}
	return len(q.States) == 0 || slices.Contains(q.States, in.State)
}

// page reads the instances of ids, sorted and all after q.After, in that
// order, until q.Limit of them match q. read's false skips an ID (its
// record went since the IDs were listed).
func page(q Query, ids []string, read func(id string) (Instance, bool, error)) ([]Instance, error) {
	var out []Instance
	for _, id := range ids {
		in, ok, err := read(id)
		if err != nil {
			return nil, err
		}
		if !ok || !listMatches(q, in) {
			continue
		}
		out = append(out, in)
		if len(out) == q.Limit {
			break
		}
	}
	return out, nil
}
