package oldnats

import (
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// URL is the older server's URL.
func URL() string {
	if u := os.Getenv("LEXIGRAM_OLD_NATS_URL"); u != "" {
		return u
	}
	return "nats://127.0.0.1:4222"
}

// Conn connects to the older server, closed when the test ends. The
// caller checks ConnectedServerVersion and skips if the server has what
// the test needs it to lack.
func Conn(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(URL(), nats.Timeout(2*time.Second))
	if err != nil {
		msg := "no older NATS server at " + URL() + " (" + err.Error() + "): start Debian's nats-server (.ci/run does) or set LEXIGRAM_OLD_NATS_URL"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(nc.Close)
	return nc
}
