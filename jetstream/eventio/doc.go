// Package eventio reads the event stream as stored, and moves it in and
// out as JSON lines: what `lexigram events tail|get|export|import` run.
//
// Read walks the stream, or one aggregate type or aggregate, with an
// ordered consumer (deleted when done), from a position or a time, and
// optionally follows it. It needs no registry: a Line carries the stored
// headers and body, and Line.Decoded turns a msgpack or JSON body into
// plain values for display.
//
// Export writes one Line per event; Import appends them to a store's
// stream exactly as they were stored (same event IDs, versions, headers
// and bodies, so the hash chain stays valid), in order per aggregate.
// Import is idempotent and resumable: it reads each aggregate's last
// stored version before its first line and skips what is already there,
// so an import interrupted at any point is finished by running it again.
// It refuses a line whose version does not follow the aggregate's last
// one (an export missing events), and a line whose version is stored with
// another event ID (two different histories). Import does not check
// concurrency against other writers: run it into a stream that nobody
// else appends to those aggregates meanwhile, as a migration does.
package eventio
