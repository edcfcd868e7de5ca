package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/sagas"
)

// DefaultTable is the table of Options{}.
const DefaultTable = "lexigram_sagas"

// maxIdent is PostgreSQL's identifier length; longer ones are cut short.
// The table's name leaves room for its index's name, which adds
// indexSuffix: cut short, that could be the table's own name.
const (
	maxIdent    = 63
	indexSuffix = "_type_state_id"
)

// createAttempts bounds Create's insert-or-read loop: it goes round again
// only when the row holding the key is deleted between the two.
const createAttempts = 3

// Options configures New. The zero value works.
type Options struct {
	Schema string // "" means "public"
	Table  string // "" means DefaultTable
}

// Store is a sagas.Store on a PostgreSQL table; see the package
// documentation for the table and how writes are decided.
type Store struct {
	pool  *pgxpool.Pool
	table string // schema-qualified, quoted for SQL
	name  string // schema.table, for messages
}

var _ sagas.Store = (*Store)(nil)

// New creates the table if it is missing and returns the store on it. An
// existing table without the store's columns is a
// platform.ErrConfigConflict.
func New(ctx context.Context, pool *pgxpool.Pool, opts Options) (*Store, error) {
	if pool == nil {
		return nil, platform.Errorf(platform.CodeInvalidArgument, "pgstore: the pool is nil: pass one from pgxpool.New")
	}
	if opts.Schema == "" {
		opts.Schema = "public"
	}
	if opts.Table == "" {
		opts.Table = DefaultTable
	}
	if len(opts.Schema) > maxIdent {
		return nil, platform.Errorf(platform.CodeInvalidArgument,
			"pgstore: schema name %q is %d bytes: PostgreSQL keeps %d", opts.Schema, len(opts.Schema), maxIdent)
	}
	if limit := maxIdent - len(indexSuffix); len(opts.Table) > limit {
		return nil, platform.Errorf(platform.CodeInvalidArgument,
			"pgstore: table name %q is %d bytes: use at most %d, so that its index's name %q fits PostgreSQL's %d",
			opts.Table, len(opts.Table), limit, opts.Table+indexSuffix, maxIdent)
	}
	s := &Store{pool: pool, table: pgx.Identifier{opts.Schema, opts.Table}.Sanitize(), name: opts.Schema + "." + opts.Table}
	if err := s.setup(ctx, opts.Schema, opts.Table); err != nil {
		return nil, err
	}
	return s, nil
}

// Create inserts in unless an instance of its type has its key, which it
// then returns. An ID taken by an instance of another type or key is a
// platform.ErrInvalidArgument.
func (s *Store) Create(ctx context.Context, in sagas.Instance) (sagas.Instance, bool, error) {
	if err := sagas.CheckNew(in); err != nil {
		return sagas.Instance{}, false, err
	}
	record, err := encode(in)
	if err != nil {
		return sagas.Instance{}, false, err
	}
	for range createAttempts {
		var rev int64
		var stored []byte
		err := s.pool.QueryRow(ctx, `INSERT INTO `+s.table+` (id, type, key, state, revision, record) VALUES ($1, $2, $3, $4, 1, $5)
			ON CONFLICT (type, key) DO NOTHING RETURNING revision, record`,
			in.ID, in.Type, in.Key, string(in.State), record).Scan(&rev, &stored)
		if err == nil {
			// As Load will return it: after jsonb, sharing nothing with in.
			out, err := s.decode(in.ID, in.Type, rev, stored)
			return out, err == nil, err
		}
		if pgCode(err) == "23505" { // unique_violation, on the ID: ON CONFLICT took the key's
			return sagas.Instance{}, false, s.idTaken(ctx, in, err)
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return sagas.Instance{}, false, s.writeErr(err, in.ID, "create saga instance %s: insert into %s", in.ID, s.name)
		}
		existing, err := s.one(ctx, "type = $1 AND key = $2", in.Type, in.Key)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		return existing, false, err
	}
	return sagas.Instance{}, false, platform.Errorf(platform.CodeStoreUnavailable,
		"pgstore: create saga instance %s: the row holding type %q and key %q in %s vanished under each of %d attempts: try again",
		in.ID, in.Type, in.Key, s.name, createAttempts)
}

// idTaken explains a Create refused for its ID, naming the instance
// holding it.
func (s *Store) idTaken(ctx context.Context, in sagas.Instance, cause error) error {
	holder := "another instance"
	var sagaType, key string
	if s.pool.QueryRow(ctx, "SELECT type, key FROM "+s.table+" WHERE id = $1", in.ID).Scan(&sagaType, &key) == nil {
		holder = fmt.Sprintf("an instance of type %q with key %q", sagaType, key)
	}
	return platform.Errorf(platform.CodeInvalidArgument,
		"pgstore: create saga instance %s of type %q with key %q: the ID is taken by %s in %s: %w: give every instance its own ID",
		in.ID, in.Type, in.Key, holder, s.name, cause)
}

// Load returns the instance with the ID.
func (s *Store) Load(ctx context.Context, id string) (sagas.Instance, error) {
	if err := sagas.CheckID(id); err != nil {
		return sagas.Instance{}, err
	}
	in, err := s.one(ctx, "id = $1", id)
	if errors.Is(err, pgx.ErrNoRows) {
		return sagas.Instance{}, platform.Errorf(platform.CodeSagaNotFound,
			"pgstore: no saga instance has ID %q in %s: %w: check the ID and Options.Table", id, s.name, err)
	}
	return in, err
}

// FindByKey returns the instance of the type with the association key.
func (s *Store) FindByKey(ctx context.Context, sagaType, key string) (sagas.Instance, error) {
	if err := sagas.CheckType(sagaType); err != nil {
		return sagas.Instance{}, err
	}
	if err := sagas.CheckKey(sagaType, key); err != nil {
		return sagas.Instance{}, err
	}
	in, err := s.one(ctx, "type = $1 AND key = $2", sagaType, key)
	if errors.Is(err, pgx.ErrNoRows) {
		return sagas.Instance{}, platform.Errorf(platform.CodeSagaNotFound,
			"pgstore: no saga instance of type %q has association key %q in %s: %w: start one, or check the type, the key and Options.Table",
			sagaType, key, s.name, err)
	}
	return in, err
}

// one reads the row matching where; pgx.ErrNoRows when none does.
func (s *Store) one(ctx context.Context, where string, args ...any) (sagas.Instance, error) {
	var id, sagaType string
	var rev int64
	var record []byte
	err := s.pool.QueryRow(ctx, "SELECT id, type, revision, record FROM "+s.table+" WHERE "+where, args...).Scan(&id, &sagaType, &rev, &record)
	if errors.Is(err, pgx.ErrNoRows) {
		return sagas.Instance{}, err
	}
	if err != nil {
		return sagas.Instance{}, pgErr(err, "read saga instance from %s", s.name)
	}
	return s.decode(id, sagaType, rev, record)
}

// Save writes in over its row if that is still at in.Revision.
func (s *Store) Save(ctx context.Context, in sagas.Instance) (uint64, error) {
	if err := sagas.CheckID(in.ID); err != nil {
		return 0, err
	}
	record, err := encode(in)
	if err != nil {
		return 0, err
	}
	var rev int64
	// A revision above the largest bigint matches no row, as it should.
	err = s.pool.QueryRow(ctx, `UPDATE `+s.table+` SET state = $3, record = $4, revision = revision + 1, updated = now()
		WHERE id = $1 AND revision = $2 RETURNING revision`,
		in.ID, int64(in.Revision), string(in.State), record).Scan(&rev)
	if err == nil {
		return uint64(rev), nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return 0, s.writeErr(err, in.ID, "save saga instance %s at revision %d: update %s", in.ID, in.Revision, s.name)
	}
	// Only to tell a missing instance from a moved one and to name the
	// stored revision; the update failed whatever this read returns.
	var stored int64
	err = s.pool.QueryRow(ctx, "SELECT revision FROM "+s.table+" WHERE id = $1", in.ID).Scan(&stored)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, platform.Errorf(platform.CodeSagaNotFound,
			"pgstore: save saga instance %s: %s has no instance with that ID: %w: Create it first", in.ID, s.name, err)
	}
	if err != nil {
		return 0, pgErr(err, "save saga instance %s at revision %d: no row was at that revision, and reading its revision failed", in.ID, in.Revision)
	}
	return 0, platform.Errorf(platform.CodeSagaConflict,
		"pgstore: save saga instance %s at revision %d: %s holds revision %d: another process saved it since; load it and decide again",
		in.ID, in.Revision, s.name, stored)
}

// List returns the matching instances in ID order. A row whose record
// does not decode matches by its type and state columns and comes back
// parked.
func (s *Store) List(ctx context.Context, q sagas.Query) ([]sagas.Instance, error) {
	if q.Limit < 0 {
		return nil, platform.Errorf(platform.CodeInvalidArgument, "pgstore: list saga instances: limit %d is negative: use 0 for all", q.Limit)
	}
	sql := "SELECT id, type, revision, record FROM " + s.table + " WHERE id > $1"
	args := []any{q.After}
	if q.Type != "" {
		args = append(args, q.Type)
		sql += fmt.Sprintf(" AND type = $%d", len(args))
	}
	if len(q.States) > 0 {
		states := make([]string, len(q.States))
		for i, st := range q.States {
			states[i] = string(st)
		}
		args = append(args, states)
		sql += fmt.Sprintf(" AND state = ANY($%d)", len(args))
	}
	sql += " ORDER BY id"
	if q.Limit > 0 {
		args = append(args, q.Limit)
		sql += fmt.Sprintf(" LIMIT $%d", len(args))
	}
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, pgErr(err, "list saga instances in %s", s.name)
	}
	defer rows.Close()
	var out []sagas.Instance
	for rows.Next() {
		var id, sagaType string
		var rev int64
		var record []byte
		if err := rows.Scan(&id, &sagaType, &rev, &record); err != nil {
			return nil, pgErr(err, "list saga instances in %s", s.name)
		}
		in, err := s.decode(id, sagaType, rev, record)
		var corrupt *sagas.CorruptError
		if errors.As(err, &corrupt) {
			in = corrupt.Parked()
		}
		out = append(out, in)
	}
	if err := rows.Err(); err != nil {
		return nil, pgErr(err, "list saga instances in %s", s.name)
	}
	return out, nil
}

// encode is the record column: the JSON of the instance, which leaves
// out its Revision.
func encode(in sagas.Instance) ([]byte, error) {
	record, err := json.Marshal(in)
	if err != nil {
		return nil, platform.Errorf(platform.CodeInvalidArgument,
			"pgstore: saga instance %s does not encode: %w: its Data must be valid JSON and its times within the years 0 to 9999", in.ID, err)
	}
	return record, nil
}

// decode reads a row's record. One that does not decode, or is of
// another instance, is a *sagas.CorruptError with what the other columns
// tell.
func (s *Store) decode(id, sagaType string, rev int64, record []byte) (sagas.Instance, error) {
	var in sagas.Instance
	err := json.Unmarshal(record, &in)
	switch {
	case err != nil:
	case in.ID == "":
		err = errors.New("the record has no instance ID")
	case in.ID != id:
		err = fmt.Errorf("the record is of instance %q", in.ID)
	}
	if err != nil {
		return sagas.Instance{}, &sagas.CorruptError{ID: id, Type: sagaType, Revision: uint64(rev),
			Err: fmt.Errorf("row %q of %s: %w", id, s.name, err)}
	}
	in.Revision = uint64(rev)
	return in, nil
}

// writeErr explains a failed insert or update; jsonb refusing a NUL
// character is the caller's to fix.
func (s *Store) writeErr(err error, id, format string, args ...any) error {
	if pgCode(err) == "22P05" { // untranslatable_character: \u0000 in jsonb
		return platform.Errorf(platform.CodeInvalidArgument,
			"pgstore: saga instance %s has a NUL character in its Data or another text, which PostgreSQL's jsonb cannot hold: %w: leave it out", id, err)
	}
	return pgErr(err, format, args...)
}

// pgErr wraps a PostgreSQL error with what we were doing. Errors that
// mean the server was not reached in time get CodeStoreUnavailable, so
// callers can tell "try again later" from a mistake.
func pgErr(err error, format string, args ...any) error {
	msg := "pgstore: " + fmt.Sprintf(format, args...)
	var connect *pgconn.ConnectError
	if errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) || pgconn.SafeToRetry(err) || errors.As(err, &connect) {
		return platform.Errorf(platform.CodeStoreUnavailable, "%s: %w", msg, err)
	}
	return fmt.Errorf("%s: %w", msg, err)
}

// pgCode is the SQLSTATE of a server error, "" for any other error.
func pgCode(err error) string {
	var server *pgconn.PgError
	if errors.As(err, &server) {
		return server.Code
	}
	return ""
}
