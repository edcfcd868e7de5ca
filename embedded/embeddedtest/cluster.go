package embeddedtest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lexigram/events/embedded"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

const (
	clusterSize = 3
	// globalAccount is the account clients land in when no auth is set up.
	globalAccount = "$G"
	readyTimeout  = 30 * time.Second
)

// TestCluster is a three-node JetStream cluster started by Cluster. Its
// methods are meant to be called from the test goroutine only.
type TestCluster struct {
	// Servers holds the nodes; Restart replaces an entry.
	Servers []*embedded.Server

	t    testing.TB
	opts []embedded.Options
}

// Cluster starts three JetStream nodes routed to each other on loopback,
// each with its own store in t.TempDir(), and returns once a meta leader
// exists and every node is a current JetStream peer, so R3 streams can be
// created right away. Cleanup shuts all nodes down.
func Cluster(t testing.TB) *TestCluster {
	t.Helper()
	routePorts := freePorts(t, clusterSize)
	routes := make([]string, clusterSize)
	for i, p := range routePorts {
		routes[i] = "nats-route://127.0.0.1:" + strconv.Itoa(p)
	}
	c := &TestCluster{t: t}
	for i := range clusterSize {
		routePort := routePorts[i]
		c.opts = append(c.opts, embedded.Options{
			Port:       embedded.RandomPort,
			DataDir:    t.TempDir(),
			ServerName: fmt.Sprintf("n%d", i),
			Logger:     Logger(t),
			ServerOptions: func(o *server.Options) {
				o.Cluster = server.ClusterOpts{Name: "embeddedtest", Host: "127.0.0.1", Port: routePort}
				o.Routes = server.RoutesFromStr(strings.Join(routes, ","))
			},
		})
		s := start(t, c.opts[i])
		// Restart must come back on the same client port so ClientURLs, and
		// clients reconnecting to it, stay valid.
		c.opts[i].Port = port(t, s.ClientURL())
		c.Servers = append(c.Servers, s)
	}
	c.waitReady(-1)
	return c
}

// ClientURLs is a comma-separated list of all nodes' URLs, as accepted by
// nats.Connect.
func (c *TestCluster) ClientURLs() string {
	urls := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		urls[i] = s.ClientURL()
	}
	return strings.Join(urls, ",")
}

// Connect opens a TCP connection that knows all nodes and reconnects
// quickly and forever, so it survives nodes being shut down. It is closed
// on cleanup.
func (c *TestCluster) Connect(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(c.ClientURLs(),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(50*time.Millisecond),
		nats.ReconnectJitter(0, 0),
	)
	if err != nil {
		t.Fatalf("embeddedtest: connect to cluster: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Shutdown stops node i and waits until it is down.
func (c *TestCluster) Shutdown(i int) {
	c.t.Helper()
	shutdown(c.t, c.Servers[i])
}

// Restart starts node i again on its store and ports, and waits until it has
// rejoined the cluster as a current JetStream peer.
func (c *TestCluster) Restart(i int) {
	c.t.Helper()
	c.Servers[i] = start(c.t, c.opts[i])
	c.waitReady(i)
}

// StreamLeader returns the index of the node leading stream in the global
// account, or -1 if there is no leader right now (e.g. during an election).
func (c *TestCluster) StreamLeader(stream string) int {
	for i, s := range c.Servers {
		if s.NATS().Running() && s.NATS().JetStreamIsStreamLeader(globalAccount, stream) {
			return i
		}
	}
	return -1
}

// waitReady polls until a meta leader sees all nodes as JetStream peers and
// every running node (or only node, if >= 0) has caught up with the meta
// log. A leader alone is not enough: until it has heard from its peers,
// creating an R3 stream fails with "insufficient resources".
func (c *TestCluster) waitReady(node int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.t.Context(), readyTimeout)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !c.ready(node) {
		select {
		case <-ctx.Done():
			c.t.Fatalf("embeddedtest: cluster not ready after %s", readyTimeout)
		case <-tick.C:
		}
	}
}

func (c *TestCluster) ready(node int) bool {
	peers := 0
	for _, s := range c.Servers {
		if s.NATS().JetStreamIsLeader() {
			peers = len(s.NATS().JetStreamClusterPeers())
		}
	}
	if peers != len(c.Servers) {
		return false
	}
	for i, s := range c.Servers {
		if (node < 0 || node == i) && s.NATS().Running() && !s.NATS().JetStreamIsCurrent() {
			return false
		}
	}
	return true
}

// freePorts asks the OS for n distinct free ports. The listeners are closed
// before the servers bind, so another process could grab a port in between;
// on loopback in a test run that is unlikely enough.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("embeddedtest: find free port: %v", err)
		}
		// Closed only at the end so the OS cannot hand out the same port twice.
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports
}

func port(t testing.TB, rawURL string) int {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err == nil {
		var p int
		if p, err = strconv.Atoi(u.Port()); err == nil {
			return p
		}
	}
	t.Fatalf("embeddedtest: bad client URL %q: %v", rawURL, err)
	return 0
}
