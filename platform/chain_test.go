package platform_test

import (
	"bytes"
	"testing"

	"github.com/lexigram/events/platform"
)

// TestChainHashVectors pins the hash chain's specification
// (platform/chain.go) to values computed independently (Python's hashlib
// over the bytes the specification lists), so another implementation can
// check itself against the same.
func TestChainHashVectors(t *testing.T) {
	first := platform.ChainHash("", "01J0000000000000000000000A", "order.placed", 1, 1, []byte("\x81\xa8Customer\xa3ada"))
	second := platform.ChainHash(first, "01J0000000000000000000000B", "order.item-added", 2, 2, []byte("\x81\xa3SKU\xa4book"))
	large := platform.ChainHash("", "x", "t", 1, 1, bytes.Repeat([]byte("y"), 5000)) // beyond the stack buffer
	for _, c := range []struct{ got, want string }{
		{first, "rskJb0iF8anKaRvYLtqYeQ"}, {second, "8bb6h5FBHDLDBXINAb2vug"}, {large, "ugSlu4rfEiva9Ta9GD9DRw"},
	} {
		if c.got != c.want || len(c.got) != platform.ChainHashLen {
			t.Errorf("ChainHash = %q, want %q", c.got, c.want)
		}
	}
	// Every field counts.
	base := platform.StoredEvent{Version: 3, ID: "id", Type: "t", SchemaVersion: 1, Prev: first, Body: []byte("body")}
	for name, change := range map[string]func(e *platform.StoredEvent){
		"prev": func(e *platform.StoredEvent) { e.Prev = second }, "id": func(e *platform.StoredEvent) { e.ID = "iD" },
		"type": func(e *platform.StoredEvent) { e.Type = "u" }, "schema": func(e *platform.StoredEvent) { e.SchemaVersion = 2 },
		"version": func(e *platform.StoredEvent) { e.Version = 4 }, "body": func(e *platform.StoredEvent) { e.Body = []byte("bodz") },
	} {
		e := base
		change(&e)
		if e.Hash() == base.Hash() {
			t.Errorf("changing the %s leaves the hash as it was", name)
		}
	}
}

func BenchmarkChainHash(b *testing.B) {
	body := bytes.Repeat([]byte("m"), 256)
	for b.Loop() {
		platform.ChainHash("rskJb0iF8anKaRvYLtqYeQ", "01J0000000000000000000000A", "bench.deposited", 1, 12345, body)
	}
}
