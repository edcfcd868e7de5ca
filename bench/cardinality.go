package bench

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/embedded"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// cardinalityCase is one point of the subject cardinality sweep (issue
// 17): aggregates, events per aggregate, duplicate window.
type cardinalityCase struct {
	aggregates, each int
	window           time.Duration // 0: the server's default (2m)
}

// minDuplicateWindow is the smallest window the server accepts: "a
// window of zero" is this.
const minDuplicateWindow = 100 * time.Millisecond

func (c cardinalityCase) name() string {
	w := "window-2m"
	if c.window != 0 {
		w = "window-0"
	}
	return fmt.Sprintf("cardinality.%s.x%d/%s", count(c.aggregates), c.each, w)
}

func count(n int) string {
	if n%1_000_000 == 0 {
		return strconv.Itoa(n/1_000_000) + "m"
	}
	return strconv.Itoa(n/1000) + "k"
}

func cardinalityCases() []cardinalityCase {
	var cs []cardinalityCase
	for _, aggregates := range []int{100_000, 1_000_000} {
		for _, each := range []int{1, 10} {
			for _, window := range []time.Duration{0, minDuplicateWindow} {
				cs = append(cs, cardinalityCase{aggregates, each, window})
			}
		}
	}
	return cs
}

// cardinalityJobs: run with --filter cardinality (they take many
// minutes; never with --quick's sizes, which would say nothing).
func (r *runner) cardinalityJobs() []job {
	var jobs []job
	for _, c := range cardinalityCases() {
		n := c.name()
		jobs = append(jobs, job{names: []string{n + ".rss", n + ".append", n + ".load"}, env: envNoFsync, optIn: true,
			run: func(ctx context.Context, _ *env) ([]Figure, error) { return r.cardinality(ctx, c) }})
	}
	return jobs
}

// cardinality fills a server of its own with c's events (through
// async publishes with the store's headers, and each event's ID in
// Nats-Msg-Id, as appends expecting any version carry it) and measures
// the server's resident memory against the same server empty, appends
// through the store against raw publishes, and aggregate reads against a
// raw direct get, at that cardinality.
func (r *runner) cardinality(ctx context.Context, c cardinalityCase) ([]Figure, error) {
	e, emptyRSS, err := r.freshServer(ctx)
	if err != nil {
		return nil, err
	}
	defer e.close()
	st, done, err := r.newStore(ctx, e, jetstream.FileStorage, func(o *lxjs.Options) { o.DuplicateWindow = c.window })
	if err != nil {
		return nil, err
	}
	defer done()
	name := c.name()
	if err := r.preloadSpread(ctx, e, st, name, c.aggregates*c.each, c.aggregates, true); err != nil {
		return nil, err
	}
	rss, err := e.rss()
	if err != nil {
		return nil, err
	}
	appendOurs, appendRaw, err := r.cardinalityAppends(ctx, e, st, c)
	if err != nil {
		return nil, err
	}
	loadOurs, loadRaw, err := r.cardinalityLoads(ctx, e, st, c)
	if err != nil {
		return nil, err
	}
	what := fmt.Sprintf("%d aggregates of %d events (%d in all), duplicate window %s", c.aggregates, c.each, c.aggregates*c.each, windowText(c.window))
	return []Figure{
		{Name: name + ".rss", Ours: float64(rss) / (1 << 20), Raw: float64(emptyRSS) / (1 << 20), Unit: "MiB",
			Note: "the server's resident memory holding " + what + ", against the same server empty"},
		{Name: name + ".append", Ours: appendOurs, Raw: appendRaw, Unit: "appends/s",
			Note: "store.Append of one event at an exact version to existing aggregates from 32 writers (the chain cache cold: each append first reads the event it builds on, as after a restart), against a sync publish with the same headers, with " + what},
		{Name: name + ".load", Ours: loadOurs, Raw: loadRaw, Unit: "µs/read",
			Note: "store.Read of a random aggregate's whole history against a raw direct get of its last message, with " + what},
	}, nil
}

func windowText(w time.Duration) string {
	if w == 0 {
		return "2m (the default)"
	}
	return w.String() + " (the least the server accepts)"
}

// freshServer starts a server for one case only, so its memory is the
// case's, and returns its resident memory before anything is stored.
func (r *runner) freshServer(ctx context.Context) (*env, int64, error) {
	e := &env{label: "cardinality"}
	var err error
	if e.dir, err = os.MkdirTemp("", "lexigram-bench-cardinality-"); err != nil {
		return nil, 0, err
	}
	var url string
	if len(r.opts.ServerCommand) > 0 && !r.opts.InProcess {
		url, err = e.startChild(ctx, r.opts.ServerCommand, 2*time.Minute)
	} else {
		e.srv, err = embedded.Start(ctx, embedded.Options{Port: embedded.RandomPort, DataDir: e.dir, FsyncInterval: 2 * time.Minute, Logger: r.log})
		if err == nil {
			url = e.srv.ClientURL()
		}
	}
	if err == nil {
		e.nc, err = nats.Connect(url, nats.Name("lexigram bench"))
	}
	if err == nil {
		e.js, err = jetstream.New(e.nc)
	}
	if err != nil {
		e.close()
		return nil, 0, fmt.Errorf("bench: start a server for the cardinality figures: %w", err)
	}
	rss, err := e.rss()
	if err != nil {
		e.close()
		return nil, 0, err
	}
	return e, rss, nil
}

// rss is the server process's resident memory, from /proc: a server in
// this process has none of its own to tell (run with the lexigram binary,
// which starts servers as children).
func (e *env) rss() (int64, error) {
	if e.child == nil || e.child.Process == nil {
		return 0, fmt.Errorf("bench: the cardinality figures measure a server's memory, so they need servers in processes of their own: run them from the lexigram binary (lexigram bench --filter cardinality), not --in-process")
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", e.child.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("bench: read the server's memory: %w (the cardinality figures read /proc, as on Linux)", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if kb, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(kb), "kB")), 10, 64)
			return n << 10, err
		}
	}
	return 0, fmt.Errorf("bench: no VmRSS in /proc/%d/status", e.child.Process.Pid)
}

const cardinalityWriters = 32

// cardinalityAppends times 20,000 appends through the store, one event
// each at its exact version on aggregates no other writer touches, then
// as many sync publishes of the same headers to other aggregates.
func (r *runner) cardinalityAppends(ctx context.Context, e *env, st *lxjs.EventStore, c cardinalityCase) (ours, raw float64, err error) {
	const n = 20_000
	half := c.aggregates / 2
	perWriter := n / cardinalityWriters
	body, err := platform.Msgpack.Marshal(deposit(accountID(0)))
	if err != nil {
		return 0, 0, err
	}
	stream, err := e.js.Stream(ctx, st.StreamName())
	if err != nil {
		return 0, 0, err
	}
	first, err := st.Subject(streamID(0))
	if err != nil {
		return 0, 0, err
	}
	stored, err := stream.GetLastMsgForSubject(ctx, first) // the headers the store wrote
	if err != nil {
		return 0, 0, err
	}
	template := nats.Header{}
	for k, v := range stored.Header {
		if !strings.HasPrefix(k, "Nats-") {
			template[k] = v
		}
	}
	run := func(each func(w, i int) error) (float64, error) {
		began := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, cardinalityWriters)
		for w := range cardinalityWriters {
			wg.Go(func() {
				for i := range perWriter {
					if err := each(w, i); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		select {
		case err := <-errs:
			return 0, err
		default:
		}
		return float64(cardinalityWriters*perWriter) / time.Since(began).Seconds(), nil
	}
	// Writer w appends to aggregates w, w+32, ... of the first half, each
	// at most once per round, so no two writers meet and versions are known.
	ours, err = run(func(w, i int) error {
		a := (w + i*cardinalityWriters) % half
		_, err := st.Append(ctx, streamID(a), platform.Exact(uint64(c.each)), events(accountID(a), 1))
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("append: %w", err)
	}
	raw, err = run(func(w, i int) error {
		a := half + (w+i*cardinalityWriters)%(c.aggregates-half)
		subject, err := st.Subject(streamID(a))
		if err != nil {
			return err
		}
		h := nats.Header{}
		for k, v := range template {
			h[k] = v
		}
		h.Set(lxjs.IDHeader, platform.NewEventID())
		_, err = e.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Header: h, Data: body})
		return err
	})
	return ours, raw, err
}

// cardinalityLoads times 5,000 reads of random aggregates through the
// store, then as many direct gets of a random aggregate's last message.
func (r *runner) cardinalityLoads(ctx context.Context, e *env, st *lxjs.EventStore, c cardinalityCase) (ours, raw float64, err error) {
	const n = 5000
	stream, err := e.js.Stream(ctx, st.StreamName())
	if err != nil {
		return 0, 0, err
	}
	rng := rand.New(rand.NewPCG(1, uint64(c.aggregates)))
	picks := make([]int, n)
	for i := range picks {
		picks[i] = rng.IntN(c.aggregates)
	}
	time1 := func(each func(a int) error) (float64, error) {
		began := time.Now()
		for _, a := range picks {
			if err := each(a); err != nil {
				return 0, err
			}
		}
		return float64(time.Since(began).Microseconds()) / n, nil
	}
	ours, err = time1(func(a int) error {
		got := 0
		for _, err := range st.Read(ctx, streamID(a), platform.Revision{}) {
			if err != nil {
				return err
			}
			got++
		}
		if got < c.each {
			return fmt.Errorf("read %s: %d events, want at least %d", streamID(a), got, c.each)
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("load: %w", err)
	}
	raw, err = time1(func(a int) error {
		subject, err := st.Subject(streamID(a))
		if err != nil {
			return err
		}
		_, err = stream.GetLastMsgForSubject(ctx, subject)
		return err
	})
	return ours, raw, err
}
