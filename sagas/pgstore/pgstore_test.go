package pgstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lexigram/events/internal/pgtest"
	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/sagas"
	"github.com/lexigram/events/sagas/pgstore"
	"github.com/lexigram/events/sagas/sagatest"
)

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// schema returns a fresh schema name starting with prefix, which the
// test's store creates, and drops the schema when the test ends.
func schema(t testing.TB, pool *pgxpool.Pool, prefix string) string {
	t.Helper()
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	name := prefix + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", name, err)
		}
	})
	return name
}

// pgEnv is a store in a schema of its own, with the pool to look past it.
type pgEnv struct {
	pool   *pgxpool.Pool
	store  *pgstore.Store
	schema string
	table  string // quoted
}

func newPGEnv(t testing.TB) pgEnv {
	t.Helper()
	pool := pgtest.Pool(t)
	sch := schema(t, pool, "lxs_")
	s, err := pgstore.New(testContext(t), pool, pgstore.Options{Schema: sch})
	if err != nil {
		t.Fatal(err)
	}
	return pgEnv{pool: pool, store: s, schema: sch, table: pgx.Identifier{sch, pgstore.DefaultTable}.Sanitize()}
}

// corruptRow writes a record that is JSON, as jsonb must be, but no
// instance.
func (e pgEnv) corruptRow(t testing.TB, id string) {
	t.Helper()
	tag, err := e.pool.Exec(testContext(t), "UPDATE "+e.table+` SET record = '"not an instance"' WHERE id = $1`, id)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("corrupt row %s: %v, %d rows", id, err, tag.RowsAffected())
	}
}

func TestStoreConformance(t *testing.T) {
	var envs sync.Map // *pgstore.Store → pgEnv
	sagatest.Run(t,
		func(t *testing.T) sagas.Store {
			env := newPGEnv(t)
			envs.Store(env.store, env)
			return env.store
		},
		func(t *testing.T, s sagas.Store, id string) {
			env, _ := envs.Load(s)
			env.(pgEnv).corruptRow(t, id)
		})
}

func TestRevisionsCountFromOne(t *testing.T) {
	env := newPGEnv(t)
	ctx := testContext(t)
	in, _, err := env.store.Create(ctx, sagas.Instance{ID: sagas.InstanceID("order-saga", "o-1"), Type: "order-saga", Key: "o-1", State: sagas.Started})
	if err != nil {
		t.Fatal(err)
	}
	if in.Revision != 1 {
		t.Fatalf("created at revision %d, want 1", in.Revision)
	}
	for want := uint64(2); want <= 4; want++ {
		rev, err := env.store.Save(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if rev != want {
			t.Fatalf("save at revision %d returned %d, want %d", in.Revision, rev, want)
		}
		in.Revision = rev
	}
}

// The columns beside the record hold what queries and the index need;
// Save moves the state and the revision but not the association.
func TestColumns(t *testing.T) {
	env := newPGEnv(t)
	ctx := testContext(t)
	in, _, err := env.store.Create(ctx, sagas.Instance{ID: sagas.InstanceID("order-saga", "o-1"), Type: "order-saga", Key: "o-1", State: sagas.Started})
	if err != nil {
		t.Fatal(err)
	}
	in.State, in.Key = sagas.Completed, "changed"
	if _, err := env.store.Save(ctx, in); err != nil {
		t.Fatal(err)
	}
	var sagaType, key, state string
	var rev int64
	var created, updated time.Time
	err = env.pool.QueryRow(ctx, "SELECT type, key, state, revision, created, updated FROM "+env.table+" WHERE id = $1", in.ID).
		Scan(&sagaType, &key, &state, &rev, &created, &updated)
	if err != nil {
		t.Fatal(err)
	}
	if sagaType != "order-saga" || key != "o-1" || state != "COMPLETED" || rev != 2 || updated.Before(created) {
		t.Errorf("row: type %q, key %q, state %q, revision %d, created %v, updated %v; want order-saga, o-1, COMPLETED, 2, updated not before created",
			sagaType, key, state, rev, created, updated)
	}
	var collation string
	err = env.pool.QueryRow(ctx, "SELECT collation_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 AND column_name = 'id'",
		env.schema, pgstore.DefaultTable).Scan(&collation)
	if err != nil || collation != "C" {
		t.Errorf("id column collation %q (%v), want C: List's order and After are by byte", collation, err)
	}
}

// A row whose record does not decode is listed by what its columns say.
func TestCorruptRowListsByItsColumns(t *testing.T) {
	env := newPGEnv(t)
	ctx := testContext(t)
	bad, _, err := env.store.Create(ctx, sagas.Instance{ID: sagas.InstanceID("order-saga", "o-1"), Type: "order-saga", Key: "o-1", State: sagas.Running})
	if err != nil {
		t.Fatal(err)
	}
	env.corruptRow(t, bad.ID)
	for _, c := range []struct {
		q    sagas.Query
		want int
	}{
		{sagas.Query{Type: "order-saga", States: []sagas.State{sagas.Running}}, 1},
		{sagas.Query{Type: "other-saga"}, 0},
		{sagas.Query{States: []sagas.State{sagas.Completed}}, 0},
	} {
		got, err := env.store.List(ctx, c.q)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != c.want || c.want == 1 && (got[0].State != sagas.Parked || got[0].Type != "order-saga") {
			t.Errorf("list %+v: got %+v, want %d parked instance(s) of type order-saga", c.q, got, c.want)
		}
	}
}

func TestQuotedNames(t *testing.T) {
	pool := pgtest.Pool(t)
	ctx := testContext(t)
	sch := schema(t, pool, `lxs "odd"; `)
	table := `sagas"; DROP TABLE x; --`
	s, err := pgstore.New(ctx, pool, pgstore.Options{Schema: sch, Table: table})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Create(ctx, sagas.Instance{ID: sagas.InstanceID("order-saga", "o-1"), Type: "order-saga", Key: "o-1"}); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{sch, table}.Sanitize()).Scan(&n); err != nil || n != 1 {
		t.Errorf("the table named %q holds %d rows (%v), want 1", table, n, err)
	}
}

func TestNewRefuses(t *testing.T) {
	pool := pgtest.Pool(t)
	ctx := testContext(t)
	if _, err := pgstore.New(ctx, nil, pgstore.Options{}); !errors.Is(err, platform.ErrInvalidArgument) {
		t.Errorf("nil pool: got %v, want ErrInvalidArgument", err)
	}
	if _, err := pgstore.New(ctx, pool, pgstore.Options{Schema: strings.Repeat("s", 64)}); !errors.Is(err, platform.ErrInvalidArgument) {
		t.Errorf("64-byte schema name: got %v, want ErrInvalidArgument", err)
	}
	if _, err := pgstore.New(ctx, pool, pgstore.Options{Table: strings.Repeat("t", 50)}); !errors.Is(err, platform.ErrInvalidArgument) {
		t.Errorf("50-byte table name: got %v, want ErrInvalidArgument", err)
	}

	sch := schema(t, pool, "lxs_")
	if _, err := pool.Exec(ctx, "CREATE SCHEMA "+sch+"; CREATE TABLE "+sch+".lexigram_sagas (id text PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	_, err := pgstore.New(ctx, pool, pgstore.Options{Schema: sch})
	if !errors.Is(err, platform.ErrConfigConflict) || !strings.Contains(err.Error(), sch+".lexigram_sagas") || !strings.Contains(err.Error(), "Options.Table") {
		t.Errorf("a table of another shape: got %v, want ErrConfigConflict naming the table and Options.Table", err)
	}
}

// Processes starting together all set up the one table.
func TestConcurrentNew(t *testing.T) {
	pool := pgtest.Pool(t)
	ctx := testContext(t)
	sch := schema(t, pool, "lxs_")
	const n = 8
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, err := pgstore.New(ctx, pool, pgstore.Options{Schema: sch})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent New: %v", err)
		}
	}
	s, err := pgstore.New(ctx, pool, pgstore.Options{Schema: sch})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Create(ctx, sagas.Instance{ID: sagas.InstanceID("order-saga", "o-1"), Type: "order-saga", Key: "o-1"}); err != nil {
		t.Fatal(err)
	}
}

func TestNULRefused(t *testing.T) {
	env := newPGEnv(t)
	ctx := testContext(t)
	for _, in := range []sagas.Instance{
		{ID: sagas.InstanceID("order-saga", "o-1"), Type: "order-saga", Key: "o-1", Error: "a\x00b"},
		{ID: sagas.InstanceID("order-saga", "o-2"), Type: "order-saga", Key: "o-2", Data: []byte(`{"s":"\u0000"}`)},
	} {
		_, _, err := env.store.Create(ctx, in)
		if !errors.Is(err, platform.ErrInvalidArgument) || !strings.Contains(err.Error(), "NUL") {
			t.Errorf("create %s with a NUL character: got %v, want ErrInvalidArgument saying so", in.ID, err)
		}
	}
}
