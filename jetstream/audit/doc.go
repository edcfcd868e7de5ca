// Package audit checks the event stream's integrity: every aggregate's
// hash chain and contiguous versions, and the stream's global order. It
// reads the stream as stored (an ordered consumer, deleted when done; no
// durable consumer is left behind), independently of the store's read
// path, so it runs against any cluster holding a lexigram event stream.
//
// Check reads the whole stream (or one aggregate) once and reports, with
// the aggregate, versions and stream positions of each:
//
//   - lost-prefix: an aggregate's versions start above 1, and no
//     snapshot covers the versions before (with Options.Snapshots; a
//     snapshot that does makes it a truncated-prefix, which is how
//     Repository.Compact leaves an aggregate, not a problem);
//   - lost-middle: a version is missing between two stored ones;
//   - lost-postfix: an aggregate ends below the last version its writers
//     had acknowledged (Options.ExpectedHeads, a ledger the checker
//     cannot know by itself; without it this is not checked);
//   - fork: two events claim one version of an aggregate;
//   - duplicate: one event ID is stored twice;
//   - gap: stream positions are missing that the stream does not list as
//     deleted (deleted positions, purges and truncations, are counted,
//     not reported);
//   - hash-mismatch: an event's Lx-Prev is not the hash of its
//     aggregate's previous event as stored: one of the two changed after
//     it was written (a bit flip), or the header was stripped;
//   - malformed: a message under the prefix that is not an event (no
//     valid version, schema or subject).
//
// Events stored before the chain existed carry no Lx-Prev; an
// aggregate's chain starts at its first event that has one, and the
// events before it are reported as an unchained-prefix, which is
// information, not a problem. The newest event of an aggregate has no
// successor to vouch for it, so a change to it is found only once an
// event is appended after it.
//
// Memory grows with the aggregates (about 200 bytes each) and the events
// (16 bytes each, for duplicate IDs): a stream of 10 million events in a
// million aggregates needs about 400 MB.
//
// Scrubber runs Check in the background at a bounded rate, pass after
// pass, and exposes what it finds as Prometheus metrics.
package audit
