package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// lexigramBinary builds the command once per test run, as a user runs it.
func lexigramBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "lexigram-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "lexigram")
		out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
		if err != nil {
			buildErr = errors.New(string(out))
		}
	})
	if buildErr != nil {
		t.Fatalf("build lexigram: %v", buildErr)
	}
	return binary
}

// natsServer starts a nats-server for a boot failure: opts changes it.
func natsServer(t *testing.T, opts func(*server.Options)) *server.Server {
	t.Helper()
	o := &server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true, StoreDir: t.TempDir()}
	if opts != nil {
		opts(o)
	}
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(s.Shutdown)
	return s
}

// TestServeBootFailures runs `lexigram serve` the wrong ways a user does:
// each must end with a non-zero exit and, as its last line, one error that
// names the cause and the fix; none may panic.
func TestServeBootFailures(t *testing.T) {
	bin := lexigramBinary(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()

	secured := natsServer(t, func(o *server.Options) { o.JetStream, o.Username, o.Password = true, "app", "s3cret" })
	plain := natsServer(t, nil) // JetStream off
	conflicting := natsServer(t, func(o *server.Options) { o.JetStream = true })
	nc, err := nats.Connect(conflicting.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"other.>"}}); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	aFile := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(aFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name   string
		args   []string
		config string   // YAML, when the case needs one
		want   []string // in the last line
	}{
		{name: "nothing listens at the NATS URL", args: []string{"--nats-url", "nats://" + closedAddr},
			want: []string{closedAddr, "--nats-url"}},
		{name: "wrong credentials", args: []string{"--nats-url", "nats://app:wrong@" + strings.TrimPrefix(secured.ClientURL(), "nats://")},
			want: []string{"uthorization", "credentials"}},
		{name: "a server without JetStream", args: []string{"--nats-url", plain.ClientURL()},
			want: []string{"JetStream", "-js"}},
		{name: "an EVENTS stream with other subjects", args: []string{"--nats-url", conflicting.ClientURL()},
			want: []string{"LXE-011", "other.>", "store.subject_prefix"}},
		{name: "an unwritable data directory",
			config: "nats:\n  embedded:\n    port: -1\n    data_dir: " + filepath.Join(aFile, "data") + "\n",
			want:   []string{filepath.Join(aFile, "data"), "data_dir"}},
		{name: "a taken HTTP port", args: []string{"--http-addr", taken.Addr().String()},
			config: "nats:\n  embedded:\n    port: -1\n    data_dir: " + t.TempDir() + "\n",
			want:   []string{taken.Addr().String(), "--http-addr"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"serve"}, c.args...)
			if c.config != "" {
				path := filepath.Join(t.TempDir(), "lexigram.yaml")
				if err := os.WriteFile(path, []byte(c.config), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--config", path)
			} else {
				args = append(args, "--http-addr", "127.0.0.1:0")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, args...)
			cmd.Env = append(os.Environ(), "LEXIGRAM_CONFIG=")
			var stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stderr, &stderr
			err := cmd.Run()
			out := stderr.String()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() == 0 {
				t.Fatalf("want a non-zero exit, got %v\n%s", err, out)
			}
			if strings.Contains(out, "panic") || strings.Contains(out, "goroutine ") {
				t.Fatalf("it panicked:\n%s", out)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "lexigram: ") {
				t.Fatalf("the last line is not the error:\n%s", out)
			}
			for _, w := range c.want {
				if !strings.Contains(last, w) {
					t.Errorf("the error lacks %q:\n%s", w, last)
				}
			}
			if strings.Contains(last, "s3cret") || strings.Contains(last, "wrong@") {
				t.Errorf("the error shows a password:\n%s", last)
			}
		})
	}
}
