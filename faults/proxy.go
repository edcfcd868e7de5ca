package faults

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Proxy forwards TCP connections from a loopback listener to a target,
// so that a test can cut them: between a client and a server, or on a
// route between two cluster nodes. While it refuses, it accepts new
// connections and closes them at once, as a dead link looks to the
// dialer.
type Proxy struct {
	ln     net.Listener
	dialer net.Dialer

	mu          sync.Mutex
	target      string
	conns       map[net.Conn]struct{} // both ends of every live pair
	refuseUntil time.Time
	refusing    bool // until Heal, whatever refuseUntil says
	closed      bool
	wg          sync.WaitGroup
}

// NewProxy listens on 127.0.0.1 on a free port and forwards every
// connection to target (host:port).
func NewProxy(ctx context.Context, target string) (*Proxy, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faults: proxy to %s: listen on 127.0.0.1: %w", target, err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}, dialer: net.Dialer{Timeout: 5 * time.Second}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the host:port clients dial instead of the target.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetTarget changes where new connections go, as for a server restarted
// on another port; live connections keep theirs.
func (p *Proxy) SetTarget(target string) {
	p.mu.Lock()
	p.target = target
	p.mu.Unlock()
}

// Cut closes every live connection and refuses new ones for refuseFor
// (0: accepts again at once). It returns how many connections it cut.
func (p *Proxy) Cut(refuseFor time.Duration) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuseUntil = time.Now().Add(refuseFor)
	n := len(p.conns) / 2
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
	return n
}

// Partition cuts every live connection and refuses new ones until Heal.
func (p *Proxy) Partition() int {
	n := p.Cut(0)
	p.mu.Lock()
	p.refusing = true
	p.mu.Unlock()
	return n
}

// Heal accepts connections again.
func (p *Proxy) Heal() {
	p.mu.Lock()
	p.refusing = false
	p.refuseUntil = time.Time{}
	p.mu.Unlock()
}

// Live is the number of connections being forwarded now.
func (p *Proxy) Live() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns) / 2
}

// Close stops listening and closes every connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // a transient accept error; the listener is still there
		}
		p.mu.Lock()
		refuse := p.closed || p.refusing || time.Now().Before(p.refuseUntil)
		target := p.target
		p.mu.Unlock()
		if refuse {
			_ = in.Close()
			continue
		}
		p.wg.Add(1)
		go p.forward(in, target)
	}
}

// forward dials the target for one accepted connection and copies both
// ways until either side ends or a cut closes both.
func (p *Proxy) forward(in net.Conn, target string) {
	defer p.wg.Done()
	out, err := p.dialer.Dial("tcp", target)
	if err != nil {
		_ = in.Close()
		return
	}
	p.mu.Lock()
	if p.closed || p.refusing || time.Now().Before(p.refuseUntil) {
		p.mu.Unlock()
		_ = in.Close()
		_ = out.Close()
		return
	}
	p.conns[in], p.conns[out] = struct{}{}, struct{}{}
	p.mu.Unlock()

	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(out, in)
	go pipe(in, out)
	<-done
	_ = in.Close()
	_ = out.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, in)
	delete(p.conns, out)
	p.mu.Unlock()
}
