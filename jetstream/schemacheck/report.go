package schemacheck

import (
	"fmt"
	"time"
)

// Kind says why an event failed the check.
type Kind string

// The kinds of failure.
const (
	// KindMalformed: the type, schema version or codec header is missing
	// or unreadable.
	KindMalformed Kind = "malformed"
	// KindUnknownType: no version of the stored type name is registered.
	KindUnknownType Kind = "unknown-type"
	// KindUnknownVersion: the type is registered, the stored version not.
	KindUnknownVersion Kind = "unknown-version"
	// KindNoPath: the stored version is registered but not current, and
	// the upcasters do not reach the current one.
	KindNoPath Kind = "no-path"
	// KindUndecodable: the body does not decode into the stored
	// version's Go type with the stored codec.
	KindUndecodable Kind = "undecodable"
	// KindUpcastFailed: an upcaster panicked, or a split returned an
	// unregistered type or looped.
	KindUpcastFailed Kind = "upcast-failed"
	// KindNotCurrent: the upcasters produced an event that is not the
	// current version of a registered type.
	KindNotCurrent Kind = "not-current"
	// KindCompatNoUpcaster (CompatBackward): a current version N > 1 has
	// no version N-1 with an upcaster.
	KindCompatNoUpcaster Kind = "compat-no-upcaster"
	// KindCompatRoundTrip (CompatBackward): an event stored at N-1 does
	// not round-trip through version N (see the package documentation).
	KindCompatRoundTrip Kind = "compat-round-trip"
)

// Report is what a check found.
type Report struct {
	Stream        string `json:"stream"`
	FirstPosition uint64 `json:"first_position"`
	LastPosition  uint64 `json:"last_position"`
	Events        uint64 `json:"events"`  // read
	Checked       uint64 `json:"checked"` // decoded and upcast
	Sample        int    `json:"sample"`  // per (type, version, codec); 0: every event
	Seed          uint64 `json:"seed"`    // of the sample
	Compat        Compat `json:"compat,omitempty"`
	// Types lists each stored (type, version, codec), by type, version
	// and codec.
	Types []TypeReport `json:"types"`
	// Failures are those of the events checked (a sample leaves the
	// others out, even of a type that does not resolve), in stream order,
	// compatibility failures last; at most MaxFailures of them are kept,
	// and 10 per (type, version, codec). All are counted in FailureCount.
	Failures     []Failure     `json:"failures"`
	FailureCount int           `json:"failure_count"`
	Elapsed      time.Duration `json:"elapsed_ns"`
}

// Clean reports whether nothing failed.
func (r *Report) Clean() bool { return r.FailureCount == 0 }

// TypeReport is one stored (type, schema version, codec).
type TypeReport struct {
	Type          string `json:"type"`
	SchemaVersion int    `json:"schema_version"`
	Codec         string `json:"codec"`
	// ReadsAs is how the registry reads it: "order.placed v3", "split
	// by order.placed v2", "retired", or "unreadable".
	ReadsAs       string `json:"reads_as"`
	Count         uint64 `json:"count"`   // events in the stream
	Checked       uint64 `json:"checked"` // of them, decoded and upcast
	Failures      int    `json:"failures"`
	FirstPosition uint64 `json:"first_position"`
	LastPosition  uint64 `json:"last_position"`
}

// Failure is one event that does not read, or one compatibility rule
// broken (Position 0 when no event is concerned).
type Failure struct {
	Kind          Kind   `json:"kind"`
	Type          string `json:"type"`
	SchemaVersion int    `json:"schema_version"`
	Codec         string `json:"codec,omitempty"`
	Position      uint64 `json:"position,omitempty"`
	Subject       string `json:"subject,omitempty"`
	Aggregate     string `json:"aggregate,omitempty"` // type/id, when the subject names one
	Version       uint64 `json:"version,omitempty"`   // the aggregate's
	Cause         string `json:"cause"`
}

func (f Failure) String() string {
	where := "no position"
	if f.Position > 0 {
		where = fmt.Sprintf("position %d", f.Position)
		if f.Aggregate != "" {
			where += fmt.Sprintf(" (%s version %d)", f.Aggregate, f.Version)
		}
	}
	return fmt.Sprintf("%s %q version %d at %s: %s", f.Kind, f.Type, f.SchemaVersion, where, f.Cause)
}

// Progress is how far a check is.
type Progress struct {
	Read     uint64        // events read
	Total    uint64        // events to read, as the stream held them at the start
	Checked  uint64        // events decoded and upcast
	Position uint64        // the last position read
	Last     uint64        // the last position to read
	Rate     float64       // events read per second so far
	Elapsed  time.Duration //
	Failures int           // so far
	Done     bool
}
