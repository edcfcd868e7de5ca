//go:build faults

package faults_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/lexigram/events/embedded"
	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/faults"
)

const (
	nodes         = 3
	globalAccount = "$G"
	// waitLong bounds what normally takes milliseconds to seconds
	// (elections, catching up), with room for a loaded machine.
	waitLong = 60 * time.Second
)

// cluster is a three-node JetStream cluster in this process whose routes
// and client connections all pass through proxies, so that a test can
// cut a node off from the others, or the clients off from the nodes.
type cluster struct {
	t       *testing.T
	opts    []embedded.Options
	servers []*embedded.Server
	// routes[i][j] carries the routes node i dials to node j.
	routes [nodes][nodes]*faults.Proxy
	// clients[i] forwards clients to node i.
	clients []*faults.Proxy
}

// newCluster starts the nodes, each with its own store in t.TempDir(),
// and returns once a meta leader sees all three as current peers.
//
// Every node dials its peers through the proxies, and advertises a route
// address that refuses connections, so that gossip never gives a node a
// direct route that a partition would not cut.
func newCluster(t *testing.T) *cluster {
	t.Helper()
	ctx := t.Context()
	c := &cluster{t: t}
	blackhole := listenAndClose(t)
	routePorts := freePorts(t, nodes)
	for i := range nodes {
		for j := range nodes {
			if i == j {
				continue
			}
			p, err := faults.NewProxy(ctx, "127.0.0.1:"+strconv.Itoa(routePorts[j]))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = p.Close() })
			c.routes[i][j] = p
		}
	}
	for i := range nodes {
		var routes []string
		for j := range nodes {
			if j != i {
				routes = append(routes, "nats-route://"+c.routes[i][j].Addr())
			}
		}
		routePort := routePorts[i]
		c.opts = append(c.opts, embedded.Options{
			Port:       embedded.RandomPort,
			DataDir:    t.TempDir(),
			ServerName: fmt.Sprintf("n%d", i),
			Logger:     embeddedtest.Logger(t),
			ServerOptions: func(o *server.Options) {
				o.Cluster = server.ClusterOpts{Name: "faults", Host: "127.0.0.1", Port: routePort, Advertise: blackhole, NoAdvertise: true}
				o.Routes = server.RoutesFromStr(strings.Join(routes, ","))
			},
		})
		s := c.start(i)
		// A restart comes back on the same client port, behind the same proxy.
		c.opts[i].Port = s.NATS().Addr().(*net.TCPAddr).Port
		p, err := faults.NewProxy(ctx, strings.TrimPrefix(s.ClientURL(), "nats://"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close() })
		c.servers = append(c.servers, s)
		c.clients = append(c.clients, p)
	}
	c.waitReady()
	return c
}

func (c *cluster) start(i int) *embedded.Server {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.t.Context(), waitLong)
	defer cancel()
	s, err := embedded.Start(ctx, c.opts[i])
	if err != nil {
		c.t.Fatalf("start node %d: %v", i, err)
	}
	c.t.Cleanup(func() { shutdown(c.t, s) })
	return s
}

// connect opens a client connection through the client proxies that
// reconnects quickly and forever and never learns the nodes' own
// addresses, so that cutting the proxies cuts it.
func (c *cluster) connect() *nats.Conn {
	c.t.Helper()
	urls := make([]string, len(c.clients))
	for i, p := range c.clients {
		urls[i] = "nats://" + p.Addr()
	}
	return dial(c.t, strings.Join(urls, ","))
}

// admin is a direct connection to the nodes, for the fault injector and
// the checker: no fault cuts it.
func (c *cluster) admin() *nats.Conn {
	c.t.Helper()
	urls := make([]string, len(c.servers))
	for i, s := range c.servers {
		urls[i] = s.ClientURL()
	}
	return dial(c.t, strings.Join(urls, ","))
}

func dial(t *testing.T, urls string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(urls, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond),
		nats.ReconnectJitter(0, 0), nats.IgnoreDiscoveredServers(), nats.Timeout(5*time.Second),
		// The cuts make writes fail by design; nats.go's default handler
		// would print each on the terminal (and t.Logf may not be called
		// once the test is over, when the last ones come).
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatalf("connect to %s: %v", urls, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// streamLeader is the node leading stream, or -1 during an election.
func (c *cluster) streamLeader(stream string) int {
	for i, s := range c.servers {
		if s.NATS().Running() && s.NATS().JetStreamIsStreamLeader(globalAccount, stream) {
			return i
		}
	}
	return -1
}

// target resolves a fault's node: the stream leader when asked (any node
// if there is none right now).
func (c *cluster) target(f faults.Fault, stream string) int {
	if f.Leader {
		if l := c.streamLeader(stream); l >= 0 {
			return l
		}
	}
	return f.Node % nodes
}

// stepDown asks the stream's leader to hand over, as
// `nats stream cluster step-down` does, and waits for a new leader.
func (c *cluster) stepDown(nc *nats.Conn, stream string) error {
	ctx, cancel := context.WithTimeout(c.t.Context(), waitLong)
	defer cancel()
	before := c.streamLeader(stream)
	for {
		msg, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.LEADER.STEPDOWN."+stream, nil)
		if err == nil {
			var resp struct {
				Success bool `json:"success"`
				Error   *struct {
					Description string `json:"description"`
				} `json:"error"`
			}
			if err = json.Unmarshal(msg.Data, &resp); err == nil && !resp.Success {
				err = fmt.Errorf("step-down refused: %s", msg.Data)
			}
			if err == nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("step down the leader of %s: %w", stream, err)
		case <-time.After(100 * time.Millisecond): // no leader yet to step down
		}
	}
	return c.waitFor(fmt.Sprintf("a new leader of %s after node %d stepped down", stream, before), func() bool {
		l := c.streamLeader(stream)
		return l >= 0 && l != before
	})
}

// restart shuts node i down, waits hold, and starts it again on its store.
func (c *cluster) restart(i int, hold time.Duration) error {
	shutdown(c.t, c.servers[i])
	if err := pause(c.t.Context(), hold); err != nil {
		return err
	}
	c.servers[i] = c.start(i)
	return nil
}

// partition cuts node i's routes both ways and refuses new ones until
// heal, and waits until node i has no route left.
func (c *cluster) partition(i int) (cut int, err error) {
	for j := range nodes {
		if j != i {
			cut += c.routes[i][j].Partition() + c.routes[j][i].Partition()
		}
	}
	return cut, c.waitFor(fmt.Sprintf("node %d to lose its routes", i), func() bool { return c.servers[i].NATS().NumRoutes() == 0 })
}

func (c *cluster) heal() {
	for i := range nodes {
		for j := range nodes {
			if i != j {
				c.routes[i][j].Heal()
			}
		}
	}
	for _, p := range c.clients {
		p.Heal()
	}
}

// cutClients closes every client connection and refuses new ones for hold.
func (c *cluster) cutClients(hold time.Duration) int {
	n := 0
	for _, p := range c.clients {
		n += p.Cut(hold)
	}
	return n
}

// waitReady waits until a meta leader sees every node as a JetStream
// peer and every node is current with the meta log, and every route is
// up again.
func (c *cluster) waitReady() {
	c.t.Helper()
	if err := c.waitFor("the cluster to be whole", c.ready); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cluster) ready() bool {
	peers := 0
	for _, s := range c.servers {
		if s.NATS().JetStreamIsLeader() {
			peers = len(s.NATS().JetStreamClusterPeers())
		}
	}
	if peers != nodes {
		return false
	}
	for _, s := range c.servers {
		if !s.NATS().Running() || !s.NATS().JetStreamIsCurrent() || s.NATS().NumRoutes() < nodes-1 {
			return false
		}
	}
	return true
}

// waitFor polls cond until it holds, or fails after waitLong.
func (c *cluster) waitFor(what string, cond func() bool) error {
	return poll(c.t.Context(), what, cond)
}

func poll(ctx context.Context, what string, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, waitLong)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waited %v for %s", waitLong, what)
		case <-tick.C:
		}
	}
	return nil
}

// pause waits d, or less if ctx ends first.
func pause(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func shutdown(t *testing.T, s *embedded.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("shut down %s: %v", s.NATS().Name(), err)
	}
}

// listenAndClose is an address that accepts connections and closes them
// at once: a route advertised there is never reached.
func listenAndClose(t *testing.T) string {
	t.Helper()
	var lc net.ListenConfig
	l, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			_ = conn.Close()
		}
	}()
	return l.Addr().String()
}

// freePorts asks the OS for n distinct free ports, closed before the
// nodes bind them.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports
}
