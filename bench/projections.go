package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/kvsnapshot"
	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/projections"
	"github.com/lexigram/events/projections/pgmodel"
)

// projectionJobs lists the figures of projections (issue 4).
func (r *runner) projectionJobs() []job {
	plain := envNoFsync
	if r.opts.NATSURL != "" {
		plain = envExternal
	}
	return []job{
		{names: []string{"projection.catchup"}, env: plain, run: r.projectionCatchUp},
		{names: []string{"projection.postgres"}, env: plain, run: r.projectionPostgres},
		{names: []string{"projection.command-to-read.p50", "projection.command-to-read.p99"}, env: plain, run: r.commandToRead},
	}
}

// catchUpEvents is the size of the catch-up figure's history.
func (r *runner) catchUpEvents() int {
	if r.opts.Quick {
		return 100_000
	}
	return 1_000_000
}

// projectionManager returns a manager on st with checkpoints in a bucket
// of this run; done deletes the bucket.
func (r *runner) projectionManager(ctx context.Context, e *env, st *lxjs.EventStore, opts projections.Options) (*projections.Manager, func(), error) {
	r.seq++
	bucket := fmt.Sprintf("lxbench_cp_%s_%d", r.runID, r.seq)
	cps, err := kvsnapshot.NewCheckpointStore(ctx, e.js, kvsnapshot.CheckpointOptions{Bucket: bucket})
	if err != nil {
		return nil, nil, fmt.Errorf("create checkpoint bucket: %w", err)
	}
	opts.Checkpoints, opts.Logger = cps, r.log
	m, err := projections.New(st, opts)
	if err != nil {
		return nil, nil, err
	}
	return m, func() { r.deleteStream(e, "KV_"+bucket) }, nil
}

// runProjection registers p, starts it and returns how long it took to
// apply through position last.
func runProjection(ctx context.Context, m *projections.Manager, p projections.Projection, last uint64) (time.Duration, error) {
	if err := m.Register(p); err != nil {
		return 0, err
	}
	began := time.Now()
	if err := m.Start(ctx, p.Name); err != nil {
		return 0, err
	}
	defer func() { _ = m.Stop(context.WithoutCancel(ctx), p.Name) }()
	if err := m.WaitFor(ctx, p.Name, last); err != nil {
		return 0, err
	}
	return time.Since(began), nil
}

// projectionCatchUp times a no-op projection catching up over a preloaded
// stream against a raw ordered consumer reading it.
func (r *runner) projectionCatchUp(ctx context.Context, e *env) ([]Figure, error) {
	total := r.catchUpEvents()
	st, done, err := r.newStore(ctx, e, jetstream.FileStorage)
	if err != nil {
		return nil, err
	}
	defer done()
	began := time.Now()
	if err := r.preload(ctx, e, st, "projection.catchup", total); err != nil {
		return nil, err
	}
	preloadTook := time.Since(began)
	stream, err := e.js.Stream(ctx, st.StreamName())
	if err != nil {
		return nil, err
	}
	state, err := st.State(ctx)
	if err != nil {
		return nil, err
	}
	m, mdone, err := r.projectionManager(ctx, e, st, projections.Options{CheckpointInterval: 1000})
	if err != nil {
		return nil, err
	}
	defer mdone()
	noop := projections.HandlerFunc(func(context.Context, projections.Generation, platform.Envelope) error { return nil })

	round := 0
	ours := func(ctx context.Context) (float64, error) {
		round++
		took, err := runProjection(ctx, m, projections.Projection{Name: fmt.Sprintf("catchup%d", round), Handler: noop}, state.LastPosition)
		if err != nil {
			return 0, err
		}
		return float64(total) / took.Seconds(), nil
	}
	raw := func(ctx context.Context) (float64, error) {
		t := time.Now()
		n, err := rawReadAll(ctx, stream)
		if err != nil {
			return 0, err
		}
		if err := expectCount("ordered consumer", n, total); err != nil {
			return 0, err
		}
		return float64(total) / time.Since(t).Seconds(), nil
	}
	o, w, err := alternateRounds(ctx, r.plan.readAllRounds, ours, raw)
	if err != nil {
		return nil, err
	}
	return []Figure{{
		Name: "projection.catchup", Ours: median(o), Raw: median(w), Ratio: pairedRatio(o, w), Unit: "events/s", Target: ">= 0.70",
		Note: fmt.Sprintf("a no-op Handler projection from position 0 to the head of %d events (preloaded in %.0fs), checkpoint every 1,000 events in a JetStream KV bucket, default batch size; against a raw ordered consumer's Messages() (PullMaxMessages 2000) without decoding; ratio: median of %d alternating rounds' ratios (rounds: ours %s, raw %s)",
			total, preloadTook.Seconds(), r.plan.readAllRounds, spread(o, 1), spread(w, 1)),
	}}, nil
}

// alternateRounds runs ours and raw in turn, swapping which goes first
// every round.
func alternateRounds(ctx context.Context, rounds int, ours, raw func(context.Context) (float64, error)) (o, w []float64, err error) {
	for i := range rounds {
		sides := []struct {
			name string
			f    func(context.Context) (float64, error)
			out  *[]float64
		}{{"ours", ours, &o}, {"raw", raw, &w}}
		if i%2 == 1 {
			slices.Reverse(sides)
		}
		for _, s := range sides {
			v, err := s.f(ctx)
			if err != nil {
				return nil, nil, fmt.Errorf("%s, round %d: %w", s.name, i+1, err)
			}
			*s.out = append(*s.out, v)
		}
	}
	return o, w, nil
}

// postgresURL is the bench's database: LEXIGRAM_BENCH_POSTGRES, or the
// local server with trust auth.
func postgresURL() string {
	if u := os.Getenv("LEXIGRAM_BENCH_POSTGRES"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// upsertInto is the figure's statement on a table.
func upsertInto(table string) string {
	return "INSERT INTO " + table + ` AS b (account, deposits, balance) VALUES ($1, 1, $2)
	ON CONFLICT (account) DO UPDATE SET deposits = b.deposits + 1, balance = b.balance + excluded.balance`
}

// upsertBalance is the model's: the search_path names the generation.
var upsertBalance = upsertInto("balances")

// balances is the postgres figure's read model: one upsert per deposit.
type balances struct{}

func (balances) Tables() []string { return []string{"balances"} }

func (balances) Create(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, "CREATE TABLE balances (account text PRIMARY KEY, deposits bigint NOT NULL, balance bigint NOT NULL)")
	return err
}

func (balances) Apply(ctx context.Context, tx pgx.Tx, e platform.Envelope) error {
	d, ok := e.Event.(Deposited)
	if !ok {
		return fmt.Errorf("unexpected event %T", e.Event)
	}
	_, err := tx.Exec(ctx, upsertBalance, d.Account, d.Amount)
	return err
}

// projectionPostgres times a pgmodel projection upserting one row per
// event in transactions of batch_size against the same upserts sent with
// pgx directly in the same batches.
func (r *runner) projectionPostgres(ctx context.Context, e *env) ([]Figure, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	conn, err := pgx.Connect(cctx, postgresURL())
	cancel()
	if err != nil {
		r.progress("projection.postgres: skipped: PostgreSQL at %s is unreachable (%v); start it (.ci/run does) or set LEXIGRAM_BENCH_POSTGRES", postgresURL(), err)
		return nil, nil
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// Many short alternating rounds: PostgreSQL's commit times drift with
	// the machine's other load more than the difference measured.
	total, batch, rounds := 10_000, 100, 4
	if !r.opts.Quick {
		total, rounds = 30_000, 6
	}
	schema := "lxbench_" + r.runID
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		rows, err := conn.Query(dctx, "SELECT nspname FROM pg_namespace WHERE nspname = $1 OR nspname LIKE $1 || '\\_%'", schema)
		if err == nil {
			names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
			for _, n := range names {
				_, _ = conn.Exec(dctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{n}.Sanitize()+" CASCADE")
			}
		}
	}()
	st, done, err := r.newStore(ctx, e, jetstream.FileStorage)
	if err != nil {
		return nil, err
	}
	defer done()
	if err := r.preload(ctx, e, st, "projection.postgres", total); err != nil {
		return nil, err
	}
	state, err := st.State(ctx)
	if err != nil {
		return nil, err
	}
	// The raw side's upserts: the same deposits in the same order.
	var deposits []Deposited
	for ev, err := range st.ReadAll(ctx, 0) {
		if err != nil {
			return nil, err
		}
		deposits = append(deposits, ev.Event.(Deposited))
	}
	m, mdone, err := r.projectionManager(ctx, e, st, projections.Options{BatchSize: batch})
	if err != nil {
		return nil, err
	}
	defer mdone()

	round := 0
	ours := func(ctx context.Context) (float64, error) {
		round++
		name := fmt.Sprintf("pg%d", round)
		p, err := pgmodel.New(conn, name, balances{}, pgmodel.Options{Schema: schema})
		if err != nil {
			return 0, err
		}
		// Create the generation's table outside the timing, as the raw
		// side does.
		if err = p.Prepare(ctx, 1); err == nil {
			err = p.Activate(ctx, 1)
		}
		if err != nil {
			return 0, err
		}
		took, err := runProjection(ctx, m, projections.Projection{Name: name, Batch: p}, state.LastPosition)
		if err != nil {
			return 0, err
		}
		var n int64
		if err := conn.QueryRow(ctx, "SELECT sum(deposits) FROM "+p.View("balances")).Scan(&n); err != nil || n != int64(total) {
			return 0, fmt.Errorf("the read model counts %d deposits (%v), want %d", n, err, total)
		}
		return float64(total) / took.Seconds(), nil
	}
	raw := func(ctx context.Context) (float64, error) {
		round++
		s := pgx.Identifier{fmt.Sprintf("%s_raw%d", schema, round)}.Sanitize()
		for _, q := range []string{"CREATE SCHEMA " + s, "CREATE TABLE " + s + ".balances (account text PRIMARY KEY, deposits bigint NOT NULL, balance bigint NOT NULL)"} {
			if _, err := conn.Exec(ctx, q); err != nil {
				return 0, err
			}
		}
		// The same statement on a qualified table: no search_path to set.
		rawUpsert := upsertInto(s + ".balances")
		t := time.Now()
		for i := 0; i < len(deposits); i += batch {
			tx, err := conn.Begin(ctx)
			if err != nil {
				return 0, err
			}
			for _, d := range deposits[i:min(i+batch, len(deposits))] {
				if _, err := tx.Exec(ctx, rawUpsert, d.Account, d.Amount); err != nil {
					_ = tx.Rollback(ctx)
					return 0, err
				}
			}
			if err := tx.Commit(ctx); err != nil {
				return 0, err
			}
		}
		return float64(total) / time.Since(t).Seconds(), nil
	}
	o, w, err := alternateRounds(ctx, rounds, ours, raw)
	if err != nil {
		return nil, err
	}
	return []Figure{{
		Name: "projection.postgres", Ours: median(o), Raw: median(w), Ratio: pairedRatio(o, w), Unit: "events/s", Target: ">= 0.80",
		Note: fmt.Sprintf("%d deposits to %d accounts, one upsert per event in transactions of %d: a pgmodel projection catching up from the event store (reading, decoding, position stored in each transaction) against the same upserts sent with pgx in the same transactions from memory; one connection for both; tables created outside the timing; ratio: median of %d alternating rounds' ratios (rounds: ours %s, raw %s)",
			total, max(1, total/loadEvents), batch, rounds, spread(o, 1), spread(w, 1)),
	}}, nil
}

// commandToRead times an append followed by WaitFor on a live no-op
// projection, against the append alone.
func (r *runner) commandToRead(ctx context.Context, e *env) ([]Figure, error) {
	st, done, err := r.newStore(ctx, e, jetstream.FileStorage)
	if err != nil {
		return nil, err
	}
	defer done()
	m, mdone, err := r.projectionManager(ctx, e, st, projections.Options{})
	if err != nil {
		return nil, err
	}
	defer mdone()
	noop := projections.HandlerFunc(func(context.Context, projections.Generation, platform.Envelope) error { return nil })
	if err := m.Register(projections.Projection{Name: "read", Handler: noop}); err != nil {
		return nil, err
	}
	if err := m.Start(ctx); err != nil {
		return nil, err
	}
	defer func() { _ = m.Stop(context.WithoutCancel(ctx)) }()
	const aggregates = 100
	next := 0
	appendOne := func(ctx context.Context) (uint64, error) {
		id := streamID(next % aggregates)
		next++
		res, err := st.Append(ctx, id, platform.Any(), events(id.ID, 1))
		return res.LastPosition, err
	}
	ours := func(ctx context.Context) error {
		pos, err := appendOne(ctx)
		if err != nil {
			return err
		}
		return m.WaitFor(ctx, "read", pos)
	}
	raw := func(ctx context.Context) error {
		_, err := appendOne(ctx)
		return err
	}
	oRounds, wRounds, err := alternateTimed(ctx, r, ours, raw)
	if err != nil {
		return nil, err
	}
	o, w := slices.Concat(oRounds...), slices.Concat(wRounds...)
	if st, err := m.Status(ctx, "read"); err != nil || st.State != projections.Live {
		return nil, errors.Join(err, fmt.Errorf("the projection ended %s", st.State))
	}
	slices.Sort(o)
	slices.Sort(w)
	note := fmt.Sprintf("Append of one event, then WaitFor until a live no-op projection applied its position, against the append alone; %d and %d samples from %d alternating rounds of %.1fs; lower is better",
		len(o), len(w), r.plan.rounds, r.plan.latencyPhase.Seconds())
	return []Figure{
		{Name: "projection.command-to-read.p50", Ours: ms(percentile(o, 50)), Raw: ms(percentile(w, 50)), Unit: "ms", Note: note},
		{Name: "projection.command-to-read.p99", Ours: ms(percentile(o, 99)), Raw: ms(percentile(w, 99)), Unit: "ms", Note: note},
	}, nil
}
