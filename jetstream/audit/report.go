package audit

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Kind is a kind of finding.
type Kind string

// The kinds of findings; Kinds lists the problems among them.
const (
	LostPrefix   Kind = "lost-prefix"
	LostMiddle   Kind = "lost-middle"
	LostPostfix  Kind = "lost-postfix"
	Fork         Kind = "fork"
	Duplicate    Kind = "duplicate"
	Gap          Kind = "gap"
	HashMismatch Kind = "hash-mismatch"
	Malformed    Kind = "malformed"

	// Information, not problems.
	UnchainedPrefix Kind = "unchained-prefix" // events written before the chain
	TruncatedPrefix Kind = "truncated-prefix" // versions a snapshot covers were truncated
)

// Kinds are the kinds of findings that are problems, in report order.
var Kinds = []Kind{LostPrefix, LostMiddle, LostPostfix, Fork, Duplicate, Gap, HashMismatch, Malformed}

// Problem reports whether findings of this kind are problems.
func (k Kind) Problem() bool { return slices.Contains(Kinds, k) }

// Finding is one thing the check found, where it found it.
type Finding struct {
	Kind Kind `json:"kind"`
	// Aggregate is "type/id"; empty for findings about the stream (gap).
	Aggregate string `json:"aggregate,omitempty"`
	// Versions is the first and last aggregate version concerned: the
	// versions missing (lost-*), claimed twice (fork, duplicate), or the
	// two events whose link does not hold (hash-mismatch).
	Versions [2]uint64 `json:"versions"`
	// Positions are the stream positions concerned: around what is
	// missing, of every claimant, of both ends of a broken link, or the
	// first and last position missing (gap).
	Positions []uint64 `json:"positions,omitempty"`
	Detail    string   `json:"detail"`
}

func (f Finding) String() string {
	var b strings.Builder
	b.WriteString(string(f.Kind))
	if f.Aggregate != "" {
		fmt.Fprintf(&b, " %s", f.Aggregate)
	}
	if f.Versions[0] != 0 || f.Versions[1] != 0 {
		if f.Versions[0] == f.Versions[1] {
			fmt.Fprintf(&b, " version %d", f.Versions[0])
		} else {
			fmt.Fprintf(&b, " versions %d..%d", f.Versions[0], f.Versions[1])
		}
	}
	if len(f.Positions) > 0 {
		fmt.Fprintf(&b, " at positions %v", f.Positions)
	}
	return b.String() + ": " + f.Detail
}

// Report is the outcome of a check.
type Report struct {
	Stream    string `json:"stream"`
	Aggregate string `json:"aggregate,omitempty"` // the one checked; empty: all
	// FirstPosition and LastPosition bound the positions checked: the
	// stream's when the check started.
	FirstPosition uint64 `json:"first_position"`
	LastPosition  uint64 `json:"last_position"`
	Events        uint64 `json:"events"`     // events checked
	Aggregates    int    `json:"aggregates"` // aggregates seen
	Chained       uint64 `json:"chained"`    // events carrying a previous-hash
	Unchained     uint64 `json:"unchained"`  // events without, stored before the chain
	Deleted       uint64 `json:"deleted"`    // positions missing that the stream lists as deleted
	Foreign       uint64 `json:"foreign"`    // messages on subjects outside the prefix, not checked
	// PostfixChecked tells whether expected heads were given: without
	// them lost-postfix cannot be known.
	PostfixChecked bool `json:"postfix_checked"`
	// Counts has the number of findings of every kind found.
	Counts map[Kind]int `json:"counts"`
	// Findings are the first Options.MaxFindings findings, in the order found.
	Findings []Finding     `json:"findings"`
	Elapsed  time.Duration `json:"elapsed_ns"`
}

// Problems is the number of findings that are problems.
func (r *Report) Problems() int {
	n := 0
	for k, c := range r.Counts {
		if k.Problem() {
			n += c
		}
	}
	return n
}

// Clean reports whether the check found no problem.
func (r *Report) Clean() bool { return r.Problems() == 0 }
