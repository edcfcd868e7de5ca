package handlers_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nuid"

	"github.com/lexigram/events/embedded"
	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/handlers"
	"github.com/lexigram/events/platform"
)

// Charge is the command of the idempotency tests; Key, when set, is its
// idempotency key.
type Charge struct {
	Account string
	Key     string
}

func (c Charge) IdempotencyKey() string { return c.Key }

// Refund has no IdempotencyKey method: its key comes from the context.
type Refund struct{ Account string }

// Transfer's handler sends a Refund with the context it was given.
type Transfer struct{ Account string }

func init() {
	platform.MustRegister[Charge](reg, "test.charge", 1)
	platform.MustRegister[Refund](reg, "test.refund", 1)
	platform.MustRegister[Transfer](reg, "test.transfer", 1)
}

// ledger is one process with the Idempotency middleware in the default
// pipeline, after Tracing. Every run of a Charge or Refund handler opens
// an order of its own, "<account>-<run>", so a result says which run
// made it.
type ledger struct {
	bus  *handlers.CommandBus
	runs atomic.Int64
	keys chan string // the idempotency key each run's message had
	// hook, when set, runs first in each run: to fail it, or to hold it.
	hook atomic.Pointer[func(ctx context.Context, run int64) error]
}

func newLedger(t *testing.T, kv jetstream.KeyValue, io handlers.IdempotencyOptions, o handlers.Options) *ledger {
	t.Helper()
	l := &ledger{keys: make(chan string, 100)}
	store := platform.NewMemoryEventStore(platform.MemoryOptions{Registry: reg})
	orders := platform.NewRepository(store, func() *Order { return &Order{} }, platform.RepositoryOptions{})
	o.Registry = reg
	if o.Logger == nil {
		o.Logger = quiet()
	}
	if io.Logger == nil {
		io.Logger = embeddedtest.Logger(t)
	}
	mw := handlers.DefaultMiddleware(o)
	o.Middleware = append([]handlers.Middleware{mw[0], handlers.Idempotency(kv, io)}, mw[1:]...)
	l.bus = handlers.NewCommandBus(o)
	charge := func(ctx context.Context, account string) error {
		run := l.runs.Add(1)
		m, _ := handlers.MessageFrom(ctx)
		l.keys <- m.IdempotencyKey
		if h := l.hook.Load(); h != nil {
			if err := (*h)(ctx, run); err != nil {
				return err
			}
		}
		order := &Order{}
		order.SetID(fmt.Sprintf("%s-%d", account, run))
		platform.Raise(order, OrderPlaced{Customer: account})
		return handlers.Track(ctx, orders, order)
	}
	must(t, handlers.HandleCommand(l.bus, func(ctx context.Context, c Charge) error { return charge(ctx, c.Account) }))
	must(t, handlers.HandleCommand(l.bus, func(ctx context.Context, c Refund) error { return charge(ctx, c.Account) }))
	must(t, handlers.HandleCommand(l.bus, func(ctx context.Context, c Transfer) error {
		_, err := l.bus.Dispatch(ctx, Refund(c))
		return err
	}))
	return l
}

func (l *ledger) setHook(h func(ctx context.Context, run int64) error) { l.hook.Store(&h) }

// idempotencyBucket opens the bucket on its own connection to srv.
func idempotencyBucket(t *testing.T, srv *embedded.Server, storage jetstream.StorageType) jetstream.KeyValue {
	t.Helper()
	js, err := jetstream.New(embeddedtest.Conn(t, srv))
	must(t, err)
	kv, err := handlers.OpenIdempotencyBucket(ctxT(t), js, handlers.IdempotencyBucketOptions{Storage: storage})
	must(t, err)
	return kv
}

// sameResult fails unless b is a: the repeat got the first dispatch's
// result, its events decoded with the registry.
func sameResult(t *testing.T, what string, a, b handlers.CommandResult) {
	t.Helper()
	if a.Aggregate != b.Aggregate || a.Version != b.Version || a.Position != b.Position || !reflect.DeepEqual(a.Changes, b.Changes) || len(a.Events) != len(b.Events) {
		t.Fatalf("%s: got %+v, want the first result %+v", what, b, a)
	}
	for i := range a.Events {
		x, y := a.Events[i], b.Events[i]
		x.Time, y.Time = time.Time{}, time.Time{} // a result's events carry no time
		if !reflect.DeepEqual(x, y) {
			t.Fatalf("%s: event %d is %+v, want %+v", what, i, y, x)
		}
	}
}

func TestIdempotencyRepeatGetsTheFirstResult(t *testing.T) {
	ctx := ctxT(t)
	srv := embeddedtest.Server(t)
	kv := idempotencyBucket(t, srv, jetstream.MemoryStorage)
	l := newLedger(t, kv, handlers.IdempotencyOptions{}, handlers.Options{})

	// The key of the context.
	keyed := handlers.WithIdempotencyKey(ctx, "refund-1")
	first, err := l.bus.Dispatch(keyed, Refund{Account: "ada"})
	must(t, err)
	if first.Aggregate.ID != "ada-1" || len(first.Events) != 1 || first.Events[0].Event != (OrderPlaced{Customer: "ada"}) {
		t.Fatalf("first result %+v", first)
	}
	again, err := l.bus.Dispatch(keyed, Refund{Account: "ada"})
	must(t, err)
	sameResult(t, "a repeat of refund-1", first, again)
	if n := l.runs.Load(); n != 1 {
		t.Fatalf("the handler ran %d times for one key, want 1", n)
	}
	if k := <-l.keys; k != "refund-1" {
		t.Errorf("the handler's message has idempotency key %q, want refund-1", k)
	}

	// The command's own key, which wins over the context's.
	c1, err := l.bus.Dispatch(ctx, Charge{Account: "bob", Key: "charge-1"})
	must(t, err)
	c2, err := l.bus.Dispatch(handlers.WithIdempotencyKey(ctx, "another"), Charge{Account: "bob", Key: "charge-1"})
	must(t, err)
	sameResult(t, "a repeat of charge-1 with another key in its context", c1, c2)
	if n := l.runs.Load(); n != 2 {
		t.Fatalf("the handler ran %d times for two keys, want 2", n)
	}
	// Without a key of its own, the context's.
	c3, err := l.bus.Dispatch(handlers.WithIdempotencyKey(ctx, "refund-1"), Charge{Account: "ada"})
	if !errors.Is(err, platform.ErrInvalidArgument) || !strings.Contains(err.Error(), "test.refund") {
		t.Fatalf("a charge with the key of a refund: %+v, %v: want ErrInvalidArgument naming the refund", c3, err)
	}

	// Keys of any bytes and length; "" in the context takes the key away.
	for _, key := range []string{"α/β key:1 ✓ *.>", strings.Repeat("long-", 60)} {
		a, err := l.bus.Dispatch(ctx, Charge{Account: "cy", Key: key})
		must(t, err)
		b, err := l.bus.Dispatch(ctx, Charge{Account: "cy", Key: key})
		must(t, err)
		sameResult(t, fmt.Sprintf("a repeat of the %d-byte key %.20q", len(key), key), a, b)
	}
	if n := l.runs.Load(); n != 4 {
		t.Fatalf("the handler ran %d times for four keys, want 4", n)
	}
	unkeyed := handlers.WithIdempotencyKey(keyed, "")
	for range 2 {
		_, err := l.bus.Dispatch(unkeyed, Refund{Account: "dee"})
		must(t, err)
	}
	if n := l.runs.Load(); n != 6 {
		t.Fatalf("the handler ran %d times, want 6: a context's key taken away with \"\" is no key", n)
	}
}

// Processes with other codecs share the bucket: the result records its
// codec, and the registry of the process that finds it decodes it.
func TestIdempotencySharedAcrossCodecs(t *testing.T) {
	ctx := ctxT(t)
	srv := embeddedtest.Server(t)
	withJSON := newLedger(t, idempotencyBucket(t, srv, jetstream.MemoryStorage), handlers.IdempotencyOptions{}, handlers.Options{Codec: platform.JSON})
	withMsgpack := newLedger(t, idempotencyBucket(t, srv, jetstream.MemoryStorage), handlers.IdempotencyOptions{}, handlers.Options{})
	first, err := withJSON.bus.Dispatch(ctx, Charge{Account: "ada", Key: "k"})
	must(t, err)
	again, err := withMsgpack.bus.Dispatch(ctx, Charge{Account: "ada", Key: "k"})
	must(t, err)
	sameResult(t, "a repeat in a msgpack process of a JSON process's command", first, again)
	if withMsgpack.runs.Load() != 0 {
		t.Fatal("the second process ran the command")
	}
}

func TestIdempotencyConcurrentRepeatsRunOnce(t *testing.T) {
	ctx := ctxT(t)
	srv := embeddedtest.Server(t)
	l := newLedger(t, idempotencyBucket(t, srv, jetstream.MemoryStorage), handlers.IdempotencyOptions{}, handlers.Options{})
	l.setHook(func(context.Context, int64) error { time.Sleep(50 * time.Millisecond); return nil }) // the others arrive while it runs

	const n = 16
	start := make(chan struct{})
	results := make([]handlers.CommandResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			results[i], errs[i] = l.bus.Dispatch(ctx, Charge{Account: "ada", Key: "charge-16"})
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("dispatch %d: %v", i, err)
		}
		sameResult(t, fmt.Sprintf("dispatch %d", i), results[0], results[i])
	}
	if runs := l.runs.Load(); runs != 1 {
		t.Fatalf("the handler ran %d times for %d concurrent dispatches of one key, want 1", runs, n)
	}
	if results[0].Aggregate.ID != "ada-1" {
		t.Fatalf("result %+v", results[0])
	}
}

func TestIdempotencyResultExpiresAfterTheWindow(t *testing.T) {
	ctx := ctxT(t)
	srv := embeddedtest.Server(t)
	l := newLedger(t, idempotencyBucket(t, srv, jetstream.MemoryStorage), handlers.IdempotencyOptions{Window: time.Second}, handlers.Options{})
	first, err := l.bus.Dispatch(ctx, Charge{Account: "ada", Key: "short"})
	must(t, err)
	ran := time.Now()
	again, err := l.bus.Dispatch(ctx, Charge{Account: "ada", Key: "short"})
	must(t, err)
	sameResult(t, "a repeat within the window", first, again)

	// Repeat until the handler runs again: once the server has expired
	// the result, which it must not do before the window.
	var later handlers.CommandResult
	eventually(t, "the result to expire and the command to run again", func() bool {
		if later, err = l.bus.Dispatch(ctx, Charge{Account: "ada", Key: "short"}); err != nil {
			t.Fatal(err)
		}
		if l.runs.Load() == 1 {
			time.Sleep(20 * time.Millisecond)
			return false
		}
		return true
	})
	if took := time.Since(ran); took < 900*time.Millisecond {
		t.Errorf("the command ran again %v after the first run: before its window of 1s", took)
	}
	if later.Aggregate.ID != "ada-2" {
		t.Fatalf("after the window: result %+v, want the second run's", later)
	}
	last, err := l.bus.Dispatch(ctx, Charge{Account: "ada", Key: "short"})
	must(t, err)
	sameResult(t, "a repeat of the second run", later, last)
	if n := l.runs.Load(); n != 2 {
		t.Fatalf("the handler ran %d times, want 2", n)
	}
}

func TestIdempotencyFailureIsNotRemembered(t *testing.T) {
	ctx := ctxT(t)
	srv := embeddedtest.Server(t)
	l := newLedger(t, idempotencyBucket(t, srv, jetstream.MemoryStorage), handlers.IdempotencyOptions{}, handlers.Options{})
	l.setHook(func(_ context.Context, run int64) error {
		switch run {
		case 1:
			return errors.New("card declined")
		case 2:
			panic("card reader on fire")
		}
		return nil
	})
	if _, err := l.bus.Dispatch(ctx, Charge{Account: "ada", Key: "retry-me"}); !errors.Is(err, platform.ErrCommandExecution) || !strings.Contains(err.Error(), "card declined") {
		t.Fatalf("first dispatch: %v, want the handler's error", err)
	}
	if _, err := l.bus.Dispatch(ctx, Charge{Account: "ada", Key: "retry-me"}); !errors.Is(err, platform.ErrHandlerPanic) {
		t.Fatalf("second dispatch: %v, want the handler's panic", err)
	}
	ok, err := l.bus.Dispatch(ctx, Charge{Account: "ada", Key: "retry-me"})
	must(t, err)
	if ok.Aggregate.ID != "ada-3" {
		t.Fatalf("the retry's result %+v, want the third run's", ok)
	}
	again, err := l.bus.Dispatch(ctx, Charge{Account: "ada", Key: "retry-me"})
	must(t, err)
	sameResult(t, "a repeat after the success", ok, again)
	if n := l.runs.Load(); n != 3 {
		t.Fatalf("the handler ran %d times, want 3: two failures, then one success remembered", n)
	}

	// A repeat waiting for a first dispatch that then fails runs the command itself.
	release := make(chan struct{})
	started := make(chan struct{})
	l.setHook(func(_ context.Context, run int64) error {
		if run == 4 {
			close(started)
			<-release
			return errors.New("card declined")
		}
		return nil
	})
	firstErr := make(chan error, 1)
	go func() {
		_, err := l.bus.Dispatch(ctx, Charge{Account: "bob", Key: "wait-then-run"})
		firstErr <- err
	}()
	<-started
	second := make(chan handlers.CommandResult, 1)
	go func() {
		res, err := l.bus.Dispatch(ctx, Charge{Account: "bob", Key: "wait-then-run"})
		if err != nil {
			t.Error(err)
		}
		second <- res
	}()
	time.Sleep(50 * time.Millisecond) // give it time to find the claim held; passes without, testing less
	if n := l.runs.Load(); n != 4 {
		t.Fatalf("the repeat ran while the first dispatch held the key: %d runs, want 4", n)
	}
	close(release)
	if err := <-firstErr; err == nil {
		t.Fatal("the first dispatch did not fail")
	}
	if res := <-second; res.Aggregate.ID != "bob-5" {
		t.Fatalf("the waiting repeat's result %+v, want its own run's after the first failed", res)
	}
}

// countingKV counts the calls that reach the bucket.
type countingKV struct {
	jetstream.KeyValue
	calls atomic.Int64
}

func (c *countingKV) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	c.calls.Add(1)
	return c.KeyValue.Get(ctx, key)
}

func (c *countingKV) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	c.calls.Add(1)
	return c.KeyValue.Create(ctx, key, value, opts...)
}

func (c *countingKV) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	c.calls.Add(1)
	return c.KeyValue.Update(ctx, key, value, rev)
}

func (c *countingKV) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	c.calls.Add(1)
	return c.KeyValue.Put(ctx, key, value)
}

func (c *countingKV) Delete(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	c.calls.Add(1)
	return c.KeyValue.Delete(ctx, key, opts...)
}

func (c *countingKV) Purge(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	c.calls.Add(1)
	return c.KeyValue.Purge(ctx, key, opts...)
}

func (c *countingKV) Status(ctx context.Context) (jetstream.KeyValueStatus, error) {
	c.calls.Add(1)
	return c.KeyValue.Status(ctx)
}

func TestIdempotencyWithoutKeyTouchesNoKV(t *testing.T) {
	ctx := ctxT(t)
	srv := embeddedtest.Server(t)
	kv := &countingKV{KeyValue: idempotencyBucket(t, srv, jetstream.MemoryStorage)}
	l := newLedger(t, kv, handlers.IdempotencyOptions{}, handlers.Options{})
	for range 5 {
		_, err := l.bus.Dispatch(ctx, Charge{Account: "ada"})
		must(t, err)
	}
	if n := l.runs.Load(); n != 5 {
		t.Fatalf("the handler ran %d times for 5 commands without a key, want 5", n)
	}
	if k := <-l.keys; k != "" {
		t.Errorf("a command without a key has idempotency key %q", k)
	}
	if n := kv.calls.Load(); n != 0 {
		t.Fatalf("commands without a key made %d calls to the bucket, want none", n)
	}
	st, err := kv.KeyValue.Status(ctx)
	must(t, err)
	if st.Values() != 0 {
		t.Fatalf("the bucket holds %d messages after commands without a key, want 0", st.Values())
	}
	// With a key: a claim and a result are written.
	_, err = l.bus.Dispatch(ctx, Charge{Account: "ada", Key: "k"})
	must(t, err)
	if st, err = kv.KeyValue.Status(ctx); err != nil || st.Values() != 2 {
		t.Fatalf("the bucket holds %d messages after one command with a key (%v), want its claim and its result", st.Values(), err)
	}
}

// A handler's context does not carry the key of WithIdempotencyKey on to
// the commands it sends: they would wait for their sender's own claim.
func TestIdempotencyKeyStaysWithItsCommand(t *testing.T) {
	ctx := ctxT(t)
	srv := embeddedtest.Server(t)
	l := newLedger(t, idempotencyBucket(t, srv, jetstream.MemoryStorage), handlers.IdempotencyOptions{}, handlers.Options{})
	keyed := handlers.WithIdempotencyKey(ctx, "transfer-1")
	for range 2 {
		_, err := l.bus.Dispatch(keyed, Transfer{Account: "ada"})
		must(t, err)
	}
	if n := l.runs.Load(); n != 1 {
		t.Fatalf("the refund ran %d times, want once: the transfer it is part of is remembered", n)
	}
	if k := <-l.keys; k != "" {
		t.Errorf("the refund the transfer sent has idempotency key %q, want none", k)
	}
}

func TestIdempotencyKeysANATSHeaderCannotCarry(t *testing.T) {
	ctx := ctxT(t)
	srv := embeddedtest.Server(t)
	l := newLedger(t, idempotencyBucket(t, srv, jetstream.MemoryStorage), handlers.IdempotencyOptions{}, handlers.Options{})
	for _, key := range []string{"two\nlines", "cr\r", " lead", "trail\t", strings.Repeat("k", 1025)} {
		if _, err := l.bus.Dispatch(ctx, Charge{Account: "ada", Key: key}); !errors.Is(err, platform.ErrInvalidArgument) {
			t.Errorf("key %.20q: %v, want ErrInvalidArgument", key, err)
		}
	}
	if n := l.runs.Load(); n != 0 {
		t.Fatalf("the handler ran %d times for refused keys", n)
	}
	// A bus without a bucket says so, and lets commands without a key through.
	nobucket := handlers.NewCommandBus(handlers.Options{Registry: reg, Logger: quiet(), Middleware: []handlers.Middleware{handlers.Idempotency(nil, handlers.IdempotencyOptions{})}})
	must(t, handlers.HandleCommand(nobucket, func(context.Context, Charge) error { return nil }))
	if _, err := nobucket.Dispatch(ctx, Charge{Key: "k"}); !errors.Is(err, platform.ErrInvalidArgument) || !strings.Contains(err.Error(), "OpenIdempotencyBucket") {
		t.Errorf("a key without a bucket: %v", err)
	}
	if _, err := nobucket.Dispatch(ctx, Charge{}); err != nil {
		t.Errorf("no key, no bucket: %v", err)
	}
}

// syncBuffer is a log destination the test reads while handlers write.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A process that crashes while it runs a command leaves its claim: a
// repeat in another process takes it over once it is older than the Wait.
func TestIdempotencyStaleClaimTakenOver(t *testing.T) {
	ctx := ctxT(t)
	srv := embeddedtest.Server(t)
	const wait = time.Second
	crashConn := embeddedtest.Conn(t, srv)
	js, err := jetstream.New(crashConn)
	must(t, err)
	crashKV, err := handlers.OpenIdempotencyBucket(ctx, js, handlers.IdempotencyBucketOptions{Storage: jetstream.MemoryStorage})
	must(t, err)
	crashing := newLedger(t, crashKV, handlers.IdempotencyOptions{Wait: wait}, handlers.Options{})
	started, release := make(chan struct{}), make(chan struct{})
	crashing.setHook(func(context.Context, int64) error {
		close(started)
		<-release
		return nil
	})
	crashed := make(chan error, 1)
	before := time.Now() // the claim is made after this, so its age is at most the time since
	go func() {
		_, err := crashing.bus.Dispatch(ctx, Charge{Account: "ada", Key: "crash"})
		crashed <- err
	}()
	<-started
	crashConn.Close() // the process is gone: it will neither remember a result nor free its claim
	t.Cleanup(func() {
		close(release)
		<-crashed
	})

	var logs syncBuffer
	survivor := newLedger(t, idempotencyBucket(t, srv, jetstream.MemoryStorage),
		handlers.IdempotencyOptions{Wait: wait, Logger: slog.New(slog.NewTextHandler(&logs, nil))}, handlers.Options{})
	res, err := survivor.bus.Dispatch(ctx, Charge{Account: "ada", Key: "crash"})
	must(t, err)
	if took := time.Since(before); took < wait {
		t.Errorf("the claim was taken over %v after it was made, before the Wait of %v", took, wait)
	}
	if res.Aggregate.ID != "ada-1" || survivor.runs.Load() != 1 {
		t.Fatalf("result %+v after %d runs: want the survivor's own run", res, survivor.runs.Load())
	}
	if !strings.Contains(logs.String(), "took over an idempotency claim") {
		t.Errorf("no warning of the takeover in the logs:\n%s", logs.String())
	}
	again, err := survivor.bus.Dispatch(ctx, Charge{Account: "ada", Key: "crash"})
	must(t, err)
	sameResult(t, "a repeat after the takeover", res, again)
	if n := survivor.runs.Load(); n != 1 {
		t.Fatalf("the survivor ran the command %d times, want 1", n)
	}
}

// A process sends the commands; another serves them with the middleware.
func TestIdempotencyAcrossProcesses(t *testing.T) {
	ctx := ctxT(t)
	srv := embeddedtest.Server(t)
	serving := newLedger(t, idempotencyBucket(t, srv, jetstream.FileStorage), handlers.IdempotencyOptions{},
		handlers.Options{Remote: newRemote(t, embeddedtest.Conn(t, srv))})
	c := client(t, embeddedtest.Conn(t, srv), nil)
	watch := embeddedtest.Conn(t, srv)
	seen, err := watch.SubscribeSync("t.cmd.>")
	must(t, err)
	must(t, watch.Flush())

	keyed := handlers.WithIdempotencyKey(ctx, "remote-1")
	first, err := c.Commands.Dispatch(keyed, Refund{Account: "ada"})
	must(t, err)
	again, err := c.Commands.Dispatch(keyed, Refund{Account: "ada"})
	must(t, err)
	sameResult(t, "a repeat across processes", first, again)
	if first.Aggregate.ID != "ada-1" || len(first.Events) != 1 || first.Events[0].Event != (OrderPlaced{Customer: "ada"}) {
		t.Fatalf("result across processes %+v", first)
	}
	if k := <-serving.keys; k != "remote-1" {
		t.Errorf("the serving handler's message has idempotency key %q, want remote-1", k)
	}
	a, err := c.Commands.Dispatch(ctx, Charge{Account: "bob", Key: "remote-2"})
	must(t, err)
	b, err := c.Commands.Dispatch(ctx, Charge{Account: "bob", Key: "remote-2"})
	must(t, err)
	sameResult(t, "a repeat across processes of a command with its own key", a, b)
	if _, err := c.Commands.Dispatch(ctx, Charge{Account: "cy"}); err != nil {
		t.Fatal(err)
	}
	if n := serving.runs.Load(); n != 3 {
		t.Fatalf("the serving handler ran %d times, want 3: once per key and once without", n)
	}
	// The key travels in its header; a command without one sends no header at all.
	for i, want := range []string{"remote-1", "remote-1", "remote-2", "remote-2", ""} {
		m, err := seen.NextMsgWithContext(ctx)
		must(t, err)
		if got := m.Header.Get(handlers.HeaderIdempotencyKey); got != want {
			t.Errorf("request %d: header %s is %q, want %q", i, handlers.HeaderIdempotencyKey, got, want)
		}
		if want == "" && len(m.Header) != 0 {
			t.Errorf("request %d, without a key, has headers %v: want none", i, m.Header)
		}
	}

	// A sender that is not a lexigram bus: the key in the header, or named by the command.
	subject := "t.cmd.test.refund"
	for range 2 {
		m := nats.NewMsg(subject)
		m.Header.Set(handlers.HeaderIdempotencyKey, "plain-1")
		m.Data, _ = platform.Msgpack.Marshal(Refund{Account: "dee"})
		resp, err := watch.RequestMsg(m, 10*time.Second)
		must(t, err)
		if code := resp.Header.Get(micro.ErrorCodeHeader); code != "" {
			t.Fatalf("plain request: error %s %s", code, resp.Header.Get(micro.ErrorHeader))
		}
	}
	for range 2 {
		data, _ := platform.Msgpack.Marshal(Charge{Account: "eve", Key: "plain-2"})
		resp, err := watch.Request("t.cmd.test.charge", data, 10*time.Second)
		must(t, err)
		if code := resp.Header.Get(micro.ErrorCodeHeader); code != "" {
			t.Fatalf("plain request: error %s %s", code, resp.Header.Get(micro.ErrorHeader))
		}
	}
	if n := serving.runs.Load(); n != 5 {
		t.Fatalf("the serving handler ran %d times, want 5: plain requests are deduplicated too", n)
	}
}

// oldServerURL is a nats-server older than 2.11, without per-key TTLs
// (Debian's 2.9.10 runs on the development machines and in CI).
func oldServerURL() string {
	if u := os.Getenv("LEXIGRAM_OLD_NATS_URL"); u != "" {
		return u
	}
	return "nats://127.0.0.1:4222"
}

func TestIdempotencyOlderServer(t *testing.T) {
	ctx := ctxT(t)
	nc, err := nats.Connect(oldServerURL(), nats.Timeout(2*time.Second))
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI needs the older NATS server at %s: %v", oldServerURL(), err)
		}
		t.Skipf("no older NATS server at %s (set LEXIGRAM_OLD_NATS_URL): %v", oldServerURL(), err)
	}
	t.Cleanup(nc.Close)
	if v := nc.ConnectedServerVersion(); !olderThan211(v) {
		t.Skipf("the server at %s is %s, not older than 2.11", oldServerURL(), v)
	}
	js, err := jetstream.New(nc)
	must(t, err)
	name := "lxtest_idem_" + nuid.Next()
	_, err = handlers.OpenIdempotencyBucket(ctx, js, handlers.IdempotencyBucketOptions{Bucket: name, Storage: jetstream.MemoryStorage})
	if !errors.Is(err, platform.ErrUnsupported) || !strings.Contains(err.Error(), "2.11") || !strings.Contains(err.Error(), nc.ConnectedServerVersion()) {
		t.Fatalf("OpenIdempotencyBucket on nats-server %s: %v, want ErrUnsupported naming 2.11 and the server's version", nc.ConnectedServerVersion(), err)
	}
	t.Log(err)
	if _, err := js.KeyValue(ctx, name); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Errorf("the refused bucket exists: %v", err)
	}

	// A bucket made by hand: the server would ignore the per-key TTLs, so
	// commands with a key fail and say why; those without run.
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: name, Storage: jetstream.MemoryStorage})
	must(t, err)
	t.Cleanup(func() { _ = js.DeleteKeyValue(context.Background(), name) })
	l := newLedger(t, kv, handlers.IdempotencyOptions{}, handlers.Options{})
	_, err = l.bus.Dispatch(ctx, Charge{Account: "ada", Key: "k"})
	if !errors.Is(err, platform.ErrConfigConflict) || !strings.Contains(err.Error(), "per-key TTL") || !strings.Contains(err.Error(), "2.11") {
		t.Fatalf("a key on a bucket without per-key TTLs: %v, want ErrConfigConflict saying why", err)
	}
	if _, err := l.bus.Dispatch(ctx, Charge{Account: "ada"}); err != nil {
		t.Fatal(err)
	}
	if n := l.runs.Load(); n != 1 {
		t.Fatalf("the handler ran %d times, want once, for the command without a key", n)
	}
	st, err := kv.Status(ctx)
	must(t, err)
	if st.Values() != 0 {
		t.Fatalf("the bucket holds %d messages, want none", st.Values())
	}
}

func olderThan211(v string) bool {
	var major, minor int
	if _, err := fmt.Sscanf(v, "%d.%d", &major, &minor); err != nil {
		return false
	}
	return major < 2 || major == 2 && minor < 11
}

// The records: their names are valid KV keys whatever the key, each
// carries its own TTL, and a finished command's claim expires by itself.
func TestIdempotencyRecords(t *testing.T) {
	ctx := ctxT(t)
	srv := embeddedtest.Server(t)
	kv := idempotencyBucket(t, srv, jetstream.MemoryStorage)
	st, err := kv.Status(ctx)
	must(t, err)
	if cfg := st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config; !cfg.AllowMsgTTL || cfg.MaxAge != 0 || cfg.MaxMsgsPerSubject != 1 {
		t.Fatalf("bucket stream settings: AllowMsgTTL %t, MaxAge %v, history %d: want per-key TTLs, no max age, one value per key", cfg.AllowMsgTTL, cfg.MaxAge, cfg.MaxMsgsPerSubject)
	}
	for _, key := range []string{"a", "order-42/reserve", "*.> spaces\x00and\xffbytes", strings.Repeat("é", 75), strings.Repeat("x", 151)} {
		k := handlers.IdempotencyKVKey(key)
		if strings.Trim(k, "-/_=.abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != "" || strings.HasPrefix(k, ".") || strings.HasSuffix(k, ".") {
			t.Errorf("key %.20q: record name %q is not a KV key", key, k)
		}
		if long := len(key) > 150; long != strings.HasPrefix(k, "sha256.") || long && len(k) != len("sha256.")+64 {
			t.Errorf("key of %d bytes: record name %q", len(key), k)
		}
	}

	l := newLedger(t, kv, handlers.IdempotencyOptions{Window: 90 * time.Minute, Wait: 400 * time.Millisecond}, handlers.Options{})
	_, err = l.bus.Dispatch(ctx, Charge{Account: "ada", Key: "k"})
	must(t, err)
	js, err := jetstream.New(embeddedtest.Conn(t, srv))
	must(t, err)
	stream, err := js.Stream(ctx, "KV_"+handlers.DefaultIdempotencyBucket)
	must(t, err)
	k := handlers.IdempotencyKVKey("k")
	for name, ttl := range map[string]string{"result." + k: "1h30m0s", "claim." + k: "1s"} { // the Wait's double, rounded up to a second
		m, err := stream.GetLastMsgForSubject(ctx, "$KV."+handlers.DefaultIdempotencyBucket+"."+name)
		must(t, err)
		if got := m.Header.Get(jetstream.MsgTTLHeader); got != ttl {
			t.Errorf("record %s has TTL %q, want %q", name, got, ttl)
		}
	}
	eventually(t, "the finished command's claim to expire", func() bool {
		_, err := kv.Get(ctx, "claim."+k)
		return errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted)
	})
	if _, err := kv.Get(ctx, "result."+k); err != nil {
		t.Fatalf("the result went with the claim: %v", err)
	}
}
