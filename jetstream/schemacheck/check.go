package schemacheck

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// Compat selects the compatibility rules checked on top of reading.
type Compat string

// CompatBackward: each current version N > 1 has an upcaster from N-1,
// and the stored events of N-1 round-trip (see the package documentation).
const CompatBackward Compat = "backward"

// Options configure a check. The zero value checks every event of stream
// EVENTS, as fast as the server sends.
type Options struct {
	Stream string // default "EVENTS"
	// SubjectPrefix names failures' aggregates; default: from the
	// stream's one subject "<prefix>.>".
	SubjectPrefix string
	// Sample, when positive, checks that many events of each (type,
	// version, codec) and a random sample of the rest (see the package
	// documentation); 0 checks every event.
	Sample int
	Seed   uint64 // of the sample; 0: a random one, reported
	Compat Compat // "" or CompatBackward
	// Progress, when set, is called about every ProgressEvery (default
	// 1s) while the check runs, and once at the end.
	Progress      func(Progress)
	ProgressEvery time.Duration
	// MaxFailures bounds the failures kept in the report (all are
	// counted). 0 means 1000.
	MaxFailures int
}

// maxExamples bounds the failures kept per (type, version, codec): one
// broken type must not crowd out the others.
const maxExamples = 10

func (o Options) withDefaults() (Options, error) {
	if o.Stream == "" {
		o.Stream = "EVENTS"
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = time.Second
	}
	if o.MaxFailures <= 0 {
		o.MaxFailures = 1000
	}
	if o.Seed == 0 {
		o.Seed = rand.Uint64() | 1
	}
	switch {
	case o.Sample < 0:
		return o, platform.Errorf(platform.CodeInvalidArgument, "schemacheck: sample %d: use 0 for every event, or a positive count per type and version", o.Sample)
	case o.Compat != "" && o.Compat != CompatBackward:
		return o, platform.Errorf(platform.CodeInvalidArgument, "schemacheck: compat %q: use %q or nothing", o.Compat, CompatBackward)
	}
	return o, nil
}

// Check reads the stream as it is when the check starts and proves that
// reg reads each event checked (every one, or a sample). An error means
// the check could not run to the end; failures of events are in the
// Report, not errors.
func Check(ctx context.Context, js jetstream.JetStream, reg *platform.Registry, opts Options) (Report, error) {
	if reg == nil {
		return Report{}, platform.Errorf(platform.CodeInvalidArgument, "schemacheck: the registry is nil: pass the one the application fills (platform.DefaultRegistry if it uses that)")
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return Report{}, err
	}
	began := time.Now()
	stream, err := js.Stream(ctx, opts.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return Report{}, platform.Errorf(platform.CodeInvalidArgument, "schemacheck: stream %q does not exist on this server: name the event stream (--stream, store.stream), or connect to the node's NATS", opts.Stream)
	}
	if err != nil {
		return Report{}, platform.Errorf(platform.CodeStoreUnavailable, "schemacheck: look up stream %q: %w", opts.Stream, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return Report{}, platform.Errorf(platform.CodeStoreUnavailable, "schemacheck: stream %q info: %w", opts.Stream, err)
	}
	if opts.SubjectPrefix == "" && len(info.Config.Subjects) == 1 {
		opts.SubjectPrefix, _ = strings.CutSuffix(info.Config.Subjects[0], ".>")
	}
	s := &scan{
		js: js, opts: opts, reg: reg, began: began, total: info.State.Msgs, last: info.State.LastSeq,
		rng:   rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)),
		stats: map[rawKey]*typeStats{},
		rep: Report{Stream: opts.Stream, FirstPosition: info.State.FirstSeq, LastPosition: info.State.LastSeq,
			Sample: opts.Sample, Seed: opts.Seed, Compat: opts.Compat, Failures: []Failure{}},
	}
	if info.State.Msgs > 0 {
		if err := s.run(ctx, stream); err != nil {
			return Report{}, err
		}
	}
	if opts.Compat == CompatBackward {
		s.backward()
	}
	s.finish()
	s.rep.Elapsed = time.Since(began)
	if opts.Progress != nil {
		opts.Progress(s.progress(true))
	}
	return s.rep, nil
}

// rawKey is a stored combination as its headers spell it, so that the
// common case costs a map lookup and no parsing.
type rawKey struct{ typ, schema, codec string }

// typeStats is what the check knows of one stored combination.
type typeStats struct {
	TypeReport
	malformed string // why the headers do not read; "" if they do
	codec     platform.Codec
	res       platform.Resolution
	resErr    error
	kind      Kind // of resErr
	roundTrip bool // CompatBackward: stored at the version before a current one
	examples  int
}

type scan struct {
	js    jetstream.JetStream
	opts  Options
	reg   *platform.Registry
	rng   *rand.Rand
	began time.Time
	total uint64
	last  uint64
	read  uint64
	pos   uint64
	stats map[rawKey]*typeStats
	// currents are the current types events read as (CompatBackward).
	currents map[*platform.EventType]bool
	out      []platform.Envelope
	rep      Report
}

func (s *scan) progress(done bool) Progress {
	el := time.Since(s.began)
	p := Progress{Read: s.read, Total: s.total, Checked: s.rep.Checked, Position: s.pos, Last: s.last, Elapsed: el, Failures: s.rep.FailureCount, Done: done}
	if el > 0 {
		p.Rate = float64(s.read) / el.Seconds()
	}
	return p
}

func (s *scan) run(ctx context.Context, stream jetstream.Stream) error {
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy, InactiveThreshold: time.Minute})
	if err != nil {
		return platform.Errorf(platform.CodeStoreUnavailable, "schemacheck: create an ordered consumer on %s: %w", s.opts.Stream, err)
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
		if more, err := s.more(ctx, 0); err != nil || !more {
			return err
		}
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(2000))
	if err != nil {
		return platform.Errorf(platform.CodeStoreUnavailable, "schemacheck: read %s: %w", s.opts.Stream, err)
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
			return platform.Errorf(platform.CodeStoreUnavailable, "schemacheck: read %s after position %d: %w", s.opts.Stream, s.pos, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return platform.Errorf(platform.CodeStoreUnavailable, "schemacheck: read %s after position %d: %w", s.opts.Stream, s.pos, err)
		}
		pos := md.Sequence.Stream
		if pos > s.last {
			return nil // stored after the check started
		}
		s.read++
		s.pos = pos
		s.observe(pos, msg.Subject(), msg.Headers(), msg.Data())
		if s.opts.Progress != nil && s.read%256 == 0 {
			if now := time.Now(); now.After(nextReport) {
				s.opts.Progress(s.progress(false))
				nextReport = now.Add(s.opts.ProgressEvery)
			}
		}
		if pos >= s.last {
			return nil
		}
		if md.NumPending == 0 {
			if more, err := s.more(ctx, pos); err != nil || !more {
				return err
			}
		}
	}
}

// more asks the stream leader whether a message follows pos through the
// check's last position: the ordered consumer may sit on a replica
// behind the leader, whose pending count would end the check early.
func (s *scan) more(ctx context.Context, pos uint64) (bool, error) {
	more, err := lxjs.MoreAfter(ctx, s.js, s.opts.Stream, ">", pos, s.last)
	if err != nil {
		return false, platform.Errorf(platform.CodeStoreUnavailable, "schemacheck: ask the leader of %s what follows position %d: %w", s.opts.Stream, pos, err)
	}
	return more, nil
}

// observe counts one stored event and checks it if the sample takes it.
func (s *scan) observe(pos uint64, subject string, h nats.Header, data []byte) {
	k := rawKey{first(h, lxjs.TypeHeader), first(h, lxjs.SchemaHeader), first(h, lxjs.CodecHeader)}
	st := s.stats[k]
	if st == nil {
		st = s.newStats(k, pos)
		s.stats[k] = st
	}
	st.Count++
	st.LastPosition = pos
	if n := uint64(s.opts.Sample); n > 0 && st.Count > n && s.rng.Uint64N(st.Count) >= n {
		return
	}
	st.Checked++
	s.rep.Checked++
	switch {
	case st.malformed != "":
		s.fail(st, KindMalformed, pos, subject, h, st.malformed)
		return
	case st.resErr != nil:
		s.fail(st, st.kind, pos, subject, h, causeOf(st.resErr))
		return
	}
	e := platform.Envelope{Type: st.Type, SchemaVersion: st.SchemaVersion, Position: pos, KeyID: first(h, lxjs.KeyHeader)}
	if e.KeyID != "" { // sealed (package encryption): the registry's key ring opens it by aggregate
		e.Stream, _ = lxjs.StreamOf(s.opts.SubjectPrefix, subject)
	}
	out, err := s.reg.DecodeEnvelope(st.codec, &e, data, s.out[:0])
	s.out = out[:0]
	if err != nil {
		s.fail(st, decodeKind(err), pos, subject, h, causeOf(err))
		return
	}
	for i := range out {
		ev := &out[i]
		if ev.Retired() {
			continue
		}
		et, err := s.reg.TypeOf(ev.Event)
		if err == nil {
			err = current(s.reg, et)
		}
		if err != nil {
			s.fail(st, KindNotCurrent, pos, subject, h, fmt.Sprintf("it reads as a %T (part %d of %d): %s", ev.Event, ev.Origin.Part, ev.Origin.Parts, causeOf(err)))
			return
		}
		if s.currents != nil {
			s.currents[et] = true
		}
		if st.roundTrip {
			if cause := roundTrip(s.reg, st.codec, et, ev.Event); cause != "" {
				s.fail(st, KindCompatRoundTrip, pos, subject, h, cause)
				return
			}
		}
	}
}

// newStats reads a combination's headers once and resolves it.
func (s *scan) newStats(k rawKey, pos uint64) *typeStats {
	st := &typeStats{TypeReport: TypeReport{Type: k.typ, Codec: k.codec, FirstPosition: pos}}
	var err error
	if st.SchemaVersion, err = strconv.Atoi(k.schema); err != nil || st.SchemaVersion < 1 {
		st.malformed = fmt.Sprintf("bad %s header %q: the store writes a schema version of 1 or more", lxjs.SchemaHeader, k.schema)
	}
	if st.codec, err = platform.CodecByName(k.codec); err != nil {
		st.malformed = fmt.Sprintf("%s header: %s", lxjs.CodecHeader, causeOf(err))
	} else {
		st.Codec = st.codec.Name()
	}
	if k.typ == "" {
		st.malformed = fmt.Sprintf("no %s header: the message is not an event the store wrote", lxjs.TypeHeader)
	}
	if st.malformed != "" {
		st.ReadsAs = "unreadable"
		return st
	}
	st.res, st.resErr = s.reg.Resolve(st.Type, st.SchemaVersion)
	switch {
	case st.resErr != nil:
		st.ReadsAs, st.kind = "unreadable", KindNoPath
		if _, ok := s.reg.LookupVersion(st.Type, st.SchemaVersion); !ok {
			st.kind = KindUnknownVersion
			if _, ok := s.reg.Lookup(st.Type); !ok {
				st.kind = KindUnknownType
			}
		}
	case st.res.End == platform.EndCurrent:
		st.ReadsAs = fmt.Sprintf("%s v%d", st.res.Last().Name, st.res.Last().SchemaVersion)
	case st.res.End == platform.EndSplit:
		st.ReadsAs = fmt.Sprintf("split by %s v%d", st.res.Last().Name, st.res.Last().SchemaVersion)
	default:
		st.ReadsAs = "retired"
	}
	if s.opts.Compat == CompatBackward {
		if s.currents == nil {
			s.currents = map[*platform.EventType]bool{}
		}
		st.roundTrip = st.resErr == nil && beforeCurrent(s.reg, st.res)
	}
	return st
}

// beforeCurrent reports whether a resolution's first registration is
// the version just before a current one: its upcaster goes one to one
// to the current version, or it is split or retired while its name has
// a current version one above it.
func beforeCurrent(reg *platform.Registry, res platform.Resolution) bool {
	if len(res.Path) == 2 && res.End == platform.EndCurrent {
		return true
	}
	if len(res.Path) == 1 && res.End != platform.EndCurrent {
		cur, ok := reg.Lookup(res.Path[0].Name)
		return ok && cur.SchemaVersion == res.Path[0].SchemaVersion+1
	}
	return false
}

// current returns nil if et is the current version of its name.
func current(reg *platform.Registry, et *platform.EventType) error {
	res, err := reg.Resolve(et.Name, et.SchemaVersion)
	if err != nil {
		return err
	}
	if len(res.Path) != 1 || res.End != platform.EndCurrent || res.Path[0] != et {
		return fmt.Errorf("%s is not the current version of %q (it reads as %s)", et, et.Name, res.Last())
	}
	return nil
}

func (s *scan) fail(st *typeStats, kind Kind, pos uint64, subject string, h nats.Header, cause string) {
	st.Failures++
	s.rep.FailureCount++
	if st.examples >= maxExamples || len(s.rep.Failures) >= s.opts.MaxFailures {
		return
	}
	st.examples++
	f := Failure{Kind: kind, Type: st.Type, SchemaVersion: st.SchemaVersion, Codec: st.Codec, Position: pos, Subject: subject, Cause: cause}
	if st.malformed != "" {
		f.Codec = first(h, lxjs.CodecHeader)
	}
	if id, err := lxjs.StreamOf(s.opts.SubjectPrefix, subject); err == nil && s.opts.SubjectPrefix != "" {
		f.Aggregate = id.Type + "/" + id.ID
	}
	f.Version, _ = strconv.ParseUint(first(h, lxjs.VersionHeader), 10, 64)
	s.rep.Failures = append(s.rep.Failures, f)
}

// finish lists the combinations in order.
func (s *scan) finish() {
	s.rep.Events = s.read
	s.rep.Types = make([]TypeReport, 0, len(s.stats))
	for _, st := range s.stats {
		s.rep.Types = append(s.rep.Types, st.TypeReport)
	}
	slices.SortFunc(s.rep.Types, func(a, b TypeReport) int {
		return cmp.Or(cmp.Compare(a.Type, b.Type), cmp.Compare(a.SchemaVersion, b.SchemaVersion), cmp.Compare(a.Codec, b.Codec))
	})
}

func first(h nats.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// causeOf is an error's message without the wrappers' repetitions: the
// platform error's message when there is one.
func causeOf(err error) string {
	var de *platform.DecodeError
	if errors.As(err, &de) {
		err = de.Err
	}
	var pe *platform.Error
	if errors.As(err, &pe) && pe.Message != "" {
		return string(pe.Code) + ": " + pe.Message
	}
	return err.Error()
}

// decodeKind tells a body that does not decode from an upcaster that
// failed. The registry says which in its message: DecodeEnvelope's body
// errors start "decode ", its upcasters' "upcast ".
func decodeKind(err error) Kind {
	var de *platform.DecodeError
	var pe *platform.Error
	if errors.As(err, &de) && errors.As(de.Err, &pe) && strings.HasPrefix(pe.Message, "upcast ") {
		return KindUpcastFailed
	}
	return KindUndecodable
}
