//go:build faults

package faults_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/lexigram/events/embedded"
	"github.com/lexigram/events/faults"
)

// childDirEnv makes the test binary a child server on the directory it
// names (see TestMain): the same nats-server version as the embedded
// one, in a process of its own that SIGKILL can end at any instruction.
const childDirEnv = "LEXIGRAM_FAULTS_CHILD_DIR"

// child is a server in a child process, behind a proxy whose address
// stays the same across restarts on new ports.
type child struct {
	t     *testing.T
	dir   string
	cmd   *exec.Cmd
	proxy *faults.Proxy
}

func newChild(t *testing.T) *child {
	t.Helper()
	c := &child{t: t, dir: t.TempDir()}
	addr := c.start()
	p, err := faults.NewProxy(t.Context(), addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	c.proxy = p
	return c
}

// url is where clients connect: the proxy.
func (c *child) url() string { return "nats://" + c.proxy.Addr() }

// start runs this test binary as a child serving on c.dir and returns
// the host:port it listens on.
func (c *child) start() string {
	c.t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childDirEnv+"="+c.dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	c.cmd = cmd
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if url, ok := strings.CutPrefix(sc.Text(), "URL "); ok {
				urls <- url
			}
		}
		close(urls)
	}()
	select {
	case url, ok := <-urls:
		if !ok {
			c.t.Fatal("the child server exited before printing its URL")
		}
		return strings.TrimPrefix(url, "nats://")
	case <-time.After(waitLong):
		c.t.Fatalf("the child server did not start within %v", waitLong)
	}
	return ""
}

// kill SIGKILLs the child, waits hold, and starts it again on its store.
func (c *child) kill(hold time.Duration) error {
	if err := c.cmd.Process.Kill(); err != nil {
		return fmt.Errorf("kill the child server: %w", err)
	}
	_ = c.cmd.Wait()
	if err := pause(c.t.Context(), hold); err != nil {
		return err
	}
	c.proxy.SetTarget(c.start())
	return nil
}

// runChild is the child: an embedded server that fsyncs every write
// before it acknowledges it, serving on dir until it is killed.
func runChild(dir string) {
	s, err := embedded.Start(context.Background(), embedded.Options{
		Port: embedded.RandomPort, DataDir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults child:", err)
		os.Exit(2)
	}
	if !s.NATS().JetStreamConfig().SyncAlways {
		fmt.Fprintln(os.Stderr, "faults child: the server does not fsync before ack:", s.Durability())
		os.Exit(2)
	}
	fmt.Println("URL " + s.ClientURL())
	select {} // until SIGKILL
}
