package embeddedtest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/lexigram/events/embedded"
	"github.com/nats-io/nats.go"
)

// Server starts a single server on a random port with a fresh store in
// t.TempDir(). opts can change any option before start.
func Server(t testing.TB, opts ...func(*embedded.Options)) *embedded.Server {
	t.Helper()
	o := embedded.Options{
		Port:    embedded.RandomPort,
		DataDir: t.TempDir(),
		Logger:  Logger(t),
	}
	for _, f := range opts {
		f(&o)
	}
	return start(t, o)
}

// Conn opens an in-process connection to s, closed on cleanup.
func Conn(t testing.TB, s *embedded.Server) *nats.Conn {
	t.Helper()
	nc, err := s.Connect()
	if err != nil {
		t.Fatalf("embeddedtest: connect in-process: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Logger writes to the test's output, which is shown only for failing tests
// or with -v.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

func start(t testing.TB, o embedded.Options) *embedded.Server {
	t.Helper()
	s, err := embedded.Start(t.Context(), o)
	if err != nil {
		t.Fatalf("embeddedtest: %v", err)
	}
	t.Cleanup(func() { shutdown(t, s) })
	return s
}

// shutdown tolerates servers that were already stopped.
func shutdown(t testing.TB, s *embedded.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("embeddedtest: %v", err)
	}
}
