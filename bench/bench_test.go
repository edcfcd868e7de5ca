package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/embedded"
	"github.com/lexigram/events/platform"
)

func TestRunLatency(t *testing.T) {
	var out bytes.Buffer
	figs, err := Run(t.Context(), Options{Quick: true, Filter: "append.latency.p50/nofsync", Out: &out})
	t.Log(out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(figs) != 1 || figs[0].Name != "append.latency.p50/nofsync" {
		t.Fatalf("want only append.latency.p50/nofsync, got %+v", figs)
	}
	f := figs[0]
	if f.Ours <= 0 || f.Raw <= 0 || f.Ratio != f.Ours/f.Raw || f.Unit != "ms" || f.Target == "" {
		t.Fatalf("bad figure %+v", f)
	}
	if !strings.Contains(out.String(), "start  append.latency") || !strings.Contains(out.String(), "done   append.latency.p50/nofsync") {
		t.Errorf("progress lacks start and done lines:\n%s", out.String())
	}
	b, err := json.Marshal(figs)
	if err != nil {
		t.Fatal(err)
	}
	var decoded []map[string]any
	if err := json.Unmarshal(b, &decoded); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"name", "ours", "raw", "unit", "ratio", "target", "note"} {
		if _, ok := decoded[0][k]; !ok {
			t.Errorf("JSON %s lacks key %q", b, k)
		}
	}
	var table bytes.Buffer
	WriteTable(&table, figs)
	if !strings.Contains(table.String(), "append.latency.p50/nofsync") {
		t.Errorf("table lacks the figure:\n%s", table.String())
	}
	t.Log("\n" + table.String())
}

func TestRunExternalServer(t *testing.T) {
	srv, err := embedded.Start(t.Context(), embedded.Options{Port: embedded.RandomPort, DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	figs, err := Run(t.Context(), Options{Quick: true, NATSURL: srv.ClientURL(), Filter: "append.latency.p50"})
	if err != nil {
		t.Fatal(err)
	}
	if len(figs) != 1 || figs[0].Name != "append.latency.p50/as-configured" || figs[0].Ours <= 0 || figs[0].Raw <= 0 {
		t.Fatalf("want append.latency.p50/as-configured, got %+v", figs)
	}
	// The bench leaves no streams behind on a server it did not start.
	js, err := jetstream.New(connect(t, srv.ClientURL()))
	if err != nil {
		t.Fatal(err)
	}
	for name := range js.StreamNames(t.Context()).Name() {
		t.Errorf("stream %s left behind", name)
	}
}

func connect(t *testing.T, url string) *nats.Conn {
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func TestRunFilterMatchesNothing(t *testing.T) {
	figs, err := Run(t.Context(), Options{Quick: true, Filter: "no such figure"})
	if err != nil || len(figs) != 0 {
		t.Fatalf("got %v, %v", figs, err)
	}
}

func TestEventBodySize(t *testing.T) {
	for _, i := range []int{0, 9, 9_999_999} {
		b, err := platform.Msgpack.Marshal(deposit(accountID(i)))
		if err != nil || len(b) != BodySize {
			t.Errorf("account %d: %d bytes, %v", i, len(b), err)
		}
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	for p, want := range map[float64]time.Duration{50: 50, 99: 99, 100: 100, 1: 1} {
		if got := percentile(d, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if got := percentile(d[:1], 99); got != 1 {
		t.Errorf("p99 of one = %v", got)
	}
	if median([]float64{3, 1, 2}) != 2 || median([]float64{1, 2, 3, 4}) != 2.5 {
		t.Error("median")
	}
}

func TestMet(t *testing.T) {
	for _, c := range []struct {
		f       Figure
		met, ok bool
	}{
		{Figure{Ratio: 0.95, Target: ">= 0.90"}, true, true},
		{Figure{Ratio: 0.85, Target: ">= 0.90"}, false, true},
		{Figure{Ratio: 1.2, Target: "<= 1.15"}, false, true},
		{Figure{Ratio: 0.05, Target: "<= 0.10"}, true, true},
		{Figure{Ratio: 1}, false, false},
	} {
		if met, ok := c.f.Met(); met != c.met || ok != c.ok {
			t.Errorf("%+v: got %v %v", c.f, met, ok)
		}
	}
}

// The whole bench, on demand:
//
//	go test ./bench/ -run TestBench -v -timeout 20m -lexbench quick   (or full)
var lexbench = flag.String("lexbench", "", `run the whole bench: "quick" or "full"; -lexbench-filter narrows it`)
var lexbenchFilter = flag.String("lexbench-filter", "", "run only figures whose name contains this")

func TestBench(t *testing.T) {
	if *lexbench == "" {
		t.Skip("run with -lexbench quick or -lexbench full")
	}
	began := time.Now()
	figs, err := Run(context.Background(), Options{Quick: *lexbench == "quick", Out: os.Stdout, Filter: *lexbenchFilter})
	var table bytes.Buffer
	WriteTable(&table, figs)
	t.Logf("%s run took %s\n%s", *lexbench, time.Since(began).Round(time.Second), table.String())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(figs, "", "  ")
	t.Logf("%s", b)
}

// TestRunGroupCommitSweep: a point of the sweep yields group commit on
// against off, in events/s and p99, each with its target.
func TestRunGroupCommitSweep(t *testing.T) {
	var out bytes.Buffer
	figs, err := Run(t.Context(), Options{Quick: true, Filter: "groupcommit.sweep.w4/", InProcess: true, Out: &out})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	names := map[string]Figure{}
	for _, f := range figs {
		names[f.Name] = f
	}
	for _, name := range []string{"groupcommit.sweep.w4/fsync", "groupcommit.sweep.w4/nofsync", "groupcommit.sweep.w4/mem", "groupcommit.sweep.w4/r3"} {
		f, ok := names[name]
		if !ok {
			t.Fatalf("no figure %s among %v", name, figs)
		}
		if f.Ours <= 0 || f.Raw <= 0 || f.Unit != "events/s" || f.Target != ">= 0.95" || !strings.Contains(f.Note, "switches between singles and groups") {
			t.Errorf("bad figure %+v", f)
		}
	}
	if len(figs) != 4 {
		t.Errorf("want the four rate figures the filter names, got %d: %v", len(figs), figs)
	}
}

// TestRunOptionsRefused: replicas without a cluster to put them on, and
// a storage that does not exist, are refused before anything starts.
func TestRunOptionsRefused(t *testing.T) {
	for _, c := range []struct {
		opts Options
		want string
	}{
		{Options{Replicas: 3}, "needs --nats-url"},
		{Options{Replicas: 7, NATSURL: "nats://127.0.0.1:4222"}, "use 1 to 5"},
		{Options{Storage: "disk"}, "use file or memory"},
	} {
		if _, err := Run(t.Context(), c.opts); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Run(%+v): %v, want an error containing %q", c.opts, err, c.want)
		}
	}
}
