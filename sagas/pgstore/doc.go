// Package pgstore keeps saga instances in PostgreSQL (pgx v5): [Store]
// implements sagas.Store, for deployments that already run PostgreSQL
// and want instances next to their read models, queryable with SQL.
//
// # The table
//
// New creates the schema and the table ("public"."lexigram_sagas" by
// default) if they are missing:
//
//	id        text (collation "C") primary key: the instance ID
//	type      text      the saga type        } unique together: the
//	key       text      the association key  } association index
//	state     text      the instance's state, for queries
//	revision  bigint    1 when created, 1 more with every Save
//	record    jsonb     the instance: the JSON of sagas.Instance
//	created   timestamptz  the database's clock when the row was inserted
//	updated   timestamptz  the database's clock at its last Save
//
// and an index on (type, state, id), which List uses. IDs sort by byte
// ("C" collation) whatever the database's collation, as List's order and
// Query.After require. An existing table is used as it is, so a role that
// may only read and write it needs no other privilege.
//
// # Writes
//
// Create inserts with ON CONFLICT (type, key) DO NOTHING and, when the
// key is taken, reads the instance that holds it: one statement decides
// between racing Creates. Save updates the row only WHERE id and revision
// are those given, and tells a missing instance from a moved one with one
// more read when no row matched. Save leaves type and key as Create wrote
// them: an instance stays indexed under what it was created with.
//
// jsonb keeps the meaning of Data, not its text: keys come back sorted
// and white space dropped. It holds no NUL characters, so an instance
// with one in any of its texts is refused with platform.ErrInvalidArgument.
// A record that does not decode into an instance (or is of another ID)
// comes back as a *sagas.CorruptError with the row's ID, type and
// revision; List filters such a row by its type and state columns and
// returns it parked.
package pgstore
