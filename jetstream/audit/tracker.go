package audit

import (
	"fmt"
	"hash/maphash"
	"slices"
	"strings"

	"github.com/nats-io/nats.go"

	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// tracker classifies the stream's messages as they come, in stream order.
// It does no I/O: what needs the server (confirming a duplicate, finding
// every claimant of a forked version, snapshots) it leaves to its caller.
type tracker struct {
	prefix string // subject prefix, with the trailing dot
	report *Report
	max    int // findings kept

	aggs map[string]*aggregate // by subject
	// ids maps a fingerprint of every event ID seen to its position;
	// sameID confirms a match (fingerprints may collide).
	ids    map[uint64]uint64
	seed   maphash.Seed
	sameID func(pos uint64, id string) bool

	// The global order: the next position expected, and the missing
	// positions the stream does not list as deleted (checked again at
	// the end, deletes being able to happen while the check runs).
	global   bool
	next     uint64
	deleted  *deletedSet
	missing  []span
	unlisted uint64 // missing positions while the deletes were too many to list

	// forks are the findings whose other claimants' positions are not
	// known yet (the claimant is older than the aggregate's last event).
	forks []forkRef
}

type forkRef struct {
	finding int // index in the report's findings
	subject string
}

// aggregate is what the tracker keeps of one aggregate.
type aggregate struct {
	stream          platform.StreamID
	first, last     uint64 // versions
	firstSeq, seq   uint64 // positions of the first and last events seen
	hash            string // ChainHash of the last event
	alts            []string
	chained         bool   // the chain has started
	unchained       uint64 // events before it
	unchainedFrom   uint64 // the first of them
	unchainedBefore uint64 // the version after them
}

type span struct{ from, to uint64 }

func newTracker(prefix string, report *Report, maxFindings int, deleted *deletedSet, global bool, first uint64) *tracker {
	if report.Counts == nil {
		report.Counts = map[Kind]int{}
	}
	return &tracker{
		prefix: prefix + ".", report: report, max: maxFindings,
		aggs: map[string]*aggregate{}, ids: map[uint64]uint64{}, seed: maphash.MakeSeed(),
		sameID: func(uint64, string) bool { return true },
		global: global, next: first, deleted: deleted,
	}
}

// add records a finding; it returns the finding's index in the report,
// or -1 when the report is full.
func (t *tracker) add(f Finding) int {
	t.report.Counts[f.Kind]++
	if len(t.report.Findings) >= t.max {
		return -1
	}
	t.report.Findings = append(t.report.Findings, f)
	return len(t.report.Findings) - 1
}

func aggName(s platform.StreamID) string { return s.Type + "/" + s.ID }

// observe checks one message of the stream.
func (t *tracker) observe(pos uint64, subject string, h nats.Header, data []byte) {
	if t.global {
		if pos > t.next {
			t.gap(t.next, pos-1)
		}
		t.next = max(t.next, pos+1)
	}
	if !strings.HasPrefix(subject, t.prefix) {
		t.report.Foreign++
		return
	}
	t.report.Events++
	stream, err := lxjs.StreamOf(strings.TrimSuffix(t.prefix, "."), subject)
	if err != nil {
		t.add(Finding{Kind: Malformed, Positions: []uint64{pos}, Detail: fmt.Sprintf("subject %q: %v", subject, err)})
		return
	}
	e, err := lxjs.StoredEventOf(pos, h, data)
	if err != nil {
		t.add(Finding{Kind: Malformed, Aggregate: aggName(stream), Positions: []uint64{pos}, Detail: err.Error()})
		return
	}
	if e.Chained {
		t.report.Chained++
	} else {
		t.report.Unchained++
	}
	dup := t.duplicate(stream, &e)

	a := t.aggs[subject]
	if a == nil {
		a = &aggregate{stream: stream, first: e.Version, firstSeq: pos}
		t.aggs[subject] = a
		t.report.Aggregates++
		if e.Chained && e.Version == 1 && e.Prev != "" {
			t.add(Finding{Kind: HashMismatch, Aggregate: aggName(stream), Versions: [2]uint64{1, 1}, Positions: []uint64{pos},
				Detail: fmt.Sprintf("version 1 carries previous-hash %q; a first event carries none: it or its header changed after it was written", e.Prev)})
		}
		t.advance(a, &e)
		return
	}
	switch {
	case e.Version == a.last+1:
		t.link(a, &e)
		t.advance(a, &e)
	case e.Version > a.last+1:
		t.add(Finding{Kind: LostMiddle, Aggregate: aggName(stream), Versions: [2]uint64{a.last + 1, e.Version - 1}, Positions: []uint64{a.seq, pos},
			Detail: fmt.Sprintf("version %d at position %d follows version %d at position %d: %d versions are missing", e.Version, pos, a.last, a.seq, e.Version-a.last-1)})
		t.advance(a, &e)
	case dup:
		// Reported as a duplicate; a copy is no second claimant.
	default:
		f := Finding{Kind: Fork, Aggregate: aggName(stream), Versions: [2]uint64{e.Version, e.Version}, Positions: []uint64{pos},
			Detail: fmt.Sprintf("event %s at position %d claims version %d, which another event holds", e.ID, pos, e.Version)}
		if e.Version == a.last {
			f.Positions = []uint64{a.seq, pos}
			a.alts = append(a.alts, e.Hash()) // the next event may chain to either
			t.add(f)
			return
		}
		if i := t.add(f); i >= 0 {
			t.forks = append(t.forks, forkRef{i, subject})
		}
	}
}

// link checks that e carries the hash of a's last event.
func (t *tracker) link(a *aggregate, e *platform.StoredEvent) {
	switch {
	case e.Chained && (e.Prev == a.hash || slices.Contains(a.alts, e.Prev)):
	case e.Chained:
		t.add(Finding{Kind: HashMismatch, Aggregate: aggName(a.stream), Versions: [2]uint64{a.last, e.Version}, Positions: []uint64{a.seq, e.Position},
			Detail: fmt.Sprintf("version %d carries previous-hash %q, but version %d as stored hashes to %q: one of the two changed after it was written (a bit flip?)",
				e.Version, e.Prev, a.last, a.hash)})
	case a.chained:
		t.add(Finding{Kind: HashMismatch, Aggregate: aggName(a.stream), Versions: [2]uint64{a.last, e.Version}, Positions: []uint64{a.seq, e.Position},
			Detail: fmt.Sprintf("version %d carries no previous-hash after chained events: its header was stripped, or a writer without the chain (an older lexigram) wrote it", e.Version)})
	}
}

// advance makes e the aggregate's last event.
func (t *tracker) advance(a *aggregate, e *platform.StoredEvent) {
	if !e.Chained && !a.chained {
		if a.unchained == 0 {
			a.unchainedFrom = e.Version
		}
		a.unchained++
	}
	if e.Chained && !a.chained {
		a.unchainedBefore = e.Version
	}
	a.last, a.seq, a.hash, a.alts = e.Version, e.Position, e.Hash(), nil
	a.chained = a.chained || e.Chained
}

// duplicate reports whether e's ID was seen before, and records it.
func (t *tracker) duplicate(stream platform.StreamID, e *platform.StoredEvent) bool {
	if e.ID == "" {
		return false
	}
	fp := maphash.String(t.seed, e.ID)
	first, seen := t.ids[fp]
	if !seen {
		t.ids[fp] = e.Position
		return false
	}
	if !t.sameID(first, e.ID) {
		return false // another ID with the same fingerprint
	}
	t.add(Finding{Kind: Duplicate, Aggregate: aggName(stream), Versions: [2]uint64{e.Version, e.Version}, Positions: []uint64{first, e.Position},
		Detail: fmt.Sprintf("event ID %s at position %d was stored before, at position %d", e.ID, e.Position, first)})
	return true
}

// gap records positions from..to missing from the stream.
func (t *tracker) gap(from, to uint64) {
	if !t.deleted.listed {
		t.unlisted += to - from + 1
		return
	}
	n, rest := t.deleted.explain(from, to)
	t.report.Deleted += n
	t.missing = append(t.missing, rest...)
}

// end finishes the global check up to last (the stream's last position
// when the check started), with the stream's deleted positions read
// again: what they do not explain is a gap.
func (t *tracker) end(last uint64, deleted *deletedSet) {
	if !t.global {
		return
	}
	if t.next <= last {
		t.gap(t.next, last)
	}
	for _, s := range t.missing {
		if !deleted.listed {
			t.unlisted += s.to - s.from + 1
			continue
		}
		n, rest := deleted.explain(s.from, s.to)
		t.report.Deleted += n
		for _, g := range rest {
			t.add(Finding{Kind: Gap, Positions: []uint64{g.from, g.to},
				Detail: fmt.Sprintf("positions %d..%d (%d) are missing from the stream, which does not list them as deleted", g.from, g.to, g.to-g.from+1)})
		}
	}
	t.missing = nil
	// Too many deletes to list: count the missing positions against the
	// number the stream reports.
	explained := min(t.unlisted, deleted.count)
	t.report.Deleted += explained
	if n := t.unlisted - explained; n > 0 {
		t.add(Finding{Kind: Gap, Detail: fmt.Sprintf("%d positions are missing beyond the %d the stream reports deleted (too many deletes to list which)", n, deleted.count)})
	}
	t.unlisted = 0
}

// deletedSet is the stream's deleted positions: listed, or only counted
// when there are too many to list.
type deletedSet struct {
	sorted []uint64
	listed bool
	count  uint64
}

func newDeletedSet(list []uint64, count uint64, listed bool) *deletedSet {
	d := &deletedSet{sorted: slices.Clone(list), listed: listed, count: count}
	slices.Sort(d.sorted)
	return d
}

// explain splits the missing positions from..to of a listed set into the
// deleted ones (counted) and the rest (returned).
func (d *deletedSet) explain(from, to uint64) (deleted uint64, rest []span) {
	i, _ := slices.BinarySearch(d.sorted, from)
	at := from
	for ; i < len(d.sorted) && d.sorted[i] <= to; i++ {
		if p := d.sorted[i]; p > at {
			rest = append(rest, span{at, p - 1})
		}
		at = d.sorted[i] + 1
		deleted++
	}
	if at <= to {
		rest = append(rest, span{at, to})
	}
	return deleted, rest
}
