package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// The three versions of the codec.upcast figure's event: v2 renames
// Amount to Cents, v3 adds Currency (default "EUR").
type (
	upDepositedV1 struct {
		Account string
		Amount  int64
		Memo    string
	}
	upDepositedV2 struct {
		Account string
		Cents   int64
		Memo    string
	}
	upDepositedV3 struct {
		Account  string
		Cents    int64
		Memo     string
		Currency string
	}
)

const (
	upcastType      = "bench.upcast.deposited"
	upcastAggregate = "upcast-account"
)

// upAccount is the aggregate codec.upcast loads: it applies v3 events only,
// so a load of v1 events that were not upcast would fail the check.
type upAccount struct {
	platform.AggregateRoot
	deposits int
	cents    int64
	eur      int
}

func (a *upAccount) AggregateType() string { return upcastAggregate }

func (a *upAccount) Apply(event any) {
	if d, ok := event.(upDepositedV3); ok {
		a.deposits++
		a.cents += d.Cents
		if d.Currency == "EUR" {
			a.eur++
		}
	}
}

// upcastRegistries returns a registry where v1 is the current version,
// to write v1 events with, and one with all three versions and the
// upcasters v1 → v2 → v3, to read them.
func upcastRegistries() (v1, v3 *platform.Registry, err error) {
	v1, v3 = platform.NewRegistry(), platform.NewRegistry()
	for _, f := range []func() error{
		func() error { return platform.Register[upDepositedV1](v1, upcastType, 1) },
		func() error { return platform.Register[upDepositedV1](v3, upcastType, 1) },
		func() error { return platform.Register[upDepositedV2](v3, upcastType, 2) },
		func() error { return platform.Register[upDepositedV3](v3, upcastType, 3) },
		func() error {
			return platform.Upcast(v3, func(e upDepositedV1) upDepositedV2 {
				return upDepositedV2{Account: e.Account, Cents: e.Amount, Memo: e.Memo}
			})
		},
		func() error {
			return platform.Upcast(v3, func(e upDepositedV2) upDepositedV3 {
				return upDepositedV3{Account: e.Account, Cents: e.Cents, Memo: e.Memo, Currency: "EUR"}
			})
		},
		v3.Check,
	} {
		if err := f(); err != nil {
			return nil, nil, fmt.Errorf("bench: codec.upcast registrations: %w", err)
		}
	}
	return v1, v3, nil
}

// upcastLoad times Repository.Load of a 1,000-event aggregate stored as v1
// and read through the chain v1 → v2 → v3, against the same load of an
// aggregate stored as v3, on one stream.
func (r *runner) upcastLoad(ctx context.Context, e *env) ([]Figure, error) {
	v1Reg, v3Reg, err := upcastRegistries()
	if err != nil {
		return nil, err
	}
	st, done, err := r.newStore(ctx, e, jetstream.FileStorage, func(o *lxjs.Options) { o.Registry = v3Reg })
	if err != nil {
		return nil, err
	}
	defer done()
	// The same stream, written by a process that knows only v1.
	old, err := lxjs.New(ctx, e.js, lxjs.Options{Stream: st.StreamName(), SubjectPrefix: st.SubjectPrefix(),
		Replicas: max(e.replicas, 1), Storage: jetstream.FileStorage, Registry: v1Reg, Logger: r.log})
	if err != nil {
		return nil, fmt.Errorf("open the stream with the v1 registry: %w", err)
	}
	stored := platform.StreamID{Type: upcastAggregate, ID: accountID(1)}
	current := platform.StreamID{Type: upcastAggregate, ID: accountID(3)}
	v1Size, v3Size := 0, 0
	var revs [2]platform.Revision
	for range loadEvents / preloadBatch { // the two aggregates' events interleave
		v1s, v3s := make([]platform.Envelope, preloadBatch), make([]platform.Envelope, preloadBatch)
		for i := range preloadBatch {
			v1s[i].Event = upDepositedV1{Account: stored.ID, Amount: 100, Memo: memo}
			v3s[i].Event = upDepositedV3{Account: current.ID, Cents: 100, Memo: memo, Currency: "EUR"}
		}
		for i, a := range []struct {
			st     *lxjs.EventStore
			stream platform.StreamID
			evs    []platform.Envelope
		}{{old, stored, v1s}, {st, current, v3s}} {
			res, err := a.st.Append(ctx, a.stream, platform.ExactRevision(revs[i]), a.evs)
			if err != nil {
				return nil, fmt.Errorf("preload %s: %w", a.stream, err)
			}
			revs[i] = res.Revision()
		}
	}
	if b, err := platform.Msgpack.Marshal(upDepositedV1{Account: stored.ID, Amount: 100, Memo: memo}); err == nil {
		v1Size = len(b)
	}
	if b, err := platform.Msgpack.Marshal(upDepositedV3{Account: current.ID, Cents: 100, Memo: memo, Currency: "EUR"}); err == nil {
		v3Size = len(b)
	}
	repo := platform.NewRepository(st, func() *upAccount { return &upAccount{} }, platform.RepositoryOptions{Logger: r.log})
	load := func(id string) op {
		return func(ctx context.Context) error {
			a, err := repo.Load(ctx, id)
			if err != nil {
				return err
			}
			if a.Version() != loadEvents || a.deposits != loadEvents || a.eur != loadEvents || a.cents != 100*loadEvents {
				return fmt.Errorf("load %s: version %d, %d deposits, %d in EUR, %d cents: want %d, %d, %d, %d",
					id, a.Version(), a.deposits, a.eur, a.cents, loadEvents, loadEvents, loadEvents, 100*loadEvents)
			}
			return nil
		}
	}
	ops := []op{load(stored.ID), load(current.ID)}
	names := []string{"load of v1 events upcast to v3", "load of v3 events"}
	var ours, raw []float64
	for i := -1; i < r.plan.loads; i++ { // i == -1 warms up
		order := []int{0, 1}
		if i%2 == 1 {
			order = []int{1, 0}
		}
		var took [2]float64
		for _, k := range order {
			t := time.Now()
			if err := ops[k](ctx); err != nil {
				return nil, fmt.Errorf("%s: %w", names[k], err)
			}
			took[k] = ms(time.Since(t))
		}
		if i >= 0 {
			ours, raw = append(ours, took[0]), append(raw, took[1])
		}
	}
	return []Figure{{
		Name: "codec.upcast", Ours: median(ours), Raw: median(raw), Ratio: pairedRatio(ours, raw), Unit: "ms", Target: "<= 1.30",
		Note: fmt.Sprintf("Repository.Load of a %d-event aggregate stored as v1 (%d-byte bodies) and upcast v1 → v2 → v3 on read, vs the same load of one stored as v3 (%d bytes), their events interleaved on one stream; median of %d paired loads, alternating; lower is better",
			loadEvents, v1Size, v3Size, r.plan.loads),
	}}, nil
}
