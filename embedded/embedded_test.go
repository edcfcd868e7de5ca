package embedded

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// syncBuffer is a log sink that is safe to write from server goroutines
// while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func testOptions(t *testing.T) Options {
	return Options{
		Port:    RandomPort,
		DataDir: t.TempDir(),
		Logger:  slog.New(slog.NewTextHandler(t.Output(), nil)),
	}
}

func mustStart(t *testing.T, opts Options) *Server {
	t.Helper()
	s, err := Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return s
}

// roundTrip creates a stream (if needed), publishes msg through JetStream
// and reads back the last message on the subject.
func roundTrip(t *testing.T, nc *nats.Conn, stream, msg string) {
	t.Helper()
	ctx := t.Context()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{stream + ".>"}})
	if err != nil {
		t.Fatalf("create stream: %v", err)
	}
	subj := stream + ".a"
	ack, err := js.Publish(ctx, subj, []byte(msg))
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	got, err := st.GetMsg(ctx, ack.Sequence)
	if err != nil {
		t.Fatalf("get msg: %v", err)
	}
	if string(got.Data) != msg {
		t.Fatalf("read back %q, want %q", got.Data, msg)
	}
}

func TestStartTCPAndInProcess(t *testing.T) {
	t.Parallel()
	s := mustStart(t, testOptions(t))
	if !strings.HasPrefix(s.ClientURL(), "nats://127.0.0.1:") || strings.HasSuffix(s.ClientURL(), ":0") {
		t.Fatalf("ClientURL = %q, want nats://127.0.0.1:<port>", s.ClientURL())
	}

	tcp, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatalf("tcp connect: %v", err)
	}
	defer tcp.Close()
	roundTrip(t, tcp, "TCP", "over tcp")

	inproc, err := s.Connect()
	if err != nil {
		t.Fatalf("in-process connect: %v", err)
	}
	defer inproc.Close()
	roundTrip(t, inproc, "INPROC", "in process")
}

func TestDontListen(t *testing.T) {
	t.Parallel()
	opts := testOptions(t)
	opts.Port = 0 // must not even try 4222
	opts.DontListen = true
	s := mustStart(t, opts)
	if s.ClientURL() != "" {
		t.Fatalf("ClientURL = %q, want empty", s.ClientURL())
	}
	if addr := s.NATS().Addr(); addr != nil {
		t.Fatalf("server listens on %v", addr)
	}
	nc, err := s.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	roundTrip(t, nc, "DONTLISTEN", "no socket")
}

func TestExplicitPortTaken(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port

	opts := testOptions(t)
	opts.Port = port
	s, err := Start(t.Context(), opts)
	if err == nil {
		s.Shutdown(context.Background())
		t.Fatal("Start succeeded on a taken port")
	}
	want := "port " + strconv.Itoa(port) + " on 127.0.0.1 is in use"
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not contain %q", err, want)
	}
}

func TestDefaultPortTakenFallsBack(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := l.Addr().(*net.TCPAddr).Port

	var logs syncBuffer
	opts := testOptions(t)
	opts.Port = 0
	opts.defaultPort = taken
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	s := mustStart(t, opts)

	if s.ClientURL() == "" || strings.HasSuffix(s.ClientURL(), ":"+strconv.Itoa(taken)) {
		t.Fatalf("ClientURL = %q, want a port other than the taken %d", s.ClientURL(), taken)
	}
	if !strings.Contains(logs.String(), "url="+s.ClientURL()) {
		t.Fatalf("log does not contain the URL %s:\n%s", s.ClientURL(), logs.String())
	}
	if !strings.Contains(logs.String(), "default NATS port is in use") {
		t.Fatalf("log does not explain the fallback:\n%s", logs.String())
	}
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
}

// The real default port is usually taken on developer machines; when it is,
// Port 0 must not fail. Taking 4222 ourselves could disturb other tests.
func TestRealDefaultPortFallback(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(DefaultPort))
	if err == nil {
		l.Close()
		t.Skip("port 4222 is free; the fallback is covered by TestDefaultPortTakenFallsBack")
	}
	opts := testOptions(t)
	opts.Port = 0
	s := mustStart(t, opts)
	if strings.HasSuffix(s.ClientURL(), ":4222") {
		t.Fatalf("ClientURL = %q while 4222 was taken", s.ClientURL())
	}
}

func TestDurability(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		interval   time.Duration
		want       string
		syncAlways bool
	}{
		{0, "fsync before ack", true},
		{2 * time.Minute, "fsync every 2m0s (acknowledged writes can be lost on power failure)", false},
	} {
		opts := testOptions(t)
		opts.FsyncInterval = tc.interval
		var logs syncBuffer
		opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		s := mustStart(t, opts)

		if got := s.Durability(); got != tc.want {
			t.Errorf("FsyncInterval %s: Durability() = %q, want %q", tc.interval, got, tc.want)
		}
		if !strings.Contains(logs.String(), tc.want) {
			t.Errorf("FsyncInterval %s: start log does not contain %q:\n%s", tc.interval, tc.want, logs.String())
		}
		cfg := s.NATS().JetStreamConfig()
		if cfg == nil {
			t.Fatal("JetStream not enabled")
		}
		if cfg.SyncAlways != tc.syncAlways {
			t.Errorf("FsyncInterval %s: server SyncAlways = %v, want %v", tc.interval, cfg.SyncAlways, tc.syncAlways)
		}
		if tc.interval > 0 && cfg.SyncInterval != tc.interval {
			t.Errorf("server SyncInterval = %s, want %s", cfg.SyncInterval, tc.interval)
		}
	}
}

func TestDataSurvivesRestart(t *testing.T) {
	t.Parallel()
	opts := testOptions(t)

	s, err := Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := s.Connect()
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, nc, "DURABLE", "kept")
	nc.Close()
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}

	s = mustStart(t, opts)
	nc, err = s.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(t.Context(), "DURABLE")
	if err != nil {
		t.Fatalf("stream lost across restart: %v", err)
	}
	msg, err := st.GetLastMsgForSubject(t.Context(), "DURABLE.a")
	if err != nil {
		t.Fatalf("message lost across restart: %v", err)
	}
	if string(msg.Data) != "kept" {
		t.Fatalf("got %q after restart, want %q", msg.Data, "kept")
	}
}

func TestStartFailureIsReported(t *testing.T) {
	t.Parallel()
	opts := testOptions(t)
	opts.DataDir = "/dev/null/store" // cannot be created
	s, err := Start(t.Context(), opts)
	if err == nil {
		s.Shutdown(context.Background())
		t.Fatal("Start succeeded with an unusable data dir")
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Start waited for its timeout instead of reporting the failure: %v", err)
	}
}

func TestServerLogs(t *testing.T) {
	t.Parallel()
	for _, on := range []bool{false, true} {
		var logs syncBuffer
		opts := testOptions(t)
		opts.ServerLogs = on
		opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		mustStart(t, opts)
		if got := strings.Contains(logs.String(), "component=nats-server"); got != on {
			t.Errorf("ServerLogs=%v: server log lines present = %v:\n%s", on, got, logs.String())
		}
	}
}
