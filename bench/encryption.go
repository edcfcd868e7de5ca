package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/encryption"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

const (
	encryptedType      = "bench.encrypted.registered"
	encryptedAggregate = "enc-customer"
	encryptedWriters   = 16
	encryptedAccounts  = 160 // aggregates the append figure spreads over, each with its key
)

// encRegistered is codec.encrypted's event: two personal fields sealed,
// the rest readable.
type encRegistered struct {
	Account string
	Holder  string `lexigram:"personal"`
	IBAN    string `lexigram:"personal"`
	Cents   int64
	Memo    string
}

func encEvent(account string) encRegistered {
	return encRegistered{Account: account, Holder: "Ada Lovelace", IBAN: "GB33BUKB20201555555555", Cents: 100, Memo: memo[:min(len(memo), 40)]}
}

// encAccount is the aggregate the load figure loads; it checks that the
// personal fields came back.
type encAccount struct {
	platform.AggregateRoot
	n, holders int
}

func (a *encAccount) AggregateType() string { return encryptedAggregate }

func (a *encAccount) Apply(event any) {
	if e, ok := event.(encRegistered); ok {
		a.n++
		if e.Holder == "Ada Lovelace" {
			a.holders++
		}
	}
}

func (r *runner) encryptionJobs() []job {
	plain := envNoFsync
	if r.opts.NATSURL != "" {
		plain = envExternal
	}
	return []job{{names: []string{"codec.encrypted.append", "codec.encrypted.load", "codec.encrypted.load/whole"}, env: plain, run: r.encrypted}}
}

// encRings opens a key ring on a bucket of this run and returns the
// registries sealed by fields and sealed whole; the runner's registry,
// which the raw sides of alternate use, gets the event type unsealed.
func (r *runner) encRings(ctx context.Context, e *env) (fieldsReg, wholeReg *platform.Registry, done func(), err error) {
	if _, err := r.reg.TypeOf(encRegistered{}); err != nil {
		if err := platform.Register[encRegistered](r.reg, encryptedType, 1); err != nil {
			return nil, nil, nil, err
		}
	}
	key := make([]byte, 32)
	rand.Read(key)
	keys, err := encryption.NewStaticKeys("bench", map[string][]byte{"bench": key})
	if err != nil {
		return nil, nil, nil, err
	}
	r.seq++
	bucket := fmt.Sprintf("LXBENCH_KEYS_%s_%d", r.runID, r.seq)
	var rings []*encryption.Keyring
	done = func() {
		for _, k := range rings {
			_ = k.Close()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = e.js.DeleteKeyValue(ctx, bucket)
	}
	regs := make([]*platform.Registry, 2)
	for i, mode := range []encryption.Mode{encryption.ModeFields, encryption.ModeWhole} {
		regs[i] = platform.NewRegistry()
		if err := platform.Register[encRegistered](regs[i], encryptedType, 1); err != nil {
			return nil, nil, done, err
		}
		ring, err := encryption.Open(ctx, e.js, keys, encryption.Options{Bucket: bucket, Replicas: max(e.replicas, 1), Registry: regs[i], Mode: mode, Logger: r.log})
		if err != nil {
			return nil, nil, done, fmt.Errorf("open the key ring: %w", err)
		}
		rings = append(rings, ring)
	}
	return regs[0], regs[1], done, nil
}

// encrypted measures codec.encrypted: appends and a 1,000-event load
// with one data key per aggregate, against the same unencrypted, in the
// same run.
func (r *runner) encrypted(ctx context.Context, e *env) ([]Figure, error) {
	fieldsReg, wholeReg, done, err := r.encRings(ctx, e)
	defer func() {
		if done != nil {
			done()
		}
	}()
	if err != nil {
		return nil, err
	}
	appendFig, err := r.encryptedAppend(ctx, e, fieldsReg)
	if err != nil {
		return nil, err
	}
	figs := []Figure{appendFig}
	for _, m := range []struct {
		name string
		reg  *platform.Registry
	}{{"codec.encrypted.load", fieldsReg}, {"codec.encrypted.load/whole", wholeReg}} {
		f, err := r.encryptedLoad(ctx, e, m.name, m.reg)
		if err != nil {
			return nil, err
		}
		figs = append(figs, f)
	}
	return figs, nil
}

func (r *runner) encryptedAppend(ctx context.Context, e *env, sealedReg *platform.Registry) (Figure, error) {
	run := func(ctx context.Context, st *lxjs.EventStore) (float64, error) {
		ops := make([]op, encryptedWriters)
		for w := range ops {
			var mine []platform.StreamID
			for i := w; i < encryptedAccounts; i += encryptedWriters {
				mine = append(mine, platform.StreamID{Type: encryptedAggregate, ID: accountID(i)})
			}
			revs := make([]platform.Revision, len(mine))
			next := 0
			ops[w] = func(ctx context.Context) error {
				i := next % len(mine)
				next++
				res, err := st.Append(ctx, mine[i], platform.ExactRevision(revs[i]), []platform.Envelope{{Event: encEvent(mine[i].ID)}})
				if err != nil {
					return err
				}
				revs[i] = res.Revision()
				return nil
			}
		}
		return hammer(ctx, r.plan.phase, ops)
	}
	// The data keys exist and are cached before the rounds: the figure is
	// the steady cost of sealing, not the first append's key creation.
	warm, done, err := r.newStore(ctx, e, jetstream.FileStorage, func(o *lxjs.Options) { o.Registry = sealedReg })
	if err != nil {
		return Figure{}, err
	}
	_, err = run(ctx, warm)
	done()
	if err != nil {
		return Figure{}, fmt.Errorf("warm up: %w", err)
	}
	ours, raw, err := alternateWith(ctx, r, e, jetstream.FileStorage, func(o *lxjs.Options) { o.Registry = sealedReg }, run, run)
	if err != nil {
		return Figure{}, err
	}
	return Figure{
		Name: "codec.encrypted.append", Ours: median(ours), Raw: median(raw), Ratio: pairedRatio(ours, raw), Unit: "events/s", Target: ">= 0.85",
		Note: fmt.Sprintf("%d writers appending one event at a time to %d aggregates, each aggregate with its own data key (cached), two personal fields sealed (AES-256-GCM), vs the same appends unencrypted; median of %d alternating rounds of %v; higher is better",
			encryptedWriters, encryptedAccounts, r.plan.rounds, r.plan.phase),
	}, nil
}

// encryptedLoad times Repository.Load of a 1,000-event aggregate sealed
// under its data key against one stored plain, on one stream.
func (r *runner) encryptedLoad(ctx context.Context, e *env, name string, sealedReg *platform.Registry) (Figure, error) {
	plainSt, done, err := r.newStore(ctx, e, jetstream.FileStorage)
	if err != nil {
		return Figure{}, err
	}
	defer done()
	sealedSt, err := lxjs.New(ctx, e.js, lxjs.Options{Stream: plainSt.StreamName(), SubjectPrefix: plainSt.SubjectPrefix(),
		Replicas: max(e.replicas, 1), Storage: jetstream.FileStorage, Registry: sealedReg, Logger: r.log})
	if err != nil {
		return Figure{}, fmt.Errorf("open the stream with the sealing registry: %w", err)
	}
	sealed := platform.StreamID{Type: encryptedAggregate, ID: accountID(1)}
	plain := platform.StreamID{Type: encryptedAggregate, ID: accountID(2)}
	var revs [2]platform.Revision
	for range loadEvents / preloadBatch {
		for i, a := range []struct {
			st     *lxjs.EventStore
			stream platform.StreamID
		}{{sealedSt, sealed}, {plainSt, plain}} {
			evs := make([]platform.Envelope, preloadBatch)
			for j := range evs {
				evs[j].Event = encEvent(a.stream.ID)
			}
			res, err := a.st.Append(ctx, a.stream, platform.ExactRevision(revs[i]), evs)
			if err != nil {
				return Figure{}, fmt.Errorf("preload %s: %w", a.stream, err)
			}
			revs[i] = res.Revision()
		}
	}
	for ev, err := range sealedSt.Read(ctx, sealed, platform.Revision{}) {
		if err == nil && ev.KeyID == "" {
			err = fmt.Errorf("the events of %s are stored unsealed", sealed)
		}
		if err != nil {
			return Figure{}, err
		}
		break
	}
	load := func(st *lxjs.EventStore, id string) op {
		repo := platform.NewRepository(st, func() *encAccount { return &encAccount{} }, platform.RepositoryOptions{Logger: r.log})
		return func(ctx context.Context) error {
			a, err := repo.Load(ctx, id)
			if err != nil {
				return err
			}
			if a.n != loadEvents || a.holders != loadEvents {
				return fmt.Errorf("load %s: %d events, %d with their holder: want %d", id, a.n, a.holders, loadEvents)
			}
			return nil
		}
	}
	ops := []op{load(sealedSt, sealed.ID), load(plainSt, plain.ID)}
	var ours, raw []float64
	for i := -1; i < r.plan.loads; i++ { // i == -1 warms up (and caches the key)
		order := []int{0, 1}
		if i%2 == 1 {
			order = []int{1, 0}
		}
		var took [2]float64
		for _, k := range order {
			t := time.Now()
			if err := ops[k](ctx); err != nil {
				return Figure{}, err
			}
			took[k] = ms(time.Since(t))
		}
		if i >= 0 {
			ours, raw = append(ours, took[0]), append(raw, took[1])
		}
	}
	what := "two personal fields sealed"
	if name != "codec.encrypted.load" {
		what = "the whole body sealed"
	}
	return Figure{
		Name: name, Ours: median(ours), Raw: median(raw), Ratio: pairedRatio(ours, raw), Unit: "ms", Target: "<= 1.30",
		Note: fmt.Sprintf("Repository.Load of a %d-event aggregate with its own data key, %s (AES-256-GCM), vs the same load stored plain, their events interleaved on one stream; median of %d paired loads, alternating; lower is better",
			loadEvents, what, r.plan.loads),
	}, nil
}
