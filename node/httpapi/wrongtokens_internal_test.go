package httpapi

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

func TestWrongTokensWindowAndBound(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewWrongTokens(3, time.Minute)
	l.now = func() time.Time { return now }
	for range 3 {
		l.failed("a")
		now = now.Add(10 * time.Second)
	}
	until, refused := l.blocked("a")
	if !refused || !until.Equal(time.Unix(1060, 0)) {
		t.Fatalf("after 3 wrong tokens: refused %v until %v, want until the first is a minute old (1060)", refused, until.Unix())
	}
	if _, refused := l.blocked("b"); refused {
		t.Error("another address is refused")
	}
	now = time.Unix(1060, 0)
	if _, refused := l.blocked("a"); refused {
		t.Error("still refused once the first wrong token is a minute old")
	}
	l.Succeeded(&http.Request{RemoteAddr: "a:1"})
	if len(l.fails) != 0 {
		t.Errorf("a sign-in left %d addresses counted", len(l.fails))
	}

	// Full, it forgets the address whose last wrong token is oldest.
	for i := range maxTrackedAddresses {
		l.failed(fmt.Sprintf("10.0.%d.%d", i/256, i%256))
		now = now.Add(time.Microsecond)
	}
	l.failed("192.0.2.1")
	if len(l.fails) != maxTrackedAddresses {
		t.Errorf("%d addresses kept, want at most %d", len(l.fails), maxTrackedAddresses)
	}
	if _, kept := l.fails["10.0.0.0"]; kept {
		t.Error("the oldest address was not the one forgotten")
	}
	if _, kept := l.fails["192.0.2.1"]; !kept {
		t.Error("the new address was not counted")
	}
}
