package bench

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/kvsnapshot"
	"github.com/lexigram/events/platform"
)

const (
	loadEvents     = 1000
	loadSnapshotAt = 990
	loadNeighbours = 9   // other aggregates whose events interleave with the loaded one
	preloadBatch   = 100 // events per append when preloading
)

// load times reading one 1,000-event aggregate that lives among 9,900
// events of other aggregates, and loading it through a repository with and
// without a snapshot at version 990.
func (r *runner) load(ctx context.Context, e *env) ([]Figure, error) {
	st, done, err := r.newStore(ctx, e, jetstream.FileStorage)
	if err != nil {
		return nil, err
	}
	defer done()
	r.seq++
	bucket := fmt.Sprintf("lxbench_%s_%d", r.runID, r.seq)
	snaps, err := kvsnapshot.NewSnapshotStore(ctx, e.js, kvsnapshot.SnapshotOptions{Bucket: bucket})
	if err != nil {
		return nil, fmt.Errorf("create snapshot bucket: %w", err)
	}
	defer r.deleteStream(e, "KV_"+bucket)
	withSnap := platform.NewRepository(st, newAccount, platform.RepositoryOptions{
		Snapshots: snaps, SnapshotPolicy: platform.SnapshotPolicy{EveryEvents: -1}, Logger: r.log,
	})
	without := platform.NewRepository(st, newAccount, platform.RepositoryOptions{Logger: r.log})

	target := streamID(0)
	stored, err := r.preloadTarget(ctx, st, withSnap, snaps, target)
	if err != nil {
		return nil, err
	}
	subject, err := st.Subject(target)
	if err != nil {
		return nil, err
	}

	read := func(ctx context.Context) error {
		n := 0
		for _, err := range st.Read(ctx, target, platform.Revision{}) {
			if err != nil {
				return err
			}
			n++
		}
		return expectCount("Read", n, loadEvents)
	}
	getBatch := func(ctx context.Context) error {
		n, err := rawLoad(ctx, e.js, st.StreamName(), subject)
		if err != nil {
			return err
		}
		return expectCount("GetBatch", n, loadEvents)
	}
	repoLoad := func(repo *platform.Repository[*Account]) op {
		return func(ctx context.Context) error {
			a, err := repo.Load(ctx, target.ID)
			if err != nil {
				return err
			}
			return expectCount("Repository.Load version", int(a.Version()), loadEvents)
		}
	}
	ops := []op{read, getBatch, repoLoad(withSnap), repoLoad(without)}
	names := []string{"ours Read", "raw GetBatch", "load with snapshot", "load without snapshot"}
	times := make([][]time.Duration, len(ops))
	for i := -1; i < r.plan.loads; i++ { // i == -1 warms up
		order := []int{0, 1, 2, 3}
		if i%2 == 1 {
			order = []int{1, 0, 3, 2}
		}
		for _, k := range order {
			t := time.Now()
			if err := ops[k](ctx); err != nil {
				return nil, fmt.Errorf("%s: %w", names[k], err)
			}
			if i >= 0 {
				times[k] = append(times[k], time.Since(t))
			}
		}
	}
	med := func(k int) float64 { return ms(percentile(slices.Sorted(slices.Values(times[k])), 50)) }
	return []Figure{
		{Name: "load.1000", Ours: med(0), Raw: med(1), Unit: "ms", Target: "<= 1.25",
			Note: fmt.Sprintf("median of %d loads, alternating; one aggregate's %d events among %d; ours decodes every event, raw (GetBatch pages of 1000) does not; lower is better",
				r.plan.loads, loadEvents, stored)},
		{Name: "load.1000.snapshot", Ours: med(2), Raw: med(3), Unit: "ms", Target: "<= 0.10",
			Note: fmt.Sprintf("Repository.Load with a kvsnapshot (JetStream KV) snapshot at version %d, then %d events, vs the same load without snapshots; median of %d; lower is better",
				loadSnapshotAt, loadEvents-loadSnapshotAt, r.plan.loads)},
	}, nil
}

// preloadTarget writes the target's 1,000 events in batches, each followed
// by a batch for every neighbour, and snapshots the target at version 990.
// It returns how many events the stream holds.
func (r *runner) preloadTarget(ctx context.Context, st *lxjs.EventStore, repo *platform.Repository[*Account], snaps platform.SnapshotStore, target platform.StreamID) (int, error) {
	revs := make([]platform.Revision, 1+loadNeighbours)
	stored := 0
	add := func(i, n int) error {
		id := streamID(i)
		res, err := st.Append(ctx, id, platform.ExactRevision(revs[i]), events(id.ID, n))
		if err != nil {
			return fmt.Errorf("preload %s: %w", id, err)
		}
		revs[i] = res.Revision()
		stored += n
		return nil
	}
	sizes := []int{100, 100, 100, 100, 100, 100, 100, 100, 100, 90, loadEvents - loadSnapshotAt}
	for _, n := range sizes {
		if err := add(0, n); err != nil {
			return 0, err
		}
		if revs[0].Version == loadSnapshotAt {
			a, err := repo.Load(ctx, target.ID)
			if err == nil {
				err = repo.Snapshot(ctx, a)
			}
			if err != nil {
				return 0, fmt.Errorf("snapshot %s at version %d: %w", target, loadSnapshotAt, err)
			}
		}
		for i := 1; i <= loadNeighbours; i++ {
			if err := add(i, preloadBatch); err != nil {
				return 0, err
			}
		}
	}
	s, ok, err := snaps.LoadSnapshot(ctx, target)
	if err == nil && (!ok || s.Revision.Version != loadSnapshotAt) {
		err = fmt.Errorf("found %v at version %d", ok, s.Revision.Version)
	}
	if err != nil {
		return 0, fmt.Errorf("check the snapshot of %s: %w", target, err)
	}
	return stored, nil
}

// rawLoad reads a subject's messages as the store does, in pages of 1000
// batched direct gets, without decoding them.
func rawLoad(ctx context.Context, js jetstream.JetStream, stream, subject string) (int, error) {
	n, start := 0, uint64(1)
	for {
		page, err := jetstreamext.GetBatch(ctx, js, stream, 1000, jetstreamext.GetBatchSeq(start), jetstreamext.GetBatchSubject(subject))
		if err != nil {
			return n, err
		}
		more := false
		for m, err := range page {
			if errors.Is(err, jetstreamext.ErrNoMessages) {
				return n, nil
			}
			if err != nil {
				return n, err
			}
			n++
			start = m.Sequence + 1
			more = m.Header.Get("Nats-Num-Pending") != "0"
		}
		if !more {
			return n, nil
		}
	}
}

func expectCount(what string, got, want int) error {
	if got != want {
		return fmt.Errorf("%s gave %d, want %d", what, got, want)
	}
	return nil
}

func (r *runner) readAllName() string {
	if r.opts.Quick {
		return "readall.100k"
	}
	return "readall.1m"
}

// readAll times ReadAll over a preloaded stream against an ordered consumer.
func (r *runner) readAll(ctx context.Context, e *env) ([]Figure, error) {
	name, total := r.readAllName(), r.plan.readAllN
	st, done, err := r.newStore(ctx, e, jetstream.FileStorage)
	if err != nil {
		return nil, err
	}
	defer done()
	began := time.Now()
	if err := r.preload(ctx, e, st, name, total); err != nil {
		return nil, err
	}
	preloadTook := time.Since(began)
	stream, err := e.js.Stream(ctx, st.StreamName())
	if err != nil {
		return nil, err
	}

	ours := func(ctx context.Context) error {
		n := 0
		for _, err := range st.ReadAll(ctx, 0) {
			if err != nil {
				return err
			}
			n++
		}
		return expectCount("ReadAll", n, total)
	}
	raw := func(ctx context.Context) error {
		n, err := rawReadAll(ctx, stream)
		if err != nil {
			return err
		}
		return expectCount("ordered consumer", n, total)
	}
	o, w, err := alternateRates(ctx, r.plan.readAllRounds, total, ours, raw)
	if err != nil {
		return nil, err
	}
	return []Figure{{
		Name: name, Ours: median(o), Raw: median(w), Ratio: pairedRatio(o, w), Unit: "events/s", Target: ">= 0.80",
		Note: fmt.Sprintf("%d events in %d aggregates, preloaded in %.0fs with the store's headers; median of %d alternating reads; ours decodes every event, raw is an ordered consumer's Messages() with PullMaxMessages(2000) as the store uses, no decoding",
			total, max(1, total/loadEvents), preloadTook.Seconds(), r.plan.readAllRounds),
	}}, nil
}

// versionHeader is the store's header for an event's version, which the
// preload sets itself; the preload checks it is there.
const versionHeader = "Lx-Version"

// preload writes total events to 1,000-event aggregates, interleaved: the
// first through the store, the rest with async publishes carrying the
// headers the store wrote on the first (with their own ID and version),
// so ReadAll reads what the store would have written, many times faster
// than 100-event appends (an R1 file stream stages each atomic batch on
// disk). It reports every 10%.
func (r *runner) preload(ctx context.Context, e *env, st *lxjs.EventStore, name string, total int) error {
	return r.preloadSpread(ctx, e, st, name, total, max(1, total/loadEvents), false)
}

// preloadSpread is preload over the given number of aggregates, round
// robin. With dedupe each event also carries its ID in Nats-Msg-Id, as
// the store's appends that expect any version do, so the server keeps it
// for the duplicate window.
func (r *runner) preloadSpread(ctx context.Context, e *env, st *lxjs.EventStore, name string, total, aggregates int, dedupe bool) error {
	subjects, bodies := make([]string, aggregates), make([][]byte, aggregates)
	for a := range aggregates {
		var err error
		if subjects[a], err = st.Subject(streamID(a)); err != nil {
			return err
		}
		if bodies[a], err = platform.Msgpack.Marshal(deposit(accountID(a))); err != nil {
			return err
		}
	}
	first := streamID(0)
	if _, err := st.Append(ctx, first, platform.NoStream(), events(first.ID, 1)); err != nil {
		return fmt.Errorf("preload: %w", err)
	}
	stream, err := e.js.Stream(ctx, st.StreamName())
	if err != nil {
		return err
	}
	stored, err := stream.GetLastMsgForSubject(ctx, subjects[0])
	if err != nil {
		return fmt.Errorf("preload: read the first event back: %w", err)
	}
	template := nats.Header{}
	for k, v := range stored.Header {
		if !strings.HasPrefix(k, "Nats-") { // the server's own, added on the way out
			template[k] = v
		}
	}
	if template.Get(versionHeader) != "1" {
		return fmt.Errorf("preload: the store no longer writes the version in %s (it wrote %v): update bench.preload", versionHeader, stored.Header)
	}
	// Each event carries the hash of its aggregate's previous one, as the
	// store would have written it.
	firstEvent, err := lxjs.StoredEventOf(stored.Sequence, stored.Header, stored.Data)
	if err != nil {
		return fmt.Errorf("preload: %w", err)
	}
	prevs := make([]string, aggregates)
	prevs[0] = firstEvent.Hash()

	var failed atomic.Pointer[error]
	js, err := jetstream.New(e.nc, jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
		failed.CompareAndSwap(nil, &err)
	}))
	if err != nil {
		return err
	}
	step := max(1, total/10)
	for i := 1; i < total; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if p := failed.Load(); p != nil {
			return fmt.Errorf("preload: %w", *p)
		}
		a, version := i%aggregates, i/aggregates+1
		h := maps.Clone(template)
		h[lxjs.IDHeader] = []string{platform.NewEventID()}
		if dedupe {
			h[jetstream.MsgIDHeader] = h[lxjs.IDHeader]
		}
		h[versionHeader] = []string{strconv.Itoa(version)}
		h[lxjs.PrevHeader] = []string{prevs[a]}
		prevs[a] = platform.ChainHash(prevs[a], h[lxjs.IDHeader][0], firstEvent.Type, firstEvent.SchemaVersion, uint64(version), bodies[a])
		if _, err := js.PublishMsgAsync(&nats.Msg{Subject: subjects[a], Header: h, Data: bodies[a]}, jetstream.WithStallWait(time.Minute)); err != nil {
			return fmt.Errorf("preload: %w", err)
		}
		if (i+1)%step == 0 {
			r.progress("%s: preloaded %d of %d events (%d%%)", name, i+1, total, 100*(i+1)/total)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return ctx.Err()
	}
	if p := failed.Load(); p != nil {
		return fmt.Errorf("preload: %w", *p)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return err
	}
	if info.State.Msgs != uint64(total) {
		return fmt.Errorf("preload: the stream holds %d events, want %d", info.State.Msgs, total)
	}
	return nil
}

// rawReadAll reads every message of the stream with an ordered consumer
// up to the last sequence when it starts.
func rawReadAll(ctx context.Context, stream jetstream.Stream) (int, error) {
	info, err := stream.Info(ctx)
	if err != nil {
		return 0, err
	}
	last := info.State.LastSeq
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: info.Config.Subjects})
	if err != nil {
		return 0, err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(2000))
	if err != nil {
		return 0, err
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	n := 0
	for {
		msg, err := it.Next()
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		if err != nil {
			return n, err
		}
		md, err := msg.Metadata()
		if err != nil {
			return n, err
		}
		n++
		if md.Sequence.Stream >= last {
			return n, nil
		}
	}
}

// alternateRates runs ours and raw rounds times each, alternating which
// goes first, and returns each side's rate of total items per second.
func alternateRates(ctx context.Context, rounds, total int, ours, raw op) (o, w []float64, err error) {
	for i := range rounds {
		sides := []struct {
			name string
			f    op
			out  *[]float64
		}{{"ours", ours, &o}, {"raw", raw, &w}}
		if i%2 == 1 {
			slices.Reverse(sides)
		}
		for _, s := range sides {
			t := time.Now()
			if err := s.f(ctx); err != nil {
				return nil, nil, fmt.Errorf("%s, round %d: %w", s.name, i+1, err)
			}
			*s.out = append(*s.out, float64(total)/time.Since(t).Seconds())
		}
	}
	return o, w, nil
}
