package handlers

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/platform"
)

// idempotencyCtxKey is the context key of WithIdempotencyKey.
type idempotencyCtxKey struct{}

// keysInContexts turns true at the first WithIdempotencyKey. Until then a
// dispatch does not look for a key in its context: a process that never
// sets one pays an atomic load per command, not a walk up the context
// chain.
var keysInContexts atomic.Bool

// WithIdempotencyKey gives the commands dispatched with the returned
// context the idempotency key key (see Idempotency); "" takes a key away.
// A command's own IdempotencyKey method wins over it. The handlers'
// contexts do not pass it on: a command a handler sends has an effect of
// its own, and would otherwise wait for the claim its sender holds.
func WithIdempotencyKey(ctx context.Context, key string) context.Context {
	if !keysInContexts.Load() {
		keysInContexts.Store(true)
	}
	return context.WithValue(ctx, idempotencyCtxKey{}, key)
}

// idempotencyKeyer is a command that names its own idempotency key.
type idempotencyKeyer interface{ IdempotencyKey() string }

// contextIdempotencyKey is the key of WithIdempotencyKey in ctx, or "".
// newMessage prefers the command's own.
func contextIdempotencyKey(ctx context.Context) string {
	key, _ := ctx.Value(idempotencyCtxKey{}).(string)
	return key
}

// maxIdempotencyKey bounds a key, which travels in a NATS header.
const maxIdempotencyKey = 1024

// checkIdempotencyKey refuses a key that a NATS header would change on
// the way (nats.go trims spaces and tabs at a value's ends and turns line
// breaks into spaces), so a command has the same key in every process.
func checkIdempotencyKey(m Message) error {
	k := m.IdempotencyKey
	if len(k) > maxIdempotencyKey {
		return platform.Errorf(platform.CodeInvalidArgument, "command %s (%s): its idempotency key is %d bytes long: use at most %d (a hash of a longer one)",
			m.Type, m.ID, len(k), maxIdempotencyKey)
	}
	if strings.ContainsAny(k, "\r\n") || strings.ContainsAny(k[:1], " \t") || strings.ContainsAny(k[len(k)-1:], " \t") {
		return platform.Errorf(platform.CodeInvalidArgument, "command %s (%s): idempotency key %q has a line break, or a space or tab at an end, which a NATS header would not carry: remove them",
			m.Type, m.ID, k)
	}
	return nil
}

// IdempotencyOptions configure Idempotency. The zero value works.
type IdempotencyOptions struct {
	// Window is how long a command's result is remembered after it ran: a
	// repeat within it gets the result, a later one runs the command
	// again. Rounded up to whole seconds (the server's per-key TTLs are).
	// 0: 24h.
	Window time.Duration
	// Wait is how long a repeat waits for a first dispatch of its key that
	// is still running. A claim older than Wait is presumed dead (its
	// process crashed or lost the connection) and taken over, so Wait
	// must be longer than the longest a command runs: its handler timeout,
	// if it has one. 0: 30s.
	Wait   time.Duration
	Logger *slog.Logger // nil: slog.Default()
}

// Idempotency applies a command with an idempotency key once (see
// Message.IdempotencyKey): a repeat with the same key, in this process or
// any other that shares kv, gets the first dispatch's CommandResult and
// the handler does not run. Commands without a key pass straight through,
// without any I/O. It applies to commands only.
//
// kv is a bucket from OpenIdempotencyBucket: a key's records expire by
// per-key TTL, which needs nats-server 2.11 or later. The first dispatch
// claims the key (a create, so two dispatches never both run the
// handler), runs the rest of the pipeline and then remembers the result
// for opts.Window. A failed dispatch is not remembered: its claim is
// freed and the next repeat runs the command again, so a retry after an
// error works. A repeat that finds the claim held waits for the result
// (polling, for at most opts.Wait from the claim) and returns it, or runs
// the command if the first dispatch failed; a claim older than opts.Wait
// is taken over. A first dispatch that was only slow, not dead, then
// runs alongside the one that took over: the takeover is logged, and so
// is the result that could not be remembered because the other was.
//
// Records are kept under "claim.<k>" and "result.<k>", where <k> is the
// key in unpadded base64url, or "sha256.<hex>" of it when it is longer
// than 150 bytes: KV keys allow only letters, digits and -/_=. A command
// whose context names a tenant (platform.WithTenant) has <k> prefixed
// with "t.<tenant>.": each tenant's keys are its own. A result
// is encoded with the bus's codec (its name is recorded) and decoded with
// the registry of the bus that finds it.
//
// Put it outside Retry and Transaction, so a repeat skips them and the
// result remembered is the one the saves produced; for the default
// pipeline, after Tracing:
//
//	mw := handlers.DefaultMiddleware(o)
//	o.Middleware = append([]handlers.Middleware{mw[0], handlers.Idempotency(kv, handlers.IdempotencyOptions{})}, mw[1:]...)
func Idempotency(kv jetstream.KeyValue, opts IdempotencyOptions) Middleware {
	if opts.Window <= 0 {
		opts.Window = 24 * time.Hour
	}
	if opts.Wait <= 0 {
		opts.Wait = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &idempotency{kv: kv, opts: opts, window: wholeSeconds(opts.Window), claimTTL: wholeSeconds(2 * opts.Wait)}
	// A finished command's claim is left to expire, which saves a write,
	// unless it would outlive the result: the next dispatch after the
	// result expired would wait for it.
	s.freeOnDone = s.window < s.claimTTL
	return Middleware{Name: "idempotency", Command: func(next CommandHandlerFunc) CommandHandlerFunc {
		return func(ctx context.Context, cmd Message) (CommandResult, error) {
			if cmd.IdempotencyKey == "" {
				// A sender that is not a lexigram bus sends no key header;
				// the command may still name its key.
				k, ok := cmd.Body.(idempotencyKeyer)
				if !ok {
					return next(ctx, cmd)
				}
				if cmd.IdempotencyKey = k.IdempotencyKey(); cmd.IdempotencyKey == "" {
					return next(ctx, cmd)
				}
			}
			return s.run(ctx, cmd, next)
		}
	}}
}

// The timings of the records.
const (
	// idempotencyMarkerTTL is how long the marker of a freed or expired
	// record stays, so `nats kv get` and late watchers can tell it from a
	// key never used; it needs no longer.
	idempotencyMarkerTTL = time.Minute
	// idempotencyWriteTimeout bounds remembering a result and freeing a
	// claim, which go on after the caller's context ended: the command
	// has run, and its record must not be lost with the caller's
	// patience.
	idempotencyWriteTimeout = 5 * time.Second
	// idempotencyMaxPoll is the longest pause between two looks at a key
	// held by another dispatch; the pauses start at 2ms and double.
	idempotencyMaxPoll = 100 * time.Millisecond
)

// wholeSeconds rounds d up to whole seconds, at least one: the server
// truncates a per-key TTL to seconds and refuses one under a second.
func wholeSeconds(d time.Duration) time.Duration {
	return max(time.Second, (d+time.Second-1)/time.Second*time.Second)
}

type idempotency struct {
	kv         jetstream.KeyValue
	opts       IdempotencyOptions
	window     time.Duration // opts.Window in whole seconds
	claimTTL   time.Duration // clears the claim of a dead dispatch that no repeat took over; twice the Wait, after which repeats take it over anyway
	freeOnDone bool
	ready      atomic.Bool // the bucket allows per-key TTLs
}

// idempotencyRecord is the value of a claim (without Codec and Result)
// and of a result, encoded with msgpack whatever the bus's codec.
type idempotencyRecord struct {
	//lint:ignore U1000 msgpack reads the tag
	_msgpack struct{}  `msgpack:",as_array"`
	Type     string    `msgpack:"y" json:"type"`    // the command type
	Command  string    `msgpack:"i" json:"command"` // the ID of the command that claimed the key or ran
	Time     time.Time `msgpack:"t" json:"time"`    // when it claimed the key or finished
	Codec    string    `msgpack:"c" json:"codec,omitempty"`
	Result   []byte    `msgpack:"r" json:"result,omitempty"` // encodeResult's, with Codec
}

// idempotencyKVKey is the part of a key's record names that comes from
// the key.
func idempotencyKVKey(key string) string {
	if len(key) <= 150 {
		return base64.RawURLEncoding.EncodeToString([]byte(key))
	}
	sum := sha256.Sum256([]byte(key))
	return "sha256." + hex.EncodeToString(sum[:])
}

// idempotent is one dispatch of a command with a key.
type idempotent struct {
	*idempotency
	m      Message
	result string // the KV key of the result
	claim  string // the KV key of the claim
	codec  platform.Codec
	reg    *platform.Registry
}

func (s *idempotency) run(ctx context.Context, m Message, next CommandHandlerFunc) (CommandResult, error) {
	d := &idempotent{idempotency: s, m: m, codec: platform.Msgpack, reg: platform.DefaultRegistry}
	if dc, ok := ctx.Value(messageKey).(*dispatch); ok && dc.o != nil { // the bus's options, defaults filled in
		d.codec, d.reg = dc.o.Codec, dc.o.Registry
	}
	if err := d.check(ctx); err != nil {
		return CommandResult{}, err
	}
	k := idempotencyKVKey(m.IdempotencyKey)
	if tenant := platform.Tenant(ctx); tenant != "" {
		// Keys are the sender's: two tenants' same key (a saga
		// instance's, which is named by its type and key) are two.
		// "t." keeps them apart from untenanted keys, which have no dot.
		k = "t." + tenant + "." + k
	}
	d.result, d.claim = "result."+k, "claim."+k
	for try := 0; ; try++ {
		if try > 1 { // around again and again: the claim vanished between a failed create and the look at it, or another repeat won the takeover; do not spin
			if err := d.pause(ctx, time.Duration(min(try, 50))*time.Millisecond, nil); err != nil {
				return CommandResult{}, err
			}
		}
		if res, ok, err := d.remembered(ctx); ok || err != nil {
			return res, err
		}
		rev, err := s.kv.Create(ctx, d.claim, d.record(false, nil), jetstream.KeyTTL(s.claimTTL))
		if err == nil {
			return d.execute(ctx, rev, next)
		}
		if !isKVConflict(err) {
			return CommandResult{}, d.kvError(ctx, err, "claim the key")
		}
		if res, ok, err := d.wait(ctx); ok || err != nil {
			return res, err
		}
	}
}

// check makes sure, once, that the bucket keeps per-key TTLs: a server
// older than 2.11 ignores them, and results would be remembered forever.
func (d *idempotent) check(ctx context.Context) error {
	if d.ready.Load() {
		return nil
	}
	if d.kv == nil {
		return platform.Errorf(platform.CodeInvalidArgument, "command %s (%s): idempotency key %q: the Idempotency middleware has no bucket: pass it the one handlers.OpenIdempotencyBucket returns",
			d.m.Type, d.m.ID, d.m.IdempotencyKey)
	}
	st, err := d.kv.Status(ctx)
	if err != nil {
		return d.kvError(ctx, err, "read the bucket's settings")
	}
	if bs, ok := st.(*jetstream.KeyValueBucketStatus); ok && bs.StreamInfo() != nil {
		cfg := bs.StreamInfo().Config
		if !cfg.AllowMsgTTL {
			return platform.Errorf(platform.CodeConfigConflict, "command %s (%s): idempotency bucket %q does not allow per-key TTLs (its stream %s has no AllowMsgTTL), which expire the records: open it with handlers.OpenIdempotencyBucket, on nats-server 2.11 or later",
				d.m.Type, d.m.ID, d.kv.Bucket(), cfg.Name)
		}
		if cfg.MaxAge > 0 && cfg.MaxAge < d.window {
			d.opts.Logger.Warn("handlers: the idempotency bucket's max age is shorter than the window: results are forgotten sooner",
				"bucket", d.kv.Bucket(), "max_age", cfg.MaxAge, "window", d.window)
		}
	}
	d.ready.Store(true)
	return nil
}

// record is the value of the claim or, with a result, of the result.
func (d *idempotent) record(result bool, res []byte) []byte {
	r := idempotencyRecord{Type: d.m.Type, Command: d.m.ID, Time: time.Now().UTC()}
	if result {
		r.Codec, r.Result = d.codec.Name(), res
	}
	b, _ := platform.Msgpack.Marshal(r) // strings, a time and bytes always encode
	return b
}

// execute runs the command under the claim rev and remembers its result.
func (d *idempotent) execute(ctx context.Context, rev uint64, next CommandHandlerFunc) (res CommandResult, err error) {
	// A first dispatch may have finished between the look for its result
	// and this claim: it remembers the result before it frees its claim.
	if res, ok, err := d.remembered(ctx); ok || err != nil {
		d.free(ctx, rev)
		return res, err
	}
	returned := false
	defer func() {
		if !returned { // a panic on its way to Recovery or the bus: free the claim as for an error
			d.free(ctx, rev)
		}
	}()
	res, err = next(ctx, d.m)
	returned = true
	if err != nil {
		d.free(ctx, rev) // errors are not remembered: a retry runs the command again
		return res, err
	}
	if !d.remember(ctx, res) || d.freeOnDone {
		d.free(ctx, rev)
	}
	return res, nil
}

// remember writes the result for the window; false when it is not
// remembered, which the logs say. The command ran either way, so its
// caller gets its result.
func (d *idempotent) remember(ctx context.Context, res CommandResult) bool {
	data, err := encodeResult(d.codec, res)
	if err != nil {
		d.log(ctx, slog.LevelError, "handlers: a command's result cannot be encoded, so it is not remembered: a repeat of its idempotency key will run it again", "codec", d.codec.Name(), "error", err)
		return false
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), idempotencyWriteTimeout)
	defer cancel()
	_, err = d.kv.Create(wctx, d.result, d.record(true, data), jetstream.KeyTTL(d.window))
	switch {
	case err == nil:
		return true
	case isKVConflict(err):
		d.log(ctx, slog.LevelWarn, "handlers: a command ran twice for one idempotency key: another dispatch took its claim over after the Wait and finished first; raise IdempotencyOptions.Wait above the longest a command runs", "wait", d.opts.Wait)
	default:
		d.log(ctx, slog.LevelError, "handlers: a command ran but its result could not be remembered: a repeat of its idempotency key will run it again", "bucket", d.kv.Bucket(), "error", err)
	}
	return false
}

// free deletes the claim rev, unless another dispatch has taken it over.
func (d *idempotent) free(ctx context.Context, rev uint64) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), idempotencyWriteTimeout)
	defer cancel()
	err := d.kv.Purge(wctx, d.claim, jetstream.LastRevision(rev), jetstream.PurgeTTL(idempotencyMarkerTTL))
	if err != nil && !isKVConflict(err) {
		d.log(ctx, slog.LevelWarn, "handlers: could not free an idempotency claim: a repeat of its key waits for up to the Wait, then takes it over", "bucket", d.kv.Bucket(), "wait", d.opts.Wait, "error", err)
	}
}

// remembered returns the result of the key, if it has one; ok is true
// when the caller is to return what it got, the result or an error.
func (d *idempotent) remembered(ctx context.Context) (res CommandResult, ok bool, err error) {
	e, err := d.kv.Get(ctx, d.result)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
		return CommandResult{}, false, nil
	case err != nil:
		return CommandResult{}, true, d.kvError(ctx, err, "read the result")
	}
	var rec idempotencyRecord
	if err := platform.Msgpack.Unmarshal(e.Value(), &rec); err != nil {
		return CommandResult{}, true, d.corrupt(err)
	}
	if rec.Type != d.m.Type {
		return CommandResult{}, true, platform.Errorf(platform.CodeInvalidArgument, "command %s (%s): idempotency key %q belongs to a %s command (%s): a key names one command's effect; give this one a key of its own",
			d.m.Type, d.m.ID, d.m.IdempotencyKey, rec.Type, rec.Command)
	}
	codec, err := platform.CodecByName(rec.Codec)
	if err == nil {
		res, err = decodeResult(codec, d.reg, rec.Result)
	}
	if err != nil {
		return CommandResult{}, true, d.corrupt(err)
	}
	d.log(ctx, slog.LevelDebug, "handlers: a repeated command got the result of its idempotency key's first dispatch", "first", rec.Command)
	return res, true, nil
}

// wait waits while another dispatch holds the claim: ok is true when the
// caller is to return what it got (that dispatch's result, or an error),
// false when the claim is free to take.
func (d *idempotent) wait(ctx context.Context) (res CommandResult, ok bool, err error) {
	poll := 2 * time.Millisecond
	for first := true; ; first = false {
		if !first {
			if res, ok, err := d.remembered(ctx); ok || err != nil {
				return res, true, err
			}
		}
		e, err := d.kv.Get(ctx, d.claim)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
			return CommandResult{}, false, nil // the holder failed and freed it, or it expired
		case err != nil:
			return CommandResult{}, true, d.kvError(ctx, err, "read the claim")
		}
		age := time.Since(e.Created())
		if age >= d.opts.Wait {
			// Presumed dead: delete its claim if it is still the one we
			// saw, and race the other repeats to create ours.
			err := d.kv.Purge(ctx, d.claim, jetstream.LastRevision(e.Revision()), jetstream.PurgeTTL(idempotencyMarkerTTL))
			if err != nil && !isKVConflict(err) {
				return CommandResult{}, true, d.kvError(ctx, err, "take over a stale claim")
			}
			if err == nil {
				d.log(ctx, slog.LevelWarn, "handlers: took over an idempotency claim older than the Wait: its dispatch is presumed dead, and the command runs again",
					"holder", holderOf(e), "age", age.Round(time.Millisecond), "wait", d.opts.Wait)
			}
			return CommandResult{}, false, nil
		}
		if err := d.pause(ctx, min(poll, d.opts.Wait-age), e); err != nil {
			return CommandResult{}, true, err
		}
		poll = min(2*poll, idempotencyMaxPoll)
	}
}

// pause waits for p, or fails when ctx ends first; held is the claim
// waited for, if any, for the error.
func (d *idempotent) pause(ctx context.Context, p time.Duration, held jetstream.KeyValueEntry) error {
	t := time.NewTimer(p)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
	}
	code := platform.CodeCommandExecution
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		code = platform.CodeHandlerTimeout
	}
	if held == nil {
		return platform.Errorf(code, "command %s (%s): idempotency key %q: the context ended while claiming the key: %w", d.m.Type, d.m.ID, d.m.IdempotencyKey, ctx.Err())
	}
	return platform.Errorf(code, "command %s (%s): idempotency key %q is held by the dispatch of command %s, which had not finished when the context ended: try again later (a repeat gets its result once it has one): %w",
		d.m.Type, d.m.ID, d.m.IdempotencyKey, holderOf(held), ctx.Err())
}

// holderOf is the ID of the command that holds a claim.
func holderOf(e jetstream.KeyValueEntry) string {
	var rec idempotencyRecord
	if platform.Msgpack.Unmarshal(e.Value(), &rec) != nil || rec.Command == "" {
		return "(unknown)"
	}
	return rec.Command
}

func (d *idempotent) corrupt(err error) error {
	return platform.Errorf(platform.CodeCommandExecution, "command %s (%s): the remembered result of idempotency key %q in bucket %q cannot be decoded: %w: delete key %q from the bucket (nats kv del) to let the command run again",
		d.m.Type, d.m.ID, d.m.IdempotencyKey, d.kv.Bucket(), err, d.result)
}

// kvError wraps a bucket error with what was being done; errors that
// mean the server was not reached get CodeStoreUnavailable, so Retry and
// callers can tell "try again later" from a misconfiguration.
func (d *idempotent) kvError(ctx context.Context, err error, what string) error {
	if ctx.Err() != nil { // the caller's deadline or cancellation, not the server's fault
		code := platform.CodeCommandExecution
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			code = platform.CodeHandlerTimeout
		}
		return platform.Errorf(code, "command %s (%s): idempotency key %q: the context ended before the middleware could %s: %w", d.m.Type, d.m.ID, d.m.IdempotencyKey, what, err)
	}
	code := platform.CodeCommandExecution
	if kvUnavailable(err) {
		code = platform.CodeStoreUnavailable
	}
	return platform.Errorf(code, "command %s (%s): idempotency key %q: %s in bucket %q: %w: check that JetStream is reachable and the bucket exists (handlers.OpenIdempotencyBucket)",
		d.m.Type, d.m.ID, d.m.IdempotencyKey, what, d.kv.Bucket(), err)
}

func (d *idempotent) log(ctx context.Context, level slog.Level, msg string, attrs ...any) {
	if !d.opts.Logger.Enabled(ctx, level) {
		return
	}
	d.opts.Logger.Log(ctx, level, msg, append([]any{"type", d.m.Type, "id", d.m.ID, "idempotency_key", d.m.IdempotencyKey}, attrs...)...)
}

func kvUnavailable(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, jetstream.ErrNoStreamResponse)
}

// isKVConflict reports a compare-and-set failure. Create reports one over
// a delete marker as a bare "wrong last sequence" API error, and
// replicated buckets use code 10164 instead of 10071, so the sentinels are
// not enough.
func isKVConflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// DefaultIdempotencyBucket is the bucket of IdempotencyBucketOptions{}.
const DefaultIdempotencyBucket = "lexigram_idempotency"

// IdempotencyBucketOptions configure OpenIdempotencyBucket. The zero
// value works.
type IdempotencyBucketOptions struct {
	Bucket   string                // "": DefaultIdempotencyBucket
	Replicas int                   // 0: 1
	Storage  jetstream.StorageType // zero value: file storage
}

// OpenIdempotencyBucket creates the bucket of the Idempotency middleware,
// or updates an existing one's settings: one value per key and per-key
// TTLs (AllowMsgTTL, through LimitMarkerTTL), with no bucket-wide max age,
// since each record carries its own. Per-key TTLs need nats-server 2.11
// or later; on an older server it fails with platform.ErrUnsupported
// instead of falling back to a bucket-wide max age, which would tie every
// middleware's window to one setting of the bucket and keep dead claims
// for that long.
func OpenIdempotencyBucket(ctx context.Context, js jetstream.JetStream, opts IdempotencyBucketOptions) (jetstream.KeyValue, error) {
	if js == nil {
		return nil, platform.Errorf(platform.CodeInvalidArgument, "handlers.OpenIdempotencyBucket: the JetStream context is nil: pass jetstream.New(nc)")
	}
	if opts.Bucket == "" {
		opts.Bucket = DefaultIdempotencyBucket
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:         opts.Bucket,
		Description:    "lexigram idempotency: which command holds each idempotency key, and the results remembered",
		History:        1,
		Replicas:       max(opts.Replicas, 1),
		Storage:        opts.Storage,
		LimitMarkerTTL: idempotencyMarkerTTL,
	})
	switch {
	case err == nil:
		return kv, nil
	case errors.Is(err, jetstream.ErrLimitMarkerTTLNotSupported):
		return nil, platform.Errorf(platform.CodeUnsupported, "handlers.OpenIdempotencyBucket %q: the server (nats-server %s) has no per-key TTL, which expires each remembered result after its window: it needs nats-server 2.11 or later; upgrade the server, or leave the Idempotency middleware out: %w",
			opts.Bucket, js.Conn().ConnectedServerVersion(), err)
	case errors.Is(err, jetstream.ErrInvalidBucketName):
		return nil, platform.Errorf(platform.CodeInvalidArgument, "handlers.OpenIdempotencyBucket: bucket name %q: %w: use letters, digits, '-' and '_'", opts.Bucket, err)
	case kvUnavailable(err):
		return nil, platform.Errorf(platform.CodeStoreUnavailable, "handlers.OpenIdempotencyBucket %q: %w: check that JetStream is reachable", opts.Bucket, err)
	}
	return nil, platform.Errorf(platform.CodeConfigConflict, "handlers.OpenIdempotencyBucket %q: create or update the bucket: %w: an existing bucket of that name may have settings that cannot change (storage, replicas); give the middleware a bucket of its own",
		opts.Bucket, err)
}
