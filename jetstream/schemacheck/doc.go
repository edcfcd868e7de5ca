// Package schemacheck is the schema deploy gate: it proves that a
// release's registry reads every event a stream holds, before the
// release is deployed. Check reads the stream once, in order, through an
// ordered consumer (deleted when done; nothing durable is left behind,
// and it works on nats-server 2.9.10 and newer), and for every stored
// (type, schema version, codec) it finds:
//
//   - resolves the stored type and version in the registry
//     (platform.Registry.Resolve): registered, and with a way to the
//     current version;
//   - decodes the stored body with the stored codec into the stored
//     version's Go type, and runs the upcasters
//     (platform.Registry.DecodeEnvelope, what every reader runs);
//   - checks the result: each event it reads as is of a registered Go
//     type that is the current version of its name (or the event is
//     retired and reads as nothing).
//
// Each failure names the stored type, version and codec, the stream
// position and aggregate, a Kind and the cause; the Report lists every
// (type, version, codec) with how many events the stream holds, how many
// were checked and how many failed.
//
// # Sampling
//
// Options.Sample 0 checks every event. Sample N checks, of each (type,
// version, codec), the first N events, then its k-th event with
// probability N/k: reservoir sampling's rule, so the last N picked are a
// uniform random sample of the whole stream, the newest events as likely
// as the oldest. That is about N × (1 + ln(count/N)) events per (type,
// version, codec), and never fewer than min(N, count): every combination
// present is checked. The headers of every event are read either way;
// sampling saves the decoding and upcasting. Options.Seed makes the
// sample repeatable; the Report says which seed was used.
//
// # Backward compatibility
//
// Options.Compat = CompatBackward adds, for each current type the stream's
// events read as whose current version N is above 1:
//
//   - the upcaster from version N-1 exists: version N-1 is registered
//     (under the same name, or one whose one-to-one upcaster renames it
//     to this one) and has an upcaster (Upcast, UpcastMany or Retire);
//     otherwise a KindCompatNoUpcaster failure;
//   - the stored events of version N-1 that are checked round-trip. An
//     event round-trips when, for each event e it reads as (after the
//     upcasters), encoding e with the codec it was stored with and
//     decoding that as the current version of e's type
//     (platform.Registry.Decode) gives a value equal to e: the same Go
//     type, and equal field by field, recursively (exported and
//     unexported fields; time.Time compared with Equal, so a lost
//     monotonic reading or location does not count; nil and empty
//     slices and maps are equal). Otherwise a KindCompatRoundTrip
//     failure naming the first field that differs. An upcaster that fills
//     a field the codec does not store (unexported, tagged "-"), or a
//     value the codec cannot represent, loses it on the event's next
//     write (a snapshot, a copy, a bridge) and fails this.
//
// Users put the same gate in their own CI: Check with the registry their
// application fills (see Example); `lexigram schema check` runs it with
// the types the lexigram binary itself registers.
package schemacheck
