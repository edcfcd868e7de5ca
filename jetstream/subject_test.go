package jetstream

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// validToken is what NATS accepts as one subject token that matches only
// itself, and what a KV key allows.
func validToken(tok string) bool {
	if tok == "" {
		return false
	}
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '='
		if !ok {
			return false
		}
	}
	return true
}

func FuzzToken(f *testing.F) {
	for _, s := range []string{"a.b*c>d", "bob@example.com", "3f2a8c1e-7b7d-4c55-a5a8-0e6c3d1f9b21", " ", "ünïcødé",
		"=", "=41", "A", "a=2Eb", "a.b", "*", ">", "\x00", "\xff\xfe", "tab\there", "new\nline", strings.Repeat("é", 128)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if id == "" {
			return
		}
		tok := EncodeToken(id)
		if !validToken(tok) {
			t.Fatalf("EncodeToken(%q) = %q: not a single valid subject token", id, tok)
		}
		back, err := DecodeToken(tok)
		if err != nil || back != id {
			t.Fatalf("DecodeToken(EncodeToken(%q)) = %q, %v", id, back, err)
		}
		// Read as a token, the input must decode to an ID whose token is
		// the input itself: one token per ID, one ID per token.
		if dec, err := DecodeToken(id); err == nil && EncodeToken(dec) != id {
			t.Fatalf("token %q decodes to %q, which encodes to %q", id, dec, EncodeToken(dec))
		}
		if len(tok) > 3*len(id) {
			t.Fatalf("token of %d bytes for a %d-byte ID", len(tok), len(id))
		}
	})
}

func TestTokenKeepsPlainIDsReadable(t *testing.T) {
	for _, id := range []string{"3f2a8c1e-7b7d-4c55-a5a8-0e6c3d1f9b21", "order_42", "ABC"} {
		if tok := EncodeToken(id); tok != id {
			t.Errorf("EncodeToken(%q) = %q, want it unchanged", id, tok)
		}
	}
	if tok := EncodeToken("bob@example.com"); tok != "bob=40example=2Ecom" {
		t.Errorf("EncodeToken(bob@example.com) = %q", tok)
	}
	if !utf8.ValidString(EncodeToken("ünï")) {
		t.Error("token not UTF-8")
	}
}

func TestDecodeTokenRejectsNonCanonical(t *testing.T) {
	for _, tok := range []string{"", "=41", "=2e", "=2", "a.b", "a*", "a b", "=ZZ"} {
		if id, err := DecodeToken(tok); err == nil {
			t.Errorf("DecodeToken(%q) = %q, want an error", tok, id)
		}
	}
}

func TestStreamOfRoundTrip(t *testing.T) {
	for _, id := range []string{"a.b*c>d", "x y", "ünï"} {
		subj := "events.order." + EncodeToken(id)
		s, err := streamOf("events", subj)
		if err != nil || s.Type != "order" || s.ID != id {
			t.Fatalf("streamOf(%q) = %v, %v", subj, s, err)
		}
	}
	if _, err := streamOf("events", "other.order.x"); err == nil {
		t.Fatal("a subject outside the prefix must not parse")
	}
}
