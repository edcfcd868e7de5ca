package bench

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/jetstream/schemacheck"
)

func (r *runner) schemaCheckName() string {
	if r.opts.Quick {
		return "schema.check.100k"
	}
	return "schema.check.1m"
}

// schemaCheckRate times the schema deploy gate checking every event
// (jetstream/schemacheck.Check without a sample: headers resolved, every
// body decoded and upcast, the result checked) over a preloaded stream,
// against reading the same stream with an ordered consumer, which is
// what the check reads through.
func (r *runner) schemaCheckRate(ctx context.Context, e *env) ([]Figure, error) {
	name, total := r.schemaCheckName(), r.plan.readAllN
	st, done, err := r.newStore(ctx, e, jetstream.FileStorage)
	if err != nil {
		return nil, err
	}
	defer done()
	if err := r.preload(ctx, e, st, name, total); err != nil {
		return nil, err
	}
	stream, err := e.js.Stream(ctx, st.StreamName())
	if err != nil {
		return nil, err
	}
	ours := func(ctx context.Context) error {
		rep, err := schemacheck.Check(ctx, e.js, r.reg, schemacheck.Options{Stream: st.StreamName()})
		if err != nil {
			return err
		}
		if !rep.Clean() || rep.Events != uint64(total) || rep.Checked != uint64(total) {
			return fmt.Errorf("the schema check of the preloaded stream: %d events, %d checked, %d failures", rep.Events, rep.Checked, rep.FailureCount)
		}
		return nil
	}
	raw := func(ctx context.Context) error {
		n, err := rawReadAll(ctx, stream)
		if err != nil {
			return err
		}
		return expectCount("ordered consumer", n, total)
	}
	o, w, err := alternateRates(ctx, r.plan.readAllRounds, total, ours, raw)
	if err != nil {
		return nil, err
	}
	return []Figure{{
		Name: name, Ours: median(o), Raw: median(w), Ratio: pairedRatio(o, w), Unit: "events/s",
		Note: fmt.Sprintf("`lexigram schema check --all`: every one of %d events in %d aggregates resolved, decoded and its result checked, vs an ordered consumer reading them; median of %d alternating runs",
			total, max(1, total/loadEvents), r.plan.readAllRounds),
	}}, nil
}
