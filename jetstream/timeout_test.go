package jetstream_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/embedded/embeddedtest"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// gateProxy forwards TCP to a NATS server and, once armed, holds back
// everything the server sends from the first chunk that contains a
// pattern on: the way a stalled network loses an append's answer while
// the append itself lands.
type gateProxy struct {
	ln      net.Listener
	target  string
	mu      sync.Mutex
	cond    *sync.Cond
	held    bool
	trigger []byte // hold from the chunk containing this on
	clients []net.Conn
}

func newGateProxy(t *testing.T, target string) *gateProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &gateProxy{ln: ln, target: target}
	p.cond = sync.NewCond(&p.mu)
	t.Cleanup(func() { ln.Close(); p.release() })
	go p.serve()
	return p
}

func (p *gateProxy) url() string { return "nats://" + p.ln.Addr().String() }

// holdOn arms the gate: the server's next chunk containing pattern, and
// everything after it, is held until release.
func (p *gateProxy) holdOn(pattern string) {
	p.mu.Lock()
	p.trigger = []byte(pattern)
	p.mu.Unlock()
}

// rearm lets what is held through and holds from the next chunk
// containing pattern instead.
func (p *gateProxy) rearm(pattern string) {
	p.mu.Lock()
	p.held, p.trigger = false, []byte(pattern)
	p.mu.Unlock()
	p.cond.Broadcast()
}

func (p *gateProxy) release() {
	p.mu.Lock()
	p.held, p.trigger = false, nil
	p.mu.Unlock()
	p.cond.Broadcast()
}

// cut closes the client connections, dropping what is held: what the
// server sent them is lost, as when a network cut takes a reply with it.
func (p *gateProxy) cut() {
	p.mu.Lock()
	for _, c := range p.clients {
		c.Close()
	}
	p.clients = nil
	p.held, p.trigger = false, nil
	p.mu.Unlock()
	p.cond.Broadcast()
}

func (p *gateProxy) serve() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.clients = append(p.clients, client)
		p.mu.Unlock()
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		go func() { _, _ = io.Copy(server, client); server.Close() }()
		go func() {
			defer client.Close()
			buf := make([]byte, 32<<10)
			for {
				n, err := server.Read(buf)
				p.mu.Lock()
				if p.trigger != nil && bytes.Contains(buf[:n], p.trigger) {
					p.held = true
				}
				for p.held {
					p.cond.Wait()
				}
				p.mu.Unlock()
				if n > 0 {
					if _, werr := client.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

// TestTimedOutAppendThatLanded: the append reaches the server but its
// answer is held past the request timeout. The store resends with the
// same event IDs and must report success, not a conflict (R1 answers the
// resend with "wrong last sequence") and not a second copy (R3 would
// de-duplicate).
func TestTimedOutAppendThatLanded(t *testing.T) {
	t.Run("R1", func(t *testing.T) {
		s := embeddedtest.Server(t)
		testTimedOutAppend(t, s.ClientURL(), 1)
	})
	t.Run("R3", func(t *testing.T) {
		if testing.Short() {
			t.Skip("cluster")
		}
		c := embeddedtest.Cluster(t)
		testTimedOutAppend(t, strings.Split(c.ClientURLs(), ",")[0], 3)
	})
}

func testTimedOutAppend(t *testing.T, serverURL string, replicas int) {
	ctx := context.Background()
	proxy := newGateProxy(t, strings.TrimPrefix(serverURL, "nats://"))
	nc, err := nats.Connect(proxy.url(), nats.NoReconnect())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	const requestTimeout = 300 * time.Millisecond
	js, _ := jetstream.New(nc, jetstream.WithDefaultTimeout(requestTimeout))
	st, err := lxjs.New(ctx, js, lxjs.Options{Registry: testRegistry(), Replicas: replicas, Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	// An observer with its own connection sees what the server stored.
	obs, err := nats.Connect(serverURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(obs.Close)
	ojs, _ := jetstream.New(obs)
	stream, _ := ojs.Stream(ctx, st.StreamName())

	id := platform.StreamID{Type: "order", ID: "slow"}
	first, err := st.Append(ctx, id, platform.NoStream(), events(orderPlaced{"c"}))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 3} { // a single publish, then an atomic batch
		evs := make([]any, n)
		for i := range evs {
			evs[i] = itemAdded{SKU: "x", Qty: i}
		}
		proxy.holdOn(`"stream":"` + st.StreamName() + `"`) // the publish acknowledgement
		type result struct {
			res platform.AppendResult
			err error
		}
		done := make(chan result, 1)
		go func() {
			res, err := st.Append(ctx, id, platform.ExactRevision(first.Revision()), events(evs...))
			done <- result{res, err}
		}()
		// Wait until the events are stored, then past the request timeout,
		// so the store has resent at least once.
		want := first.LastPosition + uint64(n)
		waitUntil(t, 5*time.Second, func() bool {
			info, err := stream.Info(ctx)
			return err == nil && info.State.LastSeq >= want
		})
		time.Sleep(2 * requestTimeout)
		proxy.release()
		r := <-done
		if r.err != nil {
			t.Fatalf("R%d, %d events: the append landed but the store reported %v", replicas, n, r.err)
		}
		if r.res.FirstVersion != first.LastVersion+1 || r.res.LastPosition != want {
			t.Fatalf("R%d, %d events: result %+v, want versions from %d and last position %d", replicas, n, r.res, first.LastVersion+1, want)
		}
		first = r.res
	}
	info, _ := stream.Info(ctx)
	if info.State.Msgs != 5 {
		t.Fatalf("R%d: %d messages stored, want 5: a resend stored a copy", replicas, info.State.Msgs)
	}
}

// TestLostAnswerIsAskedAgain: the append lands but the connection is
// cut before its answer arrives, under a caller's deadline much longer
// than the store's AttemptTimeout. The store asks again on the new
// connection after AttemptTimeout, instead of waiting out the caller's
// deadline, and reports the append stored once.
func TestLostAnswerIsAskedAgain(t *testing.T) {
	s := embeddedtest.Server(t)
	proxy := newGateProxy(t, strings.TrimPrefix(s.ClientURL(), "nats://"))
	nc, err := nats.Connect(proxy.url(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc) // the default timeout: 5s
	st, err := lxjs.New(t.Context(), js, lxjs.Options{Registry: testRegistry(), AttemptTimeout: 300 * time.Millisecond, Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	obs, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(obs.Close)
	ojs, _ := jetstream.New(obs)
	stream, _ := ojs.Stream(t.Context(), st.StreamName())

	id := platform.StreamID{Type: "order", ID: "cut"}
	first, err := st.Append(t.Context(), id, platform.NoStream(), events(orderPlaced{"c"}))
	if err != nil {
		t.Fatal(err)
	}
	const callerDeadline = 2 * time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), callerDeadline)
	defer cancel()
	proxy.holdOn(`"stream":"` + st.StreamName() + `"`) // the publish acknowledgement
	type result struct {
		res platform.AppendResult
		err error
	}
	done := make(chan result, 1)
	began := time.Now()
	go func() {
		res, err := st.Append(ctx, id, platform.ExactRevision(first.Revision()), events(itemAdded{SKU: "x", Qty: 1}))
		done <- result{res, err}
	}()
	waitUntil(t, 10*time.Second, func() bool {
		info, err := stream.Info(t.Context())
		return err == nil && info.State.LastSeq >= first.LastPosition+1
	})
	proxy.cut()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("the append landed, its answer was lost with the connection, and the store reported %v", r.err)
		}
		if r.res.FirstVersion != first.LastVersion+1 || r.res.LastPosition != first.LastPosition+1 {
			t.Fatalf("result %+v, want version %d at position %d", r.res, first.LastVersion+1, first.LastPosition+1)
		}
	case <-time.After(callerDeadline / 2):
		t.Fatalf("the append still waits %s after its answer was lost: it waits out the caller's deadline instead of asking again", time.Since(began).Round(time.Second))
	}
	if info, _ := stream.Info(t.Context()); info.State.Msgs != 2 {
		t.Fatalf("%d messages stored, want 2: asking again stored a copy", info.State.Msgs)
	}
}

// waitUntil polls cond until it holds or the deadline passes.
func waitUntil(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
