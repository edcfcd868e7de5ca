// Package bench measures the event store against the raw NATS call it
// stands on, in the same run, on the same server, and reports both and
// their ratio. It answers "what does the store cost on top of JetStream?"
// rather than "how fast is JetStream here?", which depends on the machine.
//
// [Run] produces [Figure]s; `lexigram bench` prints them with [WriteTable]
// or as JSON. Every figure pairs ours with raw:
//
//	append.concurrent     64 writers, single-event conditional appends to
//	                      10,000 aggregates, vs js.PublishMsg with
//	                      Nats-Expected-Last-Subject-Sequence (events/s)
//	append.latency.p50/99 one writer, sequential single-event appends, vs
//	                      sequential conditional js.PublishMsg (ms)
//	append.batch10        one writer, 10-event appends, vs orbit
//	                      jetstreamext.PublishMsgBatch (events/s)
//	load.1000             Read of a 1,000-event aggregate, decoding every
//	                      event, vs jetstreamext.GetBatch pages of 1,000 (ms)
//	load.1000.snapshot    Repository.Load with a snapshot at version 990 vs
//	                      the same load without snapshots (ms)
//	readall.1m / .100k    ReadAll from 0 vs an ordered consumer reading
//	                      every message (events/s)
//	audit.rate.1m / .100k a full integrity audit (jetstream/audit) vs the
//	                      ordered consumer it reads through (events/s)
//	append.allocs         heap allocations per single-event append vs per
//	                      js.PublishMsg (allocs/op)
//	codec.upcast          Repository.Load of a 1,000-event aggregate stored
//	                      as v1 and upcast v1 → v2 → v3 on read, vs the same
//	                      load of one stored as v3 (ms)
//
// The ratio is always ours/raw. For throughput (events/s) higher is
// better and the target reads ">= x"; for latency, time and allocations
// lower is better and the target reads "<= x".
//
// Events are one registered type whose msgpack body is 256 bytes, in
// single-replica file streams unless the name ends in /mem. Figures marked
// /fsync and /nofsync run on two embedded servers, each in its own temp
// directory, started and removed by Run: one fsyncs every write before
// acknowledging it, the other every two minutes. With Options.NATSURL they
// run once on that server, labelled /as-configured. Embedded servers are
// reached through an in-process connection; ours and raw share it.
//
// Fairness: every side of every throughput and latency figure writes to
// its own fresh stream, created with the store's configuration and deleted
// afterwards; ours and raw alternate over several rounds (ours first in
// even rounds, raw first in odd ones) and the figure is the median of the
// rounds, or for latency the percentile of all rounds' samples pooled. The
// load and read figures alternate ours and raw on one preloaded stream.
//
// The allocation figure counts the whole process's heap allocations, so
// with an embedded server it includes the server's work for each message;
// the difference ours − raw is the store's own cost. Go benchmarks of the
// same operations live in jetstream/bench_test.go (go test -bench . -benchmem).
package bench
