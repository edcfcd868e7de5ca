// Package pgmodel keeps projections' read models in PostgreSQL (pgx v5),
// with exactly-once effect: a Projection writes a batch of events' rows and
// the projection's position in one transaction, and moves the position
// with compare-and-set, so a crash loses nothing and repeats nothing, and
// an instance that overlaps another (a lease is not strict exclusion)
// applies nothing.
//
// Each generation of a model lives in its own schema, and readers query
// views in the reader schema that point at the active generation. A
// rebuild fills a new schema while the views still point at the old one;
// the swap re-creates the views and flips the active flag in one
// transaction, so a reader sees the old model or the new one, complete,
// never a half-built one.
//
// The package is named for what it holds, read models, rather than for
// the database driver: the driver is pgx, and a package called postgres
// would read as a general PostgreSQL layer, which it is not.
package pgmodel
