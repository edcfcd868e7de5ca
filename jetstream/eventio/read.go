package eventio

import (
	"context"
	"fmt"
	"iter"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// Source is where a store's events are: its stream and subject prefix
// (lxjs.EventStore's StreamName and SubjectPrefix).
type Source struct {
	Stream        string
	SubjectPrefix string
}

// Filter picks what Read reads. The zero value reads every event.
type Filter struct {
	AggregateType string // "": every type
	AggregateID   string // with AggregateType: one aggregate
	EventTypes    []string
	After         uint64    // positions after this one
	Since         time.Time // with After 0: events stored at or after this time
	Follow        bool      // go on with events appended later, until ctx ends
}

// ParseAggregate reads "type" or "type/id", as the CLI takes an
// aggregate filter; "" is every aggregate.
func ParseAggregate(s string) (aggregateType, id string, err error) {
	if s == "" {
		return "", "", nil
	}
	aggregateType, id, _ = strings.Cut(s, "/")
	if aggregateType == "" || strings.ContainsAny(aggregateType, ".*> ") {
		return "", "", platform.Errorf(platform.CodeInvalidArgument, "aggregate filter %q: use an aggregate type (order) or one aggregate (order/42)", s)
	}
	return aggregateType, id, nil
}

func (f Filter) subject(prefix string) string {
	switch {
	case f.AggregateType == "":
		return prefix + ".>"
	case f.AggregateID == "":
		return prefix + "." + f.AggregateType + ".*"
	}
	return lxjs.SubjectOf(prefix, platform.StreamID{Type: f.AggregateType, ID: f.AggregateID})
}

// Read yields the events f picks, in stream order, until the stream's end
// as it was when Read started (or, with Follow, until ctx ends).
func Read(ctx context.Context, js jetstream.JetStream, src Source, f Filter) iter.Seq2[Line, error] {
	return func(yield func(Line, error) bool) {
		fail := func(err error) { yield(Line{}, err) }
		stream, err := js.Stream(ctx, src.Stream)
		if err != nil {
			fail(fmt.Errorf("stream %s: %w: is this the node's NATS, and its store.stream?", src.Stream, err))
			return
		}
		subject := f.subject(src.SubjectPrefix)
		// The leader's last position when the read starts: a read that
		// does not follow stops there, and asks the leader before it
		// believes its consumer has nothing more (lxjs.MoreAfter).
		last := stream.CachedInfo().State.LastSeq
		more := func(pos uint64) (bool, error) {
			more, err := lxjs.MoreAfter(ctx, js, src.Stream, subject, pos, last)
			if err != nil {
				return false, fmt.Errorf("read %s: ask its leader what follows position %d: %w", src.Stream, pos, err)
			}
			return more, nil
		}
		cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}, InactiveThreshold: time.Minute}
		switch {
		case f.After > 0:
			cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, f.After+1
		case !f.Since.IsZero():
			cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &f.Since
		}
		cons, err := stream.OrderedConsumer(ctx, cfg)
		if err != nil {
			fail(fmt.Errorf("read %s: %w", src.Stream, err))
			return
		}
		defer func() {
			// Ordered consumers are ephemeral: delete this one rather
			// than leave it to expire.
			if info := cons.CachedInfo(); info != nil {
				dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				defer cancel()
				_ = stream.DeleteConsumer(dctx, info.Name)
			}
		}()
		if info := cons.CachedInfo(); info != nil && info.NumPending == 0 && !f.Follow {
			if !f.Since.IsZero() {
				return // nothing since then; MoreAfter would count what came before
			}
			if more, err := more(f.After); err != nil || !more {
				if err != nil {
					fail(err)
				}
				return
			}
		}
		it, err := cons.Messages(jetstream.PullMaxMessages(1000))
		if err != nil {
			fail(fmt.Errorf("read %s: %w", src.Stream, err))
			return
		}
		defer it.Stop()
		defer context.AfterFunc(ctx, it.Stop)()
		types := map[string]bool{}
		for _, t := range f.EventTypes {
			types[t] = true
		}
		for {
			msg, err := it.Next()
			if ctx.Err() != nil {
				if !f.Follow {
					fail(ctx.Err())
				}
				return
			}
			if err != nil {
				fail(fmt.Errorf("read %s: %w", src.Stream, err))
				return
			}
			md, err := msg.Metadata()
			if err != nil {
				fail(fmt.Errorf("read %s: %w", src.Stream, err))
				return
			}
			if !f.Follow && md.Sequence.Stream > last {
				return // stored after the read started
			}
			agg, err := lxjs.StreamOf(src.SubjectPrefix, msg.Subject())
			if err != nil {
				fail(fmt.Errorf("read %s at position %d: %w", src.Stream, md.Sequence.Stream, err))
				return
			}
			l := Line{Position: md.Sequence.Stream, Time: md.Timestamp, AggregateType: agg.Type, AggregateID: agg.ID, Header: msg.Headers(), Data: msg.Data()}
			if len(types) == 0 || types[l.EventType()] {
				if !yield(l, nil) {
					return
				}
			}
			if !f.Follow && (md.Sequence.Stream >= last || md.NumPending == 0) {
				if more, err := more(md.Sequence.Stream); err != nil || !more {
					if err != nil {
						fail(err)
					}
					return
				}
			}
		}
	}
}
