package bench

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/jetstream/audit"
)

func (r *runner) auditName() string {
	if r.opts.Quick {
		return "audit.rate.100k"
	}
	return "audit.rate.1m"
}

// auditRate times a full integrity audit (jetstream/audit.Check: every
// chain, version and position) over a preloaded stream against reading
// the same stream with an ordered consumer, which is what the audit reads
// through.
func (r *runner) auditRate(ctx context.Context, e *env) ([]Figure, error) {
	name, total := r.auditName(), r.plan.readAllN
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
		rep, err := audit.Check(ctx, e.js, audit.Options{Stream: st.StreamName(), SubjectPrefix: st.SubjectPrefix()})
		if err != nil {
			return err
		}
		if !rep.Clean() || rep.Events != uint64(total) || rep.Chained != uint64(total) {
			return fmt.Errorf("the audit of the preloaded stream: %d events, %d chained, counts %v", rep.Events, rep.Chained, rep.Counts)
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
		Name: name, Ours: median(o), Raw: median(w), Ratio: pairedRatio(o, w), Unit: "events/s", Target: ">= 0.80",
		Note: fmt.Sprintf("a full audit (hash chains, versions, duplicate IDs, global order) of %d chained events in %d aggregates vs an ordered consumer reading them; median of %d alternating runs",
			total, max(1, total/loadEvents), r.plan.readAllRounds),
	}}, nil
}
