package pgmodel

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/projections"
)

// DB is what a Projection needs of PostgreSQL: a *pgxpool.Pool, or a
// *pgx.Conn that nothing else uses (the projection then runs one
// transaction at a time, also while a rebuild runs next to the serving
// generation).
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Model is a read model kept in PostgreSQL tables. Its statements use
// unqualified table names: in every transaction the manager opens, the
// search_path is the schema of the generation being written.
type Model interface {
	// Tables names the tables readers query. Each becomes a view of the
	// same name in the reader schema, on the active generation's table.
	Tables() []string
	// Create creates the empty tables of a new generation.
	Create(ctx context.Context, tx pgx.Tx) error
	// Apply applies one event. It runs exactly once per event: the
	// position is stored in the same transaction, so plain INSERTs are
	// fine.
	Apply(ctx context.Context, tx pgx.Tx, e platform.Envelope) error
}

// DefaultCheckpointTable is the table of Options{} holding every
// projection's positions and active generation, in the reader schema.
const DefaultCheckpointTable = "lexigram_projections"

// Options configure New. The zero value works.
type Options struct {
	// Schema is where readers find the model's views and where the
	// checkpoint table lives. Default "public".
	Schema string
	// CheckpointTable is the table of positions. Default
	// DefaultCheckpointTable.
	CheckpointTable string
}

// Projection keeps a Model in PostgreSQL for a projections.Manager: it is
// a projections.BatchHandler (rows and position in one transaction) and
// projections.Generational (each generation in its own schema
// "<schema>_<name>_g<n>", readers on views swapped in one transaction).
// Register it as projections.Projection{Name: name, Batch: p}.
type Projection struct {
	db     DB
	name   string
	model  Model
	schema string
	ckpt   string // qualified, sanitized
	tables []string
	// serial is held around each transaction on a *pgx.Conn, which the
	// serving generation and a rebuild would otherwise use at once.
	serial *sync.Mutex
}

var (
	_ projections.BatchHandler = (*Projection)(nil)
	_ projections.Generational = (*Projection)(nil)
)

// maxIdent is PostgreSQL's identifier length.
const maxIdent = 63

// New returns the projection name's model in db. Name must be the name it
// is registered under.
func New(db DB, name string, model Model, opts Options) (*Projection, error) {
	if db == nil || model == nil {
		return nil, platform.Errorf(platform.CodeInvalidArgument, "pgmodel: projection %q: the database and the model must not be nil", name)
	}
	if opts.Schema == "" {
		opts.Schema = "public"
	}
	if opts.CheckpointTable == "" {
		opts.CheckpointTable = DefaultCheckpointTable
	}
	p := &Projection{db: db, name: name, model: model, schema: opts.Schema, tables: model.Tables()}
	if _, single := db.(*pgx.Conn); single {
		p.serial = &sync.Mutex{}
	}
	p.ckpt = pgx.Identifier{opts.Schema, opts.CheckpointTable}.Sanitize()
	if n := len(p.genSchema(1_000_000)); n > maxIdent {
		return nil, platform.Errorf(platform.CodeInvalidArgument,
			"pgmodel: projection %q in schema %q: generation schemas like %q would exceed PostgreSQL's %d-byte names: use a shorter schema or projection name",
			name, opts.Schema, p.genSchema(1), maxIdent)
	}
	if len(p.tables) == 0 {
		return nil, platform.Errorf(platform.CodeInvalidArgument, "pgmodel: projection %q: the model's Tables() is empty: name the tables readers query", name)
	}
	return p, nil
}

// genSchema is the schema of one generation.
func (p *Projection) genSchema(gen projections.Generation) string {
	return fmt.Sprintf("%s_%s_g%d", p.schema, strings.ToLower(p.name), gen)
}

// View returns the qualified, quoted name readers use for one of the
// model's tables, e.g. "public"."order_summary".
func (p *Projection) View(table string) string { return pgx.Identifier{p.schema, table}.Sanitize() }

// Setup creates the reader schema and the checkpoint table if they are
// missing. The manager calls it through Active; call it yourself to create
// them ahead of time.
func (p *Projection) Setup(ctx context.Context) error {
	return p.inTx(ctx, "set up", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{p.schema}.Sanitize()); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+p.ckpt+` (
			name        text        NOT NULL,
			generation  bigint      NOT NULL,
			position    bigint      NOT NULL DEFAULT 0,
			active      boolean     NOT NULL DEFAULT false,
			updated_at  timestamptz NOT NULL DEFAULT now(),
			PRIMARY KEY (name, generation))`)
		return err
	})
}

// Active returns the generation readers see, 0 if none.
func (p *Projection) Active(ctx context.Context) (projections.Generation, error) {
	if err := p.Setup(ctx); err != nil {
		return 0, err
	}
	var gen int64
	err := p.inTx(ctx, "read the active generation", func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT generation FROM "+p.ckpt+" WHERE name = $1 AND active", p.name).Scan(&gen)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return projections.Generation(gen), err
}

// Prepare creates an empty generation in a fresh schema, replacing one
// left over from an abandoned rebuild, with position 0.
func (p *Projection) Prepare(ctx context.Context, gen projections.Generation) error {
	if err := p.Setup(ctx); err != nil {
		return err
	}
	s := pgx.Identifier{p.genSchema(gen)}.Sanitize()
	return p.inTx(ctx, fmt.Sprintf("prepare generation %d", gen), func(tx pgx.Tx) error {
		var active bool
		err := tx.QueryRow(ctx, "SELECT active FROM "+p.ckpt+" WHERE name = $1 AND generation = $2 FOR UPDATE", p.name, int64(gen)).Scan(&active)
		if err == nil && active {
			return fmt.Errorf("generation %d is the active one: it cannot be prepared again", gen)
		}
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		for _, q := range []string{"DROP SCHEMA IF EXISTS " + s + " CASCADE", "CREATE SCHEMA " + s} {
			if _, err := tx.Exec(ctx, q); err != nil {
				return err
			}
		}
		if err := p.searchPath(ctx, tx, gen); err != nil {
			return err
		}
		if err := p.model.Create(ctx, tx); err != nil {
			return fmt.Errorf("the model's Create: %w", err)
		}
		_, err = tx.Exec(ctx, "INSERT INTO "+p.ckpt+" (name, generation) VALUES ($1, $2) ON CONFLICT (name, generation) DO UPDATE SET position = 0, active = false, updated_at = now()",
			p.name, int64(gen))
		return err
	})
}

// Activate points the reader views at gen and marks it active, in one
// transaction: a reader sees either the old generation or the new one,
// complete.
func (p *Projection) Activate(ctx context.Context, gen projections.Generation) error {
	g := p.genSchema(gen)
	return p.inTx(ctx, fmt.Sprintf("activate generation %d", gen), func(tx pgx.Tx) error {
		var one int
		err := tx.QueryRow(ctx, "SELECT 1 FROM "+p.ckpt+" WHERE name = $1 AND generation = $2 FOR UPDATE", p.name, int64(gen)).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("generation %d was never prepared: Prepare it first", gen)
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE "+p.ckpt+" SET active = (generation = $2), updated_at = now() WHERE name = $1", p.name, int64(gen)); err != nil {
			return err
		}
		for _, t := range p.tables {
			if err := p.pointView(ctx, tx, t, g); err != nil {
				return err
			}
		}
		return nil
	})
}

// pointView makes the view of table t select from generation schema g.
// CREATE OR REPLACE keeps the view's identity, so readers waiting on it
// carry on; when the columns changed (a rebuild for a new schema), it
// drops and re-creates the view instead, still within the transaction.
func (p *Projection) pointView(ctx context.Context, tx pgx.Tx, t, g string) error {
	view, source := p.View(t), pgx.Identifier{g, t}.Sanitize()
	sp, err := tx.Begin(ctx) // a savepoint
	if err != nil {
		return err
	}
	if _, err := sp.Exec(ctx, "CREATE OR REPLACE VIEW "+view+" AS SELECT * FROM "+source); err == nil {
		return sp.Commit(ctx)
	}
	if err := sp.Rollback(ctx); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "DROP VIEW IF EXISTS "+view); err != nil {
		return fmt.Errorf("drop view %s: %w: if a table of that name is in the way, move it", view, err)
	}
	if _, err := tx.Exec(ctx, "CREATE VIEW "+view+" AS SELECT * FROM "+source); err != nil {
		return fmt.Errorf("create view %s: %w: does the model's Create make table %q?", view, err, t)
	}
	return nil
}

// Drop removes a generation that is not active: its schema and its row.
func (p *Projection) Drop(ctx context.Context, gen projections.Generation) error {
	return p.inTx(ctx, fmt.Sprintf("drop generation %d", gen), func(tx pgx.Tx) error {
		var active bool
		err := tx.QueryRow(ctx, "DELETE FROM "+p.ckpt+" WHERE name = $1 AND generation = $2 RETURNING active", p.name, int64(gen)).Scan(&active)
		if err == nil && active {
			return fmt.Errorf("generation %d is active: activate another one first", gen)
		}
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		_, err = tx.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{p.genSchema(gen)}.Sanitize()+" CASCADE")
		return err
	})
}

// Position returns the position stored for gen, 0 if none.
func (p *Projection) Position(ctx context.Context, gen projections.Generation) (uint64, error) {
	var pos int64
	err := p.inTx(ctx, fmt.Sprintf("read the position of generation %d", gen), func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT position FROM "+p.ckpt+" WHERE name = $1 AND generation = $2", p.name, int64(gen)).Scan(&pos)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return uint64(pos), err
}

// ApplyBatch moves the stored position from b.From to b.To and applies
// b.Events, in one transaction. The position's compare-and-set comes
// first: it locks the row, so an overlapping instance waits, then finds
// the position moved and applies nothing.
func (p *Projection) ApplyBatch(ctx context.Context, gen projections.Generation, b projections.Batch) error {
	return p.inTx(ctx, fmt.Sprintf("apply positions %d to %d to generation %d", b.From+1, b.To, gen), func(tx pgx.Tx) error {
		batch := &pgx.Batch{}
		batch.Queue("SELECT set_config('search_path', $1, true)", pgx.Identifier{p.genSchema(gen)}.Sanitize())
		batch.Queue("UPDATE "+p.ckpt+" SET position = $4, updated_at = now() WHERE name = $1 AND generation = $2 AND position = $3",
			p.name, int64(gen), int64(b.From), int64(b.To))
		res := tx.SendBatch(ctx, batch)
		_, err := res.Exec()
		var tag interface{ RowsAffected() int64 }
		if err == nil {
			tag, err = res.Exec()
		}
		if cerr := res.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			var actual int64
			_ = tx.QueryRow(ctx, "SELECT position FROM "+p.ckpt+" WHERE name = $1 AND generation = $2", p.name, int64(gen)).Scan(&actual)
			return platform.Errorf(platform.CodeCheckpointConflict,
				"pgmodel: projection %q generation %d is at position %d, not %d: another instance moved it; this batch was not applied", p.name, gen, actual, b.From)
		}
		for i := range b.Events {
			e := &b.Events[i]
			if err := p.model.Apply(ctx, tx, *e); err != nil {
				return fmt.Errorf("event %s (%s version %d) at position %d: %w", e.Type, e.Stream, e.Version, e.Position, err)
			}
		}
		return nil
	})
}

func (p *Projection) searchPath(ctx context.Context, tx pgx.Tx, gen projections.Generation) error {
	_, err := tx.Exec(ctx, "SELECT set_config('search_path', $1, true)", pgx.Identifier{p.genSchema(gen)}.Sanitize())
	return err
}

// passing reports a PostgreSQL error that waiting cures: a lost
// connection (class 08), a server shutting down or starting (57P01 to
// 57P03, also what pg_terminate_backend sends), too few resources (class
// 53: connections, memory, disk), a serialization failure or a deadlock
// (40001, 40P01), a timeout, or a request that never reached the server.
// Wrapped as platform.ErrStoreUnavailable, the projection waits and tries
// again from its position instead of going FAULTED.
func passing(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch code := pgErr.Code; {
		case strings.HasPrefix(code, "08"), strings.HasPrefix(code, "53"),
			code == "57P01", code == "57P02", code == "57P03", code == "40001", code == "40P01":
			return true
		}
		return false
	}
	return pgconn.SafeToRetry(err) || pgconn.Timeout(err)
}

// inTx runs f in a transaction, committed if f returns nil.
func (p *Projection) inTx(ctx context.Context, what string, f func(tx pgx.Tx) error) error {
	if p.serial != nil {
		p.serial.Lock()
		defer p.serial.Unlock()
	}
	tx, err := p.db.Begin(ctx)
	if err != nil {
		return platform.Errorf(platform.CodeStoreUnavailable, "pgmodel: projection %q: %s: begin: %w", p.name, what, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := f(tx); err != nil {
		switch {
		case platform.CodeOf(err) != "" || errors.Is(err, pgx.ErrNoRows):
			return err
		case passing(err):
			return platform.Errorf(platform.CodeStoreUnavailable, "pgmodel: projection %q: %s: %w: PostgreSQL may be restarting or asked for a retry; the projection tries again", p.name, what, err)
		}
		return fmt.Errorf("pgmodel: projection %q: %s: %w", p.name, what, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return platform.Errorf(platform.CodeStoreUnavailable, "pgmodel: projection %q: %s: commit: %w", p.name, what, err)
	}
	return nil
}
