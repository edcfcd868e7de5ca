package platform

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"iter"
	"strconv"
)

// The hash chain
//
// Every event a store writes carries the hash of its aggregate's previous
// event (in the JetStream store, the Lx-Prev header), so each aggregate's
// history is a chain: a lost, forged or changed event breaks it where it
// happened. The first event of an aggregate carries the empty string.
//
// Specification, version 1, for implementations that verify a chain:
//
//	ChainHash(e) = base64url, without padding, of the first 16 bytes of
//	    SHA-256( "lexigram-chain-1" 0x00
//	             prev    0x00    // e's own previous-hash as stored ("" if it has none)
//	             id      0x00    // e's event ID (Lx-Id)
//	             type    0x00    // e's event type name (Lx-Type)
//	             schema  0x00    // e's schema version, decimal (Lx-Schema)
//	             version 0x00    // e's aggregate version, decimal (Lx-Version)
//	             body )          // e's body as stored (encoded by its codec)
//
// and the event after e in its aggregate carries ChainHash(e) as its
// previous-hash. Decimal numbers have no sign and no leading zeros. IDs
// and type names are printable text (Prepare checks), so 0x00 cannot
// occur inside a field. The hash is 22 characters.
//
// An event stored before the chain existed has no previous-hash at all
// (which differs from an empty one); it hashes with prev "", so the first
// event written after it chains to it. A chain therefore starts at the
// first event that carries a previous-hash: the unchained events before
// it are old history, not corruption.
//
// What the chain does not cover: the newest event of an aggregate has no
// successor yet, so a change to it shows only once another event is
// appended after it (from a hash the writer remembered or read); and the
// metadata, correlation and causation headers, and the codec name.
const chainTag = "lexigram-chain-1"

// ChainHashLen is the length of a ChainHash.
const ChainHashLen = 22

// ChainHash is the hash of a stored event that the next event of its
// aggregate carries as its previous-hash (see the specification above).
func ChainHash(prev, id, eventType string, schema int, version uint64, body []byte) string {
	var sum [sha256.Size]byte
	var small [1024]byte // on the stack: most events fit
	if n := len(chainTag) + len(prev) + len(id) + len(eventType) + 2*20 + 6 + len(body); n <= len(small) {
		sum = sha256.Sum256(chainInput(small[:0], prev, id, eventType, schema, version, body))
	} else {
		sum = sha256.Sum256(chainInput(make([]byte, 0, n), prev, id, eventType, schema, version, body))
	}
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

func chainInput(b []byte, prev, id, eventType string, schema int, version uint64, body []byte) []byte {
	b = append(b, chainTag...)
	b = append(b, 0)
	b = append(b, prev...)
	b = append(b, 0)
	b = append(b, id...)
	b = append(b, 0)
	b = append(b, eventType...)
	b = append(b, 0)
	b = strconv.AppendInt(b, int64(schema), 10)
	b = append(b, 0)
	b = strconv.AppendUint(b, version, 10)
	b = append(b, 0)
	return append(b, body...)
}

// StoredEvent is an event as the chain sees it: its identity, its
// previous-hash and its body exactly as stored.
type StoredEvent struct {
	Position      uint64
	Version       uint64
	ID            string
	Type          string
	SchemaVersion int
	// Prev is the previous-hash the event carries; Chained is false for an
	// event stored without one (before the chain existed).
	Prev    string
	Chained bool
	Body    []byte
}

// Hash is the event's ChainHash: what the next event must carry as Prev.
func (e *StoredEvent) Hash() string {
	return ChainHash(e.Prev, e.ID, e.Type, e.SchemaVersion, e.Version, e.Body)
}

// ChainReader is implemented by stores that keep the hash chain: it
// yields an aggregate's stored events, in version order, as the chain
// sees them, for verification (platform/storetest, audits).
type ChainReader interface {
	ReadChain(ctx context.Context, stream StreamID) iter.Seq2[StoredEvent, error]
}
