package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/kvsnapshot"
	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/tenancy"
)

const (
	tenancyTenants = 8
	tenancyWriters = 64 // concurrentWriters, spread over the tenants
)

func (r *runner) tenancyJobs() []job {
	plain := envNoFsync
	if r.opts.NATSURL != "" {
		plain = envExternal
	}
	return []job{{names: []string{"tenancy.append"}, env: plain, run: r.tenancyAppend}}
}

// tenancyRound opens tenancyTenants fresh tenants (their streams and
// buckets named for this run and round) and returns them with a func
// that deletes what they made.
func (r *runner) tenancyRound(ctx context.Context, e *env) (*tenancy.Tenants, []*tenancy.Tenant, func(), error) {
	r.seq++
	base := fmt.Sprintf("LXBENCH_%s_%d", r.runID, r.seq)
	ts := tenancy.New(e.js, tenancy.Options{Stream: base, SubjectPrefix: fmt.Sprintf("lxbench.%s.%d", r.runID, r.seq),
		Replicas: max(e.replicas, 1), Registry: r.reg, Logger: r.log})
	var open []*tenancy.Tenant
	done := func() {
		for _, t := range open {
			r.deleteStream(e, ts.StreamOf(t.ID))
			dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			for _, b := range []string{kvsnapshot.DefaultSnapshotBucket + "_" + t.ID, kvsnapshot.DefaultCheckpointBucket + "_" + t.ID} {
				_ = e.js.DeleteKeyValue(dctx, b)
			}
			cancel()
		}
	}
	for i := range tenancyTenants {
		// Tenant IDs of this run and round: the buckets are named by
		// the tenant alone.
		t, err := ts.Open(ctx, fmt.Sprintf("b%s%dt%d", r.runID, r.seq, i))
		if err != nil {
			done()
			return nil, nil, nil, fmt.Errorf("open tenant %d: %w", i, err)
		}
		open = append(open, t)
	}
	return ts, open, done, nil
}

// tenancyAppend measures tenancy.append: 64 writers, 8 per tenant, each
// picking its tenant's store from its context (Tenants.For) for every
// conditional single-event append, against raw JetStream publishes with
// the same expectation to the same kind of per-tenant streams, in
// alternating rounds.
func (r *runner) tenancyAppend(ctx context.Context, e *env) ([]Figure, error) {
	ours := func(ctx context.Context, ts *tenancy.Tenants, tenants []*tenancy.Tenant) (float64, error) {
		ops := make([]op, tenancyWriters)
		for w := range ops {
			t := tenants[w%tenancyTenants]
			ids := owned(w/tenancyTenants, tenancyWriters/tenancyTenants, concurrentAggregates/tenancyTenants)
			streams := make([]platform.StreamID, len(ids))
			evs := make([][]platform.Envelope, len(ids))
			for k, i := range ids {
				streams[k] = streamID(i)
				evs[k] = events(streams[k].ID, 1)
			}
			revs := make([]platform.Revision, len(ids))
			pick := picker(len(ids), true, uint64(w))
			ops[w] = func(ctx context.Context) error {
				// As a request that names its tenant: the tenant is
				// put in its context, and the store picked from it.
				tctx := platform.WithTenant(ctx, t.ID)
				tn, err := ts.For(tctx)
				if err != nil {
					return err
				}
				k := pick()
				res, err := tn.Store.Append(tctx, streams[k], platform.ExactRevision(revs[k]), evs[k])
				if err != nil {
					return err
				}
				revs[k] = res.Revision()
				return nil
			}
		}
		return hammer(ctx, r.plan.phase, ops)
	}
	raw := func(ctx context.Context, _ *tenancy.Tenants, tenants []*tenancy.Tenant) (float64, error) {
		ops := make([]op, tenancyWriters)
		for w := range ops {
			st := tenants[w%tenancyTenants].Store
			ids := owned(w/tenancyTenants, tenancyWriters/tenancyTenants, concurrentAggregates/tenancyTenants)
			subjects, err := subjectsOf(st, ids)
			if err != nil {
				return 0, err
			}
			last := make([]uint64, len(ids))
			pick := picker(len(ids), true, uint64(w))
			ops[w] = func(ctx context.Context) error {
				k := pick()
				ack, err := e.js.PublishMsg(ctx, &nats.Msg{Subject: subjects[k], Header: nats.Header{}, Data: r.body},
					jetstream.WithExpectLastSequencePerSubject(last[k]))
				if err != nil {
					return err
				}
				last[k] = ack.Sequence
				return nil
			}
		}
		return hammer(ctx, r.plan.phase, ops)
	}
	var o, w []float64
	for i := range r.plan.rounds {
		type half struct {
			name string
			run  func(context.Context, *tenancy.Tenants, []*tenancy.Tenant) (float64, error)
			out  *[]float64
		}
		halves := []half{{"ours", ours, &o}, {"raw", raw, &w}}
		if i%2 == 1 {
			halves[0], halves[1] = halves[1], halves[0]
		}
		for _, h := range halves {
			ts, tenants, done, err := r.tenancyRound(ctx, e)
			if err != nil {
				return nil, err
			}
			v, err := h.run(ctx, ts, tenants)
			done()
			if err != nil {
				return nil, fmt.Errorf("tenancy.append %s, round %d: %w", h.name, i+1, err)
			}
			*h.out = append(*h.out, v)
		}
	}
	return []Figure{{
		Name: "tenancy.append", Ours: median(o), Raw: median(w), Ratio: pairedRatio(o, w), Unit: "events/s",
		Note: fmt.Sprintf("%d writers over %d tenants (a stream each), conditional single-event appends to %d aggregates per tenant, each append picking its tenant's store from the context (Tenants.For), vs raw JetStream publishes with the same expectation to the same streams; %s",
			tenancyWriters, tenancyTenants, concurrentAggregates/tenancyTenants, roundsNote(r, o, w, 1)),
	}}, nil
}
