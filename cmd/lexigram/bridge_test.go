package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/bridges/bridgeconfig"
	"github.com/lexigram/events/bridges/memory" // registers "memory" for the in-process tests
	"github.com/lexigram/events/config"
	"github.com/lexigram/events/embedded/embeddedtest"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

type orderPlaced struct{ N int }

// appendOrders appends n order.placed events spread over aggregates
// order o-0 ... o-<aggregates-1>, and returns their IDs.
func appendOrders(t *testing.T, js jetstream.JetStream, n, aggregates int) []string {
	t.Helper()
	reg := platform.NewRegistry()
	platform.MustRegister[orderPlaced](reg, "order.placed", 1)
	store, err := lxjs.New(t.Context(), js, lxjs.Options{Registry: reg, Codec: platform.JSON, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 0, n)
	const batch = 10
	for i := 0; i < n; i += batch {
		events := make([]platform.Envelope, 0, batch)
		for j := i; j < min(i+batch, n); j++ {
			id := platform.NewEventID()
			ids = append(ids, id)
			events = append(events, platform.Envelope{ID: id, Event: orderPlaced{N: j}})
		}
		agg := platform.StreamID{Type: "order", ID: "o-" + strconv.Itoa((i/batch)%aggregates)}
		if _, err := store.Append(t.Context(), agg, platform.Any(), events); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

// waitUntil polls cond every 20ms until it holds, failing after timeout.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// get fetches url and returns the status code and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metric returns the value of one series in a /metrics page.
func metric(page, series string) (float64, bool) {
	for _, line := range strings.Split(page, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, err == nil
		}
	}
	return 0, false
}

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// memoryBridge is an outbound bridge of the event store to a topic of
// the in-memory broker.
func memoryBridge(name, topic string) config.Bridge {
	b := config.DefaultBridge()
	b.Name, b.Direction, b.Broker = name, config.BridgeOutbound, "memory"
	b.Settings = map[string]string{"topic": topic}
	return b
}

func consumerInfo(t *testing.T, js jetstream.JetStream, stream, name string) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := js.Consumer(t.Context(), stream, name)
	if err != nil {
		t.Fatalf("consumer %s of %s: %v", name, stream, err)
	}
	return c.CachedInfo()
}

// settled returns the consumer's info once it has nothing unacked, or
// after 10s: acks reach the server before a stop returns, and the server
// applies them a moment later.
func settled(t *testing.T, js jetstream.JetStream, stream, name string) *jetstream.ConsumerInfo {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		info := consumerInfo(t, js, stream, name)
		if info.NumAckPending == 0 || time.Now().After(deadline) {
			return info
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// drainMemory takes every message of the memory topic, acking each, and
// returns their IDs in order.
func drainMemory(t *testing.T, topic string, want int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	sub := memory.Default.Subscriber(topic, 100)
	defer sub.Close()
	deliveries, err := sub.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for len(ids) < want {
		select {
		case d := <-deliveries:
			ids = append(ids, d.ID)
			if err := d.Ack(ctx); err != nil {
				t.Fatal(err)
			}
		case <-ctx.Done():
			t.Fatalf("got %d of %d messages from %s", len(ids), want, topic)
		}
	}
	return ids
}

// TestBridgeStopFinishesInFlight stops the bridge process in the middle
// of a stream while a slow broker holds messages in flight: the stop
// must publish and ack every message taken, and nothing may be lost or
// sent twice across the restart that finishes the stream.
func TestBridgeStopFinishesInFlight(t *testing.T) {
	srv := embeddedtest.Server(t)
	js, err := jetstream.New(embeddedtest.Conn(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	const total = 2000
	ids := appendOrders(t, js, total, 20)
	topic := "stop-" + platform.NewEventID()
	memory.Default.Refuse(func(tp string, _ *bridges.Message) error {
		if tp == topic {
			time.Sleep(time.Millisecond) // a slow broker: messages stay in flight
		}
		return nil
	})
	t.Cleanup(func() { memory.Default.Refuse(nil) })

	cfg := config.Default()
	cfg.NATS.URLs = []string{srv.ClientURL()}
	cfg.HTTP.Addr = "127.0.0.1:0"
	b := memoryBridge("orders-out", topic)
	b.Workers, b.BatchSize = 4, 20
	b.AckWait = 2 * time.Second // what the server sent as the stop began comes back to the restart soon
	cfg.Bridges = []config.Bridge{b}

	run := func(until func() bool) {
		t.Helper()
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- runBridges(ctx, cfg, quietLog()) }()
		waitUntil(t, 60*time.Second, "the bridge to move messages", until)
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("runBridges after stop: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("runBridges did not return within 60s of its stop")
		}
	}

	run(func() bool { return memory.Default.Len(topic) >= 100 })
	moved := memory.Default.Len(topic)
	var info *jetstream.ConsumerInfo
	waitUntil(t, 10*time.Second, "JetStream's ack floor to reach the messages moved", func() bool {
		info = consumerInfo(t, js, "EVENTS", "orders-out")
		return info.AckFloor.Stream >= uint64(moved)
	})
	if uint64(moved) != info.AckFloor.Stream {
		t.Errorf("after stop the broker holds %d messages and JetStream's ack floor is %d: want them equal (each message moved acked, none acked unmoved)",
			moved, info.AckFloor.Stream)
	}
	if want := info.Delivered.Stream - uint64(moved); uint64(info.NumAckPending) != want {
		t.Errorf("after stop %d messages are unacked, want %d: those delivered beyond the %d moved, and no other", info.NumAckPending, want, moved)
	}
	if moved >= total {
		t.Fatalf("the stop came after the whole stream (%d moved): the test proves nothing, slow the broker further", moved)
	}
	// Messages the server sent as the consumer was drained, which never
	// reached the bridge, come back after AckWait (see Outbound.Stop).
	t.Logf("stopped with %d of %d moved; %d sent by the server as the stop began and never received", moved, total, info.Delivered.Stream-uint64(moved))

	run(func() bool { return memory.Default.Len(topic) >= total })
	got := drainMemory(t, topic, total)
	seen := map[string]bool{}
	for _, id := range got {
		if seen[id] {
			t.Errorf("event %s reached the broker twice", id)
		}
		seen[id] = true
	}
	for _, id := range ids {
		if !seen[id] {
			t.Errorf("event %s never reached the broker", id)
		}
	}
	if n := memory.Default.Len(topic); n != 0 {
		t.Errorf("%d more messages on the broker than events stored", n)
	}
}

// TestBridgeHealthAndMetrics: /healthz lists each bridge and turns 503
// while its broker is down; /metrics counts what moved.
func TestBridgeHealthAndMetrics(t *testing.T) {
	srv := embeddedtest.Server(t)
	js, err := jetstream.New(embeddedtest.Conn(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	topic := "health-" + platform.NewEventID()
	cfg := config.Default()
	cfg.NATS.URLs = []string{srv.ClientURL()}
	cfg.HTTP.Addr = freeAddr(t)
	cfg.Bridges = []config.Bridge{memoryBridge("orders-out", topic)}
	in := config.DefaultBridge()
	in.Name, in.Direction, in.Broker, in.Stream, in.Subject = "orders-in", config.BridgeInbound, "memory", "INBOUND", "inbound.orders"
	in.Settings = map[string]string{"topic": topic + "-in"}
	cfg.Bridges = append(cfg.Bridges, in)

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- runBridges(ctx, cfg, quietLog()) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("runBridges: %v", err)
		}
	}()
	base := "http://" + cfg.HTTP.Addr
	waitGet(t, base+"/healthz")
	ids := appendOrders(t, js, 30, 3)
	if err := memory.Default.Publisher(topic+"-in").Publish(t.Context(), &bridges.Message{ID: "m-1", Data: []byte("pay")}); err != nil {
		t.Fatal(err)
	}
	var page string
	waitUntil(t, 30*time.Second, "30 events and 1 message moved in /metrics", func() bool {
		_, page = get(t, base+"/metrics")
		out, _ := metric(page, `lexigram_bridge_messages_total{bridge="orders-out",direction="outbound"}`)
		in, _ := metric(page, `lexigram_bridge_messages_total{bridge="orders-in",direction="inbound"}`)
		return out == float64(len(ids)) && in == 1
	})
	for series, want := range map[string]float64{
		`lexigram_bridge_broker_connected{bridge="orders-out"}`:                  1,
		`lexigram_bridge_broker_connected{bridge="orders-in"}`:                   1,
		`lexigram_bridge_lag_messages{bridge="orders-out"}`:                      0,
		`lexigram_bridge_errors_total{bridge="orders-out",direction="outbound"}`: 0,
		"lexigram_nats_connected":                                                1,
	} {
		if got, ok := metric(page, series); !ok || got != want {
			t.Errorf("/metrics %s = %v (present %v), want %v", series, got, ok, want)
		}
	}
	if !strings.Contains(page, "go_goroutines") || !strings.Contains(page, "process_") {
		t.Error("/metrics lacks the Go and process collectors")
	}
	if st, err := js.Stream(t.Context(), "INBOUND"); err != nil || st.CachedInfo().State.Msgs != 1 {
		t.Errorf("stream INBOUND: %v, want it made with the 1 message", err)
	}

	code, body := get(t, base+"/healthz")
	var h bridgeHealthBody
	if err := json.Unmarshal([]byte(body), &h); err != nil || code != 200 || h.Status != "ok" || h.NATS != "CONNECTED" {
		t.Fatalf("/healthz = %d %s (%v), want 200 and status ok", code, body, err)
	}
	want := []bridgeconfig.Status{{Name: "orders-out", Direction: "outbound", Broker: "memory", Connected: true}, {Name: "orders-in", Direction: "inbound", Broker: "memory", Connected: true}}
	if len(h.Bridges) != 2 || h.Bridges[0] != want[0] || h.Bridges[1] != want[1] {
		t.Errorf("/healthz bridges = %+v, want %+v", h.Bridges, want)
	}

	memory.Default.Stop()
	defer memory.Default.Start()
	code, body = get(t, base+"/healthz")
	if err := json.Unmarshal([]byte(body), &h); err != nil || code != http.StatusServiceUnavailable || h.Status != "unavailable" || h.Bridges[0].Connected {
		t.Errorf("/healthz with the broker down = %d %s, want 503 and orders-out disconnected", code, body)
	}
	_, page = get(t, base+"/metrics")
	if v, _ := metric(page, `lexigram_bridge_broker_connected{bridge="orders-out"}`); v != 0 {
		t.Errorf("lexigram_bridge_broker_connected = %v with the broker down, want 0", v)
	}
	memory.Default.Start()
}

// TestServeRunsBridges: serve starts the configuration's bridges on its
// store and adds them to /healthz and /metrics.
func TestServeRunsBridges(t *testing.T) {
	srv := embeddedtest.Server(t)
	js, err := jetstream.New(embeddedtest.Conn(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	topic := "serve-" + platform.NewEventID()
	cfg := config.Default()
	cfg.NATS.URLs = []string{srv.ClientURL()}
	cfg.HTTP.Addr = freeAddr(t)
	cfg.Bridges = []config.Bridge{memoryBridge("orders-out", topic)}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, quietLog()) }()

	base := "http://" + cfg.HTTP.Addr
	body := waitGet(t, base+"/healthz")
	if !strings.Contains(body, "orders-out") {
		t.Errorf("serve's /healthz = %q, want the bridge in it", body)
	}
	// Asked for JSON, the node's answer gets a "bridges" key.
	code, body := get(t, base+"/healthz?format=json")
	var h struct {
		Status  string
		Bridges []bridgeconfig.Status
	}
	if err := json.Unmarshal([]byte(body), &h); err != nil || code != 200 || len(h.Bridges) != 1 ||
		h.Bridges[0] != (bridgeconfig.Status{Name: "orders-out", Direction: "outbound", Broker: "memory", Connected: true}) {
		t.Errorf("serve's /healthz?format=json = %d %s (%v), want the bridge, connected, under \"bridges\"", code, body, err)
	}
	appendOrders(t, js, 20, 2)
	waitUntil(t, 30*time.Second, "20 events on the broker", func() bool { return memory.Default.Len(topic) == 20 })
	waitUntil(t, 10*time.Second, "/metrics to count them", func() bool {
		_, page := get(t, base+"/metrics")
		v, _ := metric(page, `lexigram_bridge_messages_total{bridge="orders-out",direction="outbound"}`)
		return v == 20
	})

	memory.Default.Stop()
	code, body = get(t, base+"/healthz")
	memory.Default.Start()
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "orders-out") {
		t.Errorf("serve's /healthz with the broker down = %d %q, want 503 naming the bridge", code, body)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop within 30s")
	}
	if info := settled(t, js, "EVENTS", "orders-out"); info.NumAckPending != 0 || info.NumPending != 0 {
		t.Errorf("after serve stopped: %d unacked, %d pending, want 0 and 0", info.NumAckPending, info.NumPending)
	}
	drainMemory(t, topic, 20)
}

// proc is the lexigram binary running in the background, its output
// collected line by line.
type proc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
	err  error
}

func startBinary(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(lexigramBinary(t), args...), done: make(chan struct{})}
	p.cmd.Env = append(append(os.Environ(), "LEXIGRAM_CONFIG="), env...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout = p.cmd.Stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.out.Write(sc.Bytes())
			p.out.WriteByte('\n')
			p.mu.Unlock()
		}
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("lexigram %s output:\n%s", strings.Join(args, " "), p.output())
		}
	})
	return p
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// waitLog waits for a line matching re and returns its first group.
func (p *proc) waitLog(t *testing.T, re *regexp.Regexp) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if m := re.FindStringSubmatch(p.output()); m != nil {
			return m[1]
		}
		select {
		case <-p.done:
			t.Fatalf("lexigram exited (%v) before logging %s:\n%s", p.err, re, p.output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("lexigram did not log %s within 60s:\n%s", re, p.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var httpURLLog = regexp.MustCompile(`msg="serving health and metrics[^"]*" url=(http://\S+)`)

// terminate sends SIGTERM and waits for a clean exit.
func (p *proc) terminate(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("lexigram did not exit within 60s of SIGTERM:\n%s", p.output())
	}
	if p.err != nil {
		t.Fatalf("lexigram exited with %v after SIGTERM, want 0:\n%s", p.err, p.output())
	}
	if !strings.Contains(p.output(), "bridges stopped") {
		t.Errorf("lexigram did not log that the bridges stopped:\n%s", p.output())
	}
}

// TestBridgeBootFailures runs `lexigram bridge` the wrong ways a user
// does: each must end with exit 1 and, as its last line, one error that
// names the bridge, the cause and the fix, without a password; none may
// panic.
func TestBridgeBootFailures(t *testing.T) {
	bin := lexigramBinary(t)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	embeddedNATS := "nats:\n  embedded:\n    port: -1\n    data_dir: " + t.TempDir() + "\nhttp:\n  addr: 127.0.0.1:0\n"
	const head = "bridges:\n  - name: orders-out\n    direction: outbound\n"

	cases := []struct {
		name   string
		args   []string
		config string   // YAML
		want   []string // in the last line
	}{
		{name: "malformed YAML", config: "bridges:\n  - name: [orders\n", want: []string{"config file", "yaml"}},
		{name: "no bridges", config: "store:\n  stream: EVENTS\n", want: []string{"no bridges to run", "has no bridges section", "examples/bridges"}},
		{name: "an unknown key in a bridge", config: head + "    broker: rabbitmq\n    exchange: orders\n",
			want: []string{"bridges[0](orders-out).exchange", "is not a bridge setting", "settings"}},
		{name: "an unknown broker", config: head + "    broker: rabbit\n",
			want: []string{"bridges[0](orders-out).broker", `"rabbit"`, "use one of", "kafka", "rabbitmq"}},
		{name: "an inbound bridge without subject", config: "bridges:\n  - name: pay-in\n    direction: inbound\n    broker: kafka\n",
			want: []string{"bridges[0](pay-in).subject", "is empty"}},
		{name: "a misspelt broker setting", config: embeddedNATS + head + "    broker: rabbitmq\n    settings:\n      exchnge: orders\n",
			want: []string{"bridges[0](orders-out)", "unknown key(s) exchnge", "use only"}},
		{name: "RabbitMQ unreachable", config: embeddedNATS + head + "    broker: rabbitmq\n    connect_timeout: 1s\n    settings:\n      url: amqp://app:s3cret@" + closedAddr + "/\n",
			want: []string{"bridges[0](orders-out)", "rabbitmq does not answer within 1s", closedAddr, "connect_timeout", "[redacted]"}},
		{name: "NATS unreachable", args: []string{"--nats-url", "nats://" + closedAddr}, config: head + "    broker: rabbitmq\n",
			want: []string{closedAddr, "--nats-url"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bridges.yaml")
			if err := os.WriteFile(path, []byte(c.config), 0o600); err != nil {
				t.Fatal(err)
			}
			args := append([]string{"bridge", "--config", path}, c.args...)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, args...)
			cmd.Env = append(os.Environ(), "LEXIGRAM_CONFIG=")
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			text := out.String()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("want exit 1, got %v\n%s", err, text)
			}
			if strings.Contains(text, "panic") || strings.Contains(text, "goroutine ") {
				t.Fatalf("it panicked:\n%s", text)
			}
			lines := strings.Split(strings.TrimSpace(text), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "lexigram: ") {
				t.Fatalf("the last line is not the error:\n%s", text)
			}
			for _, w := range c.want {
				if !strings.Contains(last, w) {
					t.Errorf("the error lacks %q:\n%s", w, last)
				}
			}
			if strings.Contains(text, "s3cret") {
				t.Errorf("the output shows a password:\n%s", text)
			}
		})
	}
}

// TestBridgeStartFailureStopsTheOthers: when the second bridge cannot
// start, the first, already running, is stopped again.
func TestBridgeStartFailureStopsTheOthers(t *testing.T) {
	srv := embeddedtest.Server(t)
	js, err := jetstream.New(embeddedtest.Conn(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	appendOrders(t, js, 1, 1)
	topic := "fail-" + platform.NewEventID()
	bad := memoryBridge("second", topic)
	bad.Settings = map[string]string{"topic": topic, "colour": "red"}
	m := bridges.NewMetrics()
	set, err := bridgeconfig.Start(t.Context(), js, []config.Bridge{memoryBridge("first", topic), bad},
		bridgeconfig.Options{Store: config.Default().Store, Metrics: m, Logger: quietLog()})
	if err == nil {
		_ = set.Stop(t.Context())
		t.Fatal("Start accepted a bridge with an unknown setting")
	}
	if !strings.Contains(err.Error(), "bridges[1](second)") || !strings.Contains(err.Error(), "colour") {
		t.Errorf("error = %v, want it to name bridges[1](second) and the key", err)
	}
	if _, err := js.Consumer(t.Context(), "EVENTS", "first"); err != nil {
		t.Fatalf("the first bridge's consumer: %v: it should have started", err)
	}
	// A running bridge reports its connection; a stopped one no more.
	if n := testutil.CollectAndCount(m, "lexigram_bridge_broker_connected"); n != 0 {
		t.Errorf("%d bridges still report their connection after the failed start, want 0: the first was not stopped", n)
	}
}

// Every format the configuration accepts is one bridges parses.
func TestConfigFormatsParse(t *testing.T) {
	for _, f := range []string{"passthrough", "cloudevents-binary", "cloudevents-structured", "CloudEvents-Binary"} {
		c := config.Default()
		b := memoryBridge("x", "t")
		b.Format = f
		c.Bridges = []config.Bridge{b}
		if err := c.Validate(); err != nil {
			t.Errorf("config refuses format %q: %v", f, err)
		}
		if _, err := bridges.ParseFormat(f); err != nil {
			t.Errorf("bridges refuses format %q that config accepts: %v", f, err)
		}
	}
}
