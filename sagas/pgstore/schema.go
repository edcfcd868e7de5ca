package pgstore

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/lexigram/events/platform"
)

// setup creates the schema, the table and its index unless the table
// exists. Checking first keeps New working for a role without the right
// to create anything: CREATE ... IF NOT EXISTS checks that right before
// it looks.
func (s *Store) setup(ctx context.Context, schema, table string) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return pgErr(err, "set up table %s: begin", s.name)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var exists bool
	if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", s.table).Scan(&exists); err != nil {
		return pgErr(err, "set up table %s: look it up", s.name)
	}
	if !exists {
		if err := create(ctx, tx, schema, table, s.table); err != nil {
			return pgErr(err, "create table %s", s.name)
		}
	}
	// An existing table of another shape fails here, not at the first
	// instance.
	if _, err := tx.Exec(ctx, "SELECT id, type, key, state, revision, record, created, updated FROM "+s.table+" LIMIT 0"); err != nil {
		return platform.Errorf(platform.CodeConfigConflict,
			"pgstore: table %s exists without the columns a saga store needs: %w: drop it or set Options.Table to another name", s.name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return pgErr(err, "set up table %s: commit", s.name)
	}
	return nil
}

// create makes the table, and its schema if that is missing too.
// Processes starting together take turns on an advisory lock: two CREATE
// TABLE IF NOT EXISTS of one table at once can still collide in the
// catalog.
func create(ctx context.Context, tx pgx.Tx, schema, table, qualified string) error {
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", "lexigram sagas "+qualified); err != nil {
		return err
	}
	var schemaExists bool
	if err := tx.QueryRow(ctx, "SELECT to_regnamespace($1) IS NOT NULL", pgx.Identifier{schema}.Sanitize()).Scan(&schemaExists); err != nil {
		return err
	}
	stmts := []string{
		`CREATE TABLE IF NOT EXISTS ` + qualified + ` (
			id       text COLLATE "C" PRIMARY KEY,
			type     text        NOT NULL,
			key      text        NOT NULL,
			state    text        NOT NULL,
			revision bigint      NOT NULL,
			record   jsonb       NOT NULL,
			created  timestamptz NOT NULL DEFAULT now(),
			updated  timestamptz NOT NULL DEFAULT now(),
			UNIQUE (type, key))`,
		"CREATE INDEX IF NOT EXISTS " + pgx.Identifier{table + "_type_state_id"}.Sanitize() + " ON " + qualified + " (type, state, id)",
	}
	if !schemaExists {
		stmts = append([]string{"CREATE SCHEMA IF NOT EXISTS " + pgx.Identifier{schema}.Sanitize()}, stmts...)
	}
	for _, stmt := range stmts {
		if _, err := tx.Exec(ctx, stmt); err != nil {
			return err
		}
	}
	return nil
}
