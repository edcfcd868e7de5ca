//go:build faults

package faults_test

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/lexigram/events/faults"
)

// TestProxyCutAndRefuse: the proxy forwards both ways, Cut ends live
// connections and refuses new ones for a while, Partition until Heal.
func TestProxyCutAndRefuse(t *testing.T) {
	ctx := t.Context()
	echo := echoServer(t)
	p, err := faults.NewProxy(ctx, echo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })

	conn := dialProxy(t, p)
	if got := roundTrip(conn, "hello"); got != "hello" {
		t.Fatalf("echo through the proxy: got %q", got)
	}
	if n := p.Cut(300 * time.Millisecond); n != 1 {
		t.Fatalf("Cut cut %d connections, want 1", n)
	}
	if got := roundTrip(conn, "after the cut"); got != "" {
		t.Fatalf("a cut connection still answered %q", got)
	}
	if got := roundTrip(dialProxy(t, p), "refused"); got != "" {
		t.Fatalf("a connection made while refusing answered %q", got)
	}
	if err := poll(ctx, "the proxy to accept again", func() bool { return roundTrip(dialProxy(t, p), "again") == "again" }); err != nil {
		t.Fatal(err)
	}

	p.Partition()
	if got := roundTrip(dialProxy(t, p), "partitioned"); got != "" {
		t.Fatalf("a connection made during a partition answered %q", got)
	}
	p.Heal()
	if got := roundTrip(dialProxy(t, p), "healed"); got != "healed" {
		t.Fatalf("after Heal: got %q", got)
	}
}

func echoServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					if _, err := c.Write(append(sc.Bytes(), '\n')); err != nil {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

func dialProxy(t *testing.T, p *faults.Proxy) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// roundTrip sends a line and returns the answer, "" if the connection
// ends or stays silent for 5 s.
func roundTrip(c net.Conn, line string) string {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		return ""
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return ""
	}
	return got[:len(got)-1]
}
