package jetstream_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/embedded"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

const crashChildEnv = "LEXIGRAM_CRASH_CHILD_DIR"

// TestCrashRecovery runs the embedded server (fsync before ack) in a child
// process, appends from several writers, SIGKILLs the child in the middle,
// restarts it on the same data directory and checks that every
// acknowledged event is there.
func TestCrashRecovery(t *testing.T) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		runCrashChild(dir)
		return
	}
	dir := t.TempDir()
	ctx := context.Background()

	child, url := startCrashChild(t, dir)
	nc, err := nats.Connect(url, nats.NoReconnect())
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	st, err := lxjs.New(ctx, js, lxjs.Options{Registry: testRegistry()})
	if err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	acked := map[string]platform.StreamID{}
	var wg sync.WaitGroup
	started := make(chan struct{}, 4)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := platform.StreamID{Type: "order", ID: fmt.Sprint("writer-", w)}
			var rev platform.Revision
			for i := 0; ; i++ {
				n := 1 + i%3 // single events and small atomic batches
				evs := make([]platform.Envelope, n)
				for j := range evs {
					evs[j] = platform.Envelope{ID: platform.NewEventID(), Event: itemAdded{SKU: "s", Qty: i}}
				}
				res, err := st.Append(ctx, id, platform.ExactRevision(rev), evs)
				if err != nil {
					return // the server is gone
				}
				rev = res.Revision()
				mu.Lock()
				for _, e := range evs {
					acked[e.ID] = id
				}
				mu.Unlock()
				if i == 20 {
					started <- struct{}{}
				}
			}
		}()
	}
	for range 4 {
		<-started
	}
	if err := child.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = child.Wait()
	wg.Wait()
	nc.Close()

	_, url = startCrashChild(t, dir)
	nc, err = nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ = jetstream.New(nc)
	if st, err = lxjs.New(ctx, js, lxjs.Options{Registry: testRegistry()}); err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for w := 0; w < 4; w++ {
		id := platform.StreamID{Type: "order", ID: fmt.Sprint("writer-", w)}
		for i, e := range readStream(t, st, id) {
			if e.Version != uint64(i+1) {
				t.Fatalf("%s: event %d has version %d after the crash", id, i, e.Version)
			}
			stored[e.ID] = true
		}
	}
	for id, stream := range acked {
		if !stored[id] {
			t.Fatalf("acknowledged event %s of %s lost in the crash", id, stream)
		}
	}
	t.Logf("%d acknowledged events, %d stored after SIGKILL and restart", len(acked), len(stored))
}

// startCrashChild runs this test binary as a child that serves an embedded
// server on dir and prints its URL.
func startCrashChild(t *testing.T, dir string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashRecovery$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if url, ok := strings.CutPrefix(sc.Text(), "URL "); ok {
				lines <- url
			}
		}
		close(lines)
	}()
	select {
	case url, ok := <-lines:
		if !ok {
			t.Fatal("the child server exited before printing its URL")
		}
		return cmd, url
	case <-time.After(20 * time.Second):
		t.Fatal("the child server did not start within 20s")
	}
	return nil, ""
}

func runCrashChild(dir string) {
	s, err := embedded.Start(context.Background(), embedded.Options{Port: embedded.RandomPort, DataDir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(2)
	}
	if s.Durability() != "fsync before ack" {
		fmt.Fprintln(os.Stderr, "crash child: durability is", s.Durability())
		os.Exit(2)
	}
	fmt.Println("URL " + s.ClientURL())
	select {} // until SIGKILL
}
