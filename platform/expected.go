package platform

import "fmt"

// ExpectedVersion is the condition an append checks against the
// aggregate's current version.
type ExpectedVersion struct {
	kind     expectKind
	revision Revision
}

type expectKind uint8

const (
	expectAny expectKind = iota
	expectNoStream
	expectExact
)

// Any appends whatever the aggregate's version is.
func Any() ExpectedVersion { return ExpectedVersion{kind: expectAny} }

// NoStream appends only if the aggregate has no events yet.
func NoStream() ExpectedVersion { return ExpectedVersion{kind: expectNoStream} }

// Exact appends only if the aggregate's version is exactly v. Exact(0) is
// the same as NoStream.
func Exact(v uint64) ExpectedVersion {
	if v == 0 {
		return NoStream()
	}
	return ExpectedVersion{kind: expectExact, revision: Revision{Version: v}}
}

// ExactRevision is Exact(r.Version) with the position of that version
// known, which saves the JetStream store a round trip. The repository uses
// it with the revision it loaded.
func ExactRevision(r Revision) ExpectedVersion {
	if r.Version == 0 {
		return NoStream()
	}
	return ExpectedVersion{kind: expectExact, revision: r}
}

// IsAny reports whether the append checks nothing.
func (e ExpectedVersion) IsAny() bool { return e.kind == expectAny }

// Expected returns the version the aggregate must have and whether there
// is one to check; NoStream gives (0, true).
func (e ExpectedVersion) Expected() (uint64, bool) {
	return e.revision.Version, e.kind != expectAny
}

// Revision returns the expected revision; its Position is 0 when unknown.
func (e ExpectedVersion) Revision() Revision { return e.revision }

func (e ExpectedVersion) String() string {
	switch e.kind {
	case expectNoStream:
		return "no stream"
	case expectExact:
		return fmt.Sprintf("version %d", e.revision.Version)
	}
	return "any version"
}
