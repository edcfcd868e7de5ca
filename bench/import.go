package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/jetstream/eventio"
)

// importJobs lists the figure of `lexigram events import` (issue 15).
func (r *runner) importJobs() []job {
	return []job{{names: []string{"events.import"}, env: envNoFsync, run: r.eventsImport}}
}

// importWindow is the appends in flight on both sides: Import's default.
const importWindow = 4000

// eventsImport times eventio.Import of an export (JSON lines, parsed,
// checked per aggregate, published async) into an empty stream against
// publishing the same messages, headers and all, async with the same
// window into another empty stream.
func (r *runner) eventsImport(ctx context.Context, e *env) ([]Figure, error) {
	total, rounds := 200_000, 3
	if r.opts.Quick {
		total, rounds = 50_000, 2
	}
	src, done, err := r.newStore(ctx, e, jetstream.FileStorage)
	if err != nil {
		return nil, err
	}
	defer done()
	if err := r.preload(ctx, e, src, "events.import", total); err != nil {
		return nil, err
	}
	var file bytes.Buffer
	if _, err := eventio.Export(ctx, e.js, eventio.Source{Stream: src.StreamName(), SubjectPrefix: src.SubjectPrefix()}, eventio.Filter{}, &file, nil); err != nil {
		return nil, err
	}
	// Each round appends into streams of its own, made before it is timed.
	var ours, raws []*lxjs.EventStore
	for range rounds {
		for _, side := range []*[]*lxjs.EventStore{&ours, &raws} {
			st, done, err := r.newStore(ctx, e, jetstream.FileStorage)
			if err != nil {
				return nil, err
			}
			defer done()
			*side = append(*side, st)
		}
	}
	rawMsgs := make([][]*nats.Msg, rounds)
	for i, dst := range raws {
		if rawMsgs[i], err = rawMessages(file.Bytes(), dst.SubjectPrefix()); err != nil {
			return nil, err
		}
	}
	var oi, ri int
	ourImport := func(ctx context.Context) error {
		dst := ours[oi]
		oi++
		p, err := eventio.Import(ctx, e.js, eventio.Source{Stream: dst.StreamName(), SubjectPrefix: dst.SubjectPrefix()}, bytes.NewReader(file.Bytes()), eventio.ImportOptions{Window: importWindow})
		if err != nil {
			return err
		}
		return expectCount("imported", p.Appended, total)
	}
	rawPublish := func(ctx context.Context) error {
		msgs := rawMsgs[ri]
		ri++
		return publishAsync(ctx, e.js, msgs)
	}
	o, w, err := alternateRates(ctx, rounds, total, ourImport, rawPublish)
	if err != nil {
		return nil, err
	}
	return []Figure{{
		Name: "events.import", Ours: median(o), Raw: median(w), Ratio: pairedRatio(o, w), Unit: "events/s", Target: ">= 0.80",
		Note: fmt.Sprintf("eventio.Import of %d exported events (%d aggregates; JSON lines parsed, versions checked, published async, %d in flight) into an empty stream vs PublishMsgAsync of the same messages and headers with the same window; fsync off; median of %d alternating rounds",
			total, max(1, total/loadEvents), importWindow, rounds),
	}}, nil
}

// rawMessages turns an export into the messages an import under prefix
// publishes.
func rawMessages(file []byte, prefix string) ([]*nats.Msg, error) {
	var msgs []*nats.Msg
	for line := range bytes.Lines(file) {
		var l eventio.Line
		if err := json.Unmarshal(line, &l); err != nil {
			return nil, err
		}
		msgs = append(msgs, &nats.Msg{Subject: lxjs.SubjectOf(prefix, l.Stream()), Header: l.Header, Data: l.Data})
	}
	return msgs, nil
}

// publishAsync publishes msgs with importWindow in flight.
func publishAsync(ctx context.Context, js jetstream.JetStream, msgs []*nats.Msg) error {
	acks := make([]jetstream.PubAckFuture, 0, importWindow+1)
	wait := func(keep int) error {
		for len(acks) > keep {
			select {
			case <-acks[0].Ok():
			case err := <-acks[0].Err():
				return err
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Minute):
				return fmt.Errorf("no ack within a minute")
			}
			acks = acks[1:]
		}
		return nil
	}
	for _, m := range msgs {
		ack, err := js.PublishMsgAsync(m)
		if err != nil {
			return err
		}
		acks = append(acks, ack)
		if err := wait(importWindow); err != nil {
			return err
		}
	}
	return wait(0)
}
