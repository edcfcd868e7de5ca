package audit

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// Options configure a check. The zero value checks every aggregate of
// stream EVENTS on subjects events.>, as fast as the server sends.
type Options struct {
	Stream        string // default "EVENTS"
	SubjectPrefix string // default "events"
	// Aggregate, when set, checks that aggregate only (no global order).
	Aggregate platform.StreamID
	// ExpectedHeads is the last version each aggregate's writers had
	// acknowledged, an external ledger: an aggregate stored below it has
	// lost its postfix. Nil: lost-postfix is not checked.
	ExpectedHeads map[platform.StreamID]uint64
	// Snapshots, when set, tells a truncated prefix (covered by a
	// snapshot, as Repository.Compact leaves it) from a lost one.
	Snapshots SnapshotLoader
	// Rate bounds the events checked per second; 0: no bound.
	Rate float64
	// Progress, when set, is called about every ProgressEvery (default
	// 1s) while the check runs, and once at the end.
	Progress      func(Progress)
	ProgressEvery time.Duration
	// MaxFindings bounds the findings kept in the report (all are
	// counted). 0 means 1000.
	MaxFindings int
}

// SnapshotLoader is the part of a platform.SnapshotStore the check uses.
type SnapshotLoader interface {
	LoadSnapshot(ctx context.Context, stream platform.StreamID) (platform.Snapshot, bool, error)
}

// Progress is how far a check is.
type Progress struct {
	Checked  uint64        // messages checked
	Total    uint64        // messages to check, as the stream held them at the start
	Position uint64        // the last position checked
	Last     uint64        // the last position to check
	Rate     float64       // messages per second so far
	Elapsed  time.Duration //
	Problems int           // problems found so far
	Done     bool
}

// maxListedDeletes bounds the deleted positions the check asks the server
// to list; beyond it the check counts them.
const maxListedDeletes = 1 << 20

// maxForkLookups bounds the aggregates read again to find every claimant
// of a forked version.
const maxForkLookups = 100

func (o Options) withDefaults() Options {
	if o.Stream == "" {
		o.Stream = "EVENTS"
	}
	if o.SubjectPrefix == "" {
		o.SubjectPrefix = "events"
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = time.Second
	}
	if o.MaxFindings <= 0 {
		o.MaxFindings = 1000
	}
	return o
}

// Check reads the stream (or the one aggregate) as it is when the check
// starts and reports what it finds. An error means the check could not
// run to the end; what it found is then not returned.
func Check(ctx context.Context, js jetstream.JetStream, opts Options) (*Report, error) {
	opts = opts.withDefaults()
	one := opts.Aggregate != (platform.StreamID{})
	if one {
		if err := opts.Aggregate.Validate(); err != nil {
			return nil, fmt.Errorf("audit: aggregate: %w", err)
		}
	}
	if opts.Rate < 0 {
		return nil, fmt.Errorf("audit: rate %v events/s: use 0 for no bound, or a positive rate", opts.Rate)
	}
	began := time.Now()
	stream, err := js.Stream(ctx, opts.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("audit: stream %q does not exist on this server: name the event stream with --stream (store.stream), or connect to the node's NATS", opts.Stream)
	}
	if err != nil {
		return nil, fmt.Errorf("audit: look up stream %q: %w", opts.Stream, err)
	}
	info, deleted, err := streamState(ctx, stream)
	if err != nil {
		return nil, err
	}
	rep := &Report{Stream: opts.Stream, FirstPosition: info.State.FirstSeq, LastPosition: info.State.LastSeq,
		PostfixChecked: opts.ExpectedHeads != nil, Counts: map[Kind]int{}}
	var filter []string
	total := info.State.Msgs
	if one {
		subject := lxjs.SubjectOf(opts.SubjectPrefix, opts.Aggregate)
		filter, rep.Aggregate = []string{subject}, aggName(opts.Aggregate)
		if total, err = subjectCount(ctx, stream, subject); err != nil {
			return nil, err
		}
	}
	t := newTracker(opts.SubjectPrefix, rep, opts.MaxFindings, deleted, !one, info.State.FirstSeq)
	t.sameID = func(pos uint64, id string) bool {
		m, err := stream.GetMsg(ctx, pos)
		if err != nil {
			return true // the first copy is gone; its fingerprint matched
		}
		e, err := lxjs.StoredEventOf(pos, m.Header, m.Data)
		return err != nil || e.ID == id
	}
	s := scan{js: js, opts: opts, t: t, began: began, total: total, last: info.State.LastSeq}
	if total > 0 {
		if err := s.run(ctx, stream, filter); err != nil {
			return nil, err
		}
	}
	if !one && (len(t.missing) > 0 || t.unlisted > 0 || t.next <= info.State.LastSeq) {
		// Deletes made during the check explain what went missing meanwhile.
		_, now, err := streamState(ctx, stream)
		if err != nil {
			return nil, err
		}
		t.end(info.State.LastSeq, now)
	}
	if err := finish(ctx, stream, t, opts); err != nil {
		return nil, err
	}
	rep.Elapsed = time.Since(began)
	if opts.Progress != nil {
		opts.Progress(s.progress(true))
	}
	return rep, nil
}

// streamState reads the stream's state with its deleted positions, listed
// unless there are too many.
func streamState(ctx context.Context, stream jetstream.Stream) (*jetstream.StreamInfo, *deletedSet, error) {
	info, err := stream.Info(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("audit: stream info: %w", err)
	}
	if info.State.NumDeleted == 0 {
		return info, newDeletedSet(nil, 0, true), nil
	}
	if info.State.NumDeleted > maxListedDeletes {
		return info, newDeletedSet(nil, uint64(info.State.NumDeleted), false), nil
	}
	detailed, err := stream.Info(ctx, jetstream.WithDeletedDetails(true))
	if err != nil {
		return nil, nil, fmt.Errorf("audit: stream info with deleted positions: %w", err)
	}
	return detailed, newDeletedSet(detailed.State.Deleted, uint64(detailed.State.NumDeleted), true), nil
}

// subjectCount is how many messages the stream holds on subject.
func subjectCount(ctx context.Context, stream jetstream.Stream, subject string) (uint64, error) {
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0, fmt.Errorf("audit: stream info for %s: %w", subject, err)
	}
	return info.State.Subjects[subject], nil
}

// scan reads the messages in order through an ordered consumer.
type scan struct {
	js       jetstream.JetStream
	opts     Options
	t        *tracker
	began    time.Time
	total    uint64
	last     uint64
	checked  uint64
	position uint64
}

func (s *scan) progress(done bool) Progress {
	el := time.Since(s.began)
	p := Progress{Checked: s.checked, Total: s.total, Position: s.position, Last: s.last, Elapsed: el, Problems: s.t.report.Problems(), Done: done}
	if el > 0 {
		p.Rate = float64(s.checked) / el.Seconds()
	}
	return p
}

func (s *scan) run(ctx context.Context, stream jetstream.Stream, filter []string) error {
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: filter, DeliverPolicy: jetstream.DeliverAllPolicy, InactiveThreshold: time.Minute,
	})
	if err != nil {
		return fmt.Errorf("audit: create an ordered consumer on %s: %w", s.opts.Stream, err)
	}
	defer func() {
		// Ordered consumers are ephemeral; delete this one rather than
		// leave it to expire.
		if info := cons.CachedInfo(); info != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = stream.DeleteConsumer(dctx, info.Name)
		}
	}()
	if info := cons.CachedInfo(); info != nil && info.NumPending == 0 {
		if more, err := s.more(ctx, filter, 0); err != nil || !more {
			return err
		}
	}
	pull := 2000
	if s.opts.Rate > 0 {
		pull = int(min(2000, max(16, s.opts.Rate)))
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(pull))
	if err != nil {
		return fmt.Errorf("audit: read %s: %w", s.opts.Stream, err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	nextReport := s.began.Add(s.opts.ProgressEvery)
	for {
		msg, err := it.Next()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			return fmt.Errorf("audit: read %s after position %d: %w", s.opts.Stream, s.position, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("audit: read %s after position %d: %w", s.opts.Stream, s.position, err)
		}
		pos := md.Sequence.Stream
		if pos > s.last {
			return nil // stored after the check started
		}
		s.t.observe(pos, msg.Subject(), msg.Headers(), msg.Data())
		s.checked++
		s.position = pos
		if now := time.Now(); s.opts.Progress != nil && now.After(nextReport) {
			s.opts.Progress(s.progress(false))
			nextReport = now.Add(s.opts.ProgressEvery)
		}
		if pos >= s.last {
			return nil
		}
		if md.NumPending == 0 {
			if more, err := s.more(ctx, filter, pos); err != nil || !more {
				return err
			}
		}
		if err := s.pace(ctx); err != nil {
			return err
		}
	}
}

// more asks the stream leader whether the filter has a message after
// pos, through the check's last position: the ordered consumer's pending
// count comes from the server holding it, which in a cluster may be a
// replica behind the leader (one just back from a partition), and
// believing it would report the events it has not applied as lost.
func (s *scan) more(ctx context.Context, filter []string, pos uint64) (bool, error) {
	subject := ">"
	if len(filter) == 1 {
		subject = filter[0]
	}
	more, err := lxjs.MoreAfter(ctx, s.js, s.opts.Stream, subject, pos, s.last)
	if err != nil {
		return false, fmt.Errorf("audit: ask the leader of %s what follows position %d: %w", s.opts.Stream, pos, err)
	}
	return more, nil
}

// pace holds the check to its rate.
func (s *scan) pace(ctx context.Context) error {
	if s.opts.Rate <= 0 {
		return nil
	}
	due := s.began.Add(time.Duration(float64(s.checked) / s.opts.Rate * float64(time.Second)))
	wait := time.Until(due)
	if wait < 2*time.Millisecond {
		return nil
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// finish reports what only the end tells: each aggregate's prefix (lost,
// truncated or unchained), the postfixes the expected heads name, and
// every claimant of forked versions.
func finish(ctx context.Context, stream jetstream.Stream, t *tracker, opts Options) error {
	subjects := make([]string, 0, len(t.aggs))
	for subject := range t.aggs {
		subjects = append(subjects, subject)
	}
	slices.SortFunc(subjects, func(a, b string) int { return cmp.Compare(t.aggs[a].firstSeq, t.aggs[b].firstSeq) })
	for _, subject := range subjects {
		a := t.aggs[subject]
		if a.unchained > 0 {
			t.add(Finding{Kind: UnchainedPrefix, Aggregate: aggName(a.stream), Versions: [2]uint64{a.unchainedFrom, a.unchainedFrom + a.unchained - 1}, Positions: []uint64{a.firstSeq},
				Detail: fmt.Sprintf("%d events stored before the hash chain carry no previous-hash; its chain starts at version %d", a.unchained, a.unchainedBefore)})
		}
		if a.first <= 1 {
			continue
		}
		if opts.Snapshots != nil {
			snap, ok, err := opts.Snapshots.LoadSnapshot(ctx, a.stream)
			if err != nil {
				return fmt.Errorf("audit: load the snapshot of %s: %w", aggName(a.stream), err)
			}
			if ok && snap.Revision.Version+1 >= a.first {
				t.add(Finding{Kind: TruncatedPrefix, Aggregate: aggName(a.stream), Versions: [2]uint64{1, a.first - 1}, Positions: []uint64{a.firstSeq},
					Detail: fmt.Sprintf("versions before %d were truncated; the snapshot at version %d covers them", a.first, snap.Revision.Version)})
				continue
			}
		}
		detail := fmt.Sprintf("its first stored event is version %d, at position %d", a.first, a.firstSeq)
		if opts.Snapshots == nil {
			detail += " (if it was compacted, give the snapshot bucket to tell a truncation from a loss)"
		} else {
			detail += ", and no snapshot covers the versions before"
		}
		t.add(Finding{Kind: LostPrefix, Aggregate: aggName(a.stream), Versions: [2]uint64{1, a.first - 1}, Positions: []uint64{a.firstSeq}, Detail: detail})
	}
	heads(t, opts)
	return forks(ctx, stream, t)
}

// heads reports the aggregates stored below their expected heads.
func heads(t *tracker, opts Options) {
	streams := make([]platform.StreamID, 0, len(opts.ExpectedHeads))
	for s := range opts.ExpectedHeads {
		if opts.Aggregate == (platform.StreamID{}) || s == opts.Aggregate {
			streams = append(streams, s)
		}
	}
	slices.SortFunc(streams, func(a, b platform.StreamID) int {
		return cmp.Or(cmp.Compare(a.Type, b.Type), cmp.Compare(a.ID, b.ID))
	})
	for _, s := range streams {
		want := opts.ExpectedHeads[s]
		a := t.aggs[lxjs.SubjectOf(opts.SubjectPrefix, s)]
		switch {
		case want == 0:
		case a == nil:
			t.add(Finding{Kind: LostPostfix, Aggregate: aggName(s), Versions: [2]uint64{1, want},
				Detail: fmt.Sprintf("no event is stored; versions up to %d were acknowledged", want)})
		case a.last < want:
			t.add(Finding{Kind: LostPostfix, Aggregate: aggName(s), Versions: [2]uint64{a.last + 1, want}, Positions: []uint64{a.seq},
				Detail: fmt.Sprintf("the last stored event is version %d, at position %d; versions up to %d were acknowledged", a.last, a.seq, want)})
		}
	}
}

// forks finds every claimant of each forked version whose first claimant
// the scan had passed: one read of the aggregate each.
func forks(ctx context.Context, stream jetstream.Stream, t *tracker) error {
	for n, fk := range t.forks {
		if n >= maxForkLookups {
			break
		}
		f := &t.report.Findings[fk.finding]
		positions, err := claimants(ctx, stream, fk.subject, f.Versions[0], t.report.LastPosition)
		if err != nil {
			return err
		}
		if len(positions) > 1 {
			f.Positions = positions
		}
	}
	return nil
}

// claimants lists the positions of the events on subject that claim
// version, up to last.
func claimants(ctx context.Context, stream jetstream.Stream, subject string, version, last uint64) ([]uint64, error) {
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}, InactiveThreshold: time.Minute})
	if err != nil {
		return nil, fmt.Errorf("audit: read %s again for a fork: %w", subject, err)
	}
	defer func() {
		if info := cons.CachedInfo(); info != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = stream.DeleteConsumer(dctx, info.Name)
		}
	}()
	var out []uint64
	if info := cons.CachedInfo(); info != nil && info.NumPending == 0 {
		return nil, nil
	}
	for {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			return nil, fmt.Errorf("audit: read %s again for a fork: %w", subject, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return nil, err
		}
		if md.Sequence.Stream > last {
			return out, nil
		}
		if e, err := lxjs.StoredEventOf(md.Sequence.Stream, msg.Headers(), msg.Data()); err == nil && e.Version == version {
			out = append(out, md.Sequence.Stream)
		}
		if md.NumPending == 0 {
			return out, nil
		}
	}
}
