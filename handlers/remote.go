package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"go.opentelemetry.io/otel/propagation"

	"github.com/lexigram/events/platform"
)

// RemoteOptions configure a Remote. The zero value works.
type RemoteOptions struct {
	// Prefix is the first subject token: commands go to
	// <Prefix>.cmd.<type>, queries to <Prefix>.qry.<type>. "": "lexigram".
	Prefix string
	// Service is the micro service name that `nats micro ls` shows.
	// "": "lexigram".
	Service string
	// Version is the service's SemVer version. "": "1.0.0".
	Version string
	// QueueGroup shares each type's requests among the processes serving
	// it. "": "lexigram".
	QueueGroup string
	// Timeout bounds a request whose context has no deadline. 0: 30s.
	Timeout time.Duration
	// Workers is how many requests of one type a process can handle at
	// once. Each worker is one more member of the type's queue group (the
	// micro framework runs an endpoint's requests one at a time, which keeps
	// its statistics exact), so `nats micro info` lists the endpoint once
	// per worker, and the server spreads requests over the workers at
	// random, as it does over processes. 0: 1.
	Workers int
	Logger  *slog.Logger // nil: slog.Default()
}

// Remote connects command and query buses to NATS: a bus with a Remote
// serves its handlers to other processes and sends messages it has no
// handler for to whichever process serves them. All buses of a process
// share one Remote: one micro service with one endpoint per type.
type Remote struct {
	nc       *nats.Conn
	svc      micro.Service // started by the first endpoint
	opts     RemoteOptions
	base     context.Context // parent of the served handlers' contexts
	cancel   context.CancelFunc
	mu       sync.Mutex
	served   map[string]any // subjects with endpoints, and the bus serving each
	subjects subjectCache
	closed   bool
	propag   propagation.TextMapPropagator
	closing  sync.Once
	running  inflight // served requests whose handlers have not answered

	lastTimeout atomic.Pointer[durationText] // see timeoutText
}

// NewRemote starts the micro service on nc. Close stops it.
func NewRemote(nc *nats.Conn, opts RemoteOptions) (*Remote, error) {
	if nc == nil {
		return nil, platform.Errorf(platform.CodeInvalidArgument, "handlers.NewRemote: the connection is nil: pass a connected *nats.Conn")
	}
	if opts.Prefix == "" {
		opts.Prefix = "lexigram"
	}
	if opts.Service == "" {
		opts.Service = "lexigram"
	}
	if opts.Version == "" {
		opts.Version = "1.0.0"
	}
	if opts.QueueGroup == "" {
		opts.QueueGroup = "lexigram"
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.Workers <= 0 {
		opts.Workers = 1
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if strings.ContainsAny(opts.Prefix, " \t\r\n*>") || strings.HasPrefix(opts.Prefix, ".") || strings.HasSuffix(opts.Prefix, ".") {
		return nil, platform.Errorf(platform.CodeInvalidArgument, "handlers.NewRemote: prefix %q is not a subject prefix: use tokens of letters, digits, '-' and '_' separated by dots", opts.Prefix)
	}
	base, cancel := context.WithCancel(context.Background())
	return &Remote{nc: nc, opts: opts, base: base, cancel: cancel, served: map[string]any{}, propag: propagation.TraceContext{},
		subjects: subjectCache{cmd: newNames(opts.Prefix + ".cmd."), qry: newNames(opts.Prefix + ".qry.")}}, nil
}

// service starts the micro service on the first endpoint, so a process
// that only sends does not show in `nats micro ls`. r.mu is held.
func (r *Remote) service() (micro.Service, error) {
	if r.svc != nil {
		return r.svc, nil
	}
	log := r.opts.Logger
	svc, err := micro.AddService(r.nc, micro.Config{
		Name:        r.opts.Service,
		Version:     r.opts.Version,
		Description: "lexigram command and query handlers",
		QueueGroup:  r.opts.QueueGroup,
		Metadata:    map[string]string{"prefix": r.opts.Prefix},
		ErrorHandler: func(_ micro.Service, e *micro.NATSError) {
			log.Error("handlers: NATS error on a command or query endpoint", "subject", e.Subject, "error", e.Description)
		},
	})
	if err != nil {
		return nil, platform.Errorf(platform.CodeInvalidArgument, "handlers: start micro service %q version %q: %w", r.opts.Service, r.opts.Version, err)
	}
	r.svc = svc
	return svc, nil
}

// Close stops the service: its endpoints drain, and the contexts of
// handlers still running are cancelled.
func (r *Remote) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err, _ := r.stop(ctx)
	return err
}

// Shutdown stops taking requests (the endpoints drain, so new requests
// go to the other processes serving the types), waits until the handlers
// under way have answered or ctx ends, and then cancels the contexts of
// those still running, as Close does. A request that reached this
// process's buffer as the endpoints stopped may still start after the
// wait and find its context cancelled: its caller gets an error, never
// silence.
func (r *Remote) Shutdown(ctx context.Context) error {
	err, waited := r.stop(ctx)
	return errors.Join(err, waited)
}

// stop stops the service, waits for the handlers under way until ctx
// ends, and cancels those left.
func (r *Remote) stop(ctx context.Context) (err, waited error) {
	r.closing.Do(func() {
		r.mu.Lock()
		r.closed = true
		if r.svc != nil {
			err = r.svc.Stop()
		}
		r.mu.Unlock()
	})
	waited = r.running.wait(ctx)
	r.cancel()
	return err, waited
}

// inflight counts what runs, and tells when nothing does.
type inflight struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n drops to 0, if someone waits
}

func (f *inflight) enter() {
	f.mu.Lock()
	f.n++
	f.mu.Unlock()
}

func (f *inflight) leave() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n--; f.n == 0 && f.idle != nil {
		close(f.idle)
		f.idle = nil
	}
}

// wait returns when nothing runs, or with ctx's error.
func (f *inflight) wait(ctx context.Context) error {
	f.mu.Lock()
	if f.n == 0 {
		f.mu.Unlock()
		return nil
	}
	if f.idle == nil {
		f.idle = make(chan struct{})
	}
	idle, n := f.idle, f.n
	f.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%d request(s) still running: %w", n, ctx.Err())
	}
}

// Service is the micro service, for its Info and Stats; nil until a
// handler is served.
func (r *Remote) Service() micro.Service {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.svc
}

// Subject is the subject of a command or query type.
func (r *Remote) Subject(kind Kind, typ string) string {
	return r.opts.Prefix + "." + kindToken(kind) + "." + typ
}

// subjectCache keeps the subjects of the types sent, so a request builds
// no subject and takes no lock.
type subjectCache struct {
	cmd, qry *names
}

func (c *subjectCache) get(kind Kind, typ string) string {
	if kind == KindQuery {
		return c.qry.get(typ)
	}
	return c.cmd.get(typ)
}

func kindToken(k Kind) string {
	if k == KindQuery {
		return "qry"
	}
	return "cmd"
}

// endpointName turns a type name into a micro endpoint name.
func endpointName(kind Kind, typ string) string {
	b := []byte(kindToken(kind) + "-" + typ)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}

// serve adds the endpoint of a type once; later registrations of the
// same type (after a scope closed) reuse it.
func (r *Remote) serve(kind Kind, typ string, owner any, h func(micro.Request)) error {
	subject := r.Subject(kind, typ)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return platform.Errorf(platform.CodeInvalidArgument, "serve %s %q: the Remote is closed: make a new one to serve handlers", kind, typ)
	}
	if prev, ok := r.served[subject]; ok {
		if prev != owner {
			return platform.Errorf(platform.CodeDuplicateHandler, "%s %q: another bus on this Remote already serves %s: give each process one command bus and one query bus per Remote", kind, typ, subject)
		}
		return nil
	}
	svc, err := r.service()
	if err != nil {
		return err
	}
	for range r.opts.Workers {
		if err := svc.AddEndpoint(endpointName(kind, typ), micro.HandlerFunc(h), micro.WithEndpointSubject(subject),
			micro.WithEndpointMetadata(map[string]string{"kind": string(kind), "type": typ})); err != nil {
			return platform.Errorf(platform.CodeInvalidArgument, "serve %s %q on %s: %w", kind, typ, subject, err)
		}
	}
	r.served[subject] = owner
	// Once the server has the subscription, a request from any connection
	// reaches it: registration returns when the type is servable.
	if err := r.nc.FlushTimeout(r.opts.Timeout); err != nil {
		r.opts.Logger.Warn("handlers: could not confirm a new endpoint's subscription with the server", "subject", subject, "error", err)
	}
	return nil
}

// request sends a message and waits for the reply. A reply carrying an
// error becomes that error, rebuilt.
func (r *Remote) request(ctx context.Context, kind Kind, msg Message, codec platform.Codec, data []byte) (*nats.Msg, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.opts.Timeout)
		defer cancel()
	}
	dl, _ := ctx.Deadline()
	subject := r.subjects.get(kind, msg.Type)
	// Send in headers only what the other side cannot infer (the type is
	// in the subject, msgpack is the default, the correlation ID is
	// usually the message's own ID); see the wire format in wire.go.
	out := outgoing.Get().(*outgoingRequest)
	defer out.release()
	m := &out.msg
	m.Subject = subject
	timeLeft := r.timeoutText(time.Until(dl))
	var prefixed bool
	if out.data, prefixed = appendPrefix(out.data[:0], msg.ID, timeLeft); prefixed {
		out.data = append(out.data, data...)
		m.Data = out.data
	} else {
		m.Data = data
		out.set(HeaderID, msg.ID)
		out.set(HeaderTimeout, timeLeft)
	}
	if codec.Name() != platform.Msgpack.Name() {
		out.set(HeaderCodec, codec.Name())
	}
	if msg.CorrelationID != "" && msg.CorrelationID != msg.ID {
		out.set(HeaderCorrelationID, msg.CorrelationID)
	}
	if msg.CausationID != "" {
		out.set(HeaderCausationID, msg.CausationID)
	}
	if msg.IdempotencyKey != "" {
		out.set(HeaderIdempotencyKey, msg.IdempotencyKey)
	}
	if tenant := platform.Tenant(ctx); tenant != "" {
		out.set(HeaderTenant, tenant)
	}
	r.propag.Inject(ctx, headerCarrier(m.Header))
	resp, err := r.nc.RequestMsgWithContext(ctx, m)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return nil, platform.Errorf(platform.CodeNoHandler, "%s %q: no process serves %s: register a handler (handlers.Handle%s) in a process whose bus has a Remote on this NATS system",
			kind, msg.Type, subject, titleKind(kind))
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
		return nil, platform.Errorf(platform.CodeHandlerTimeout, "%s %q (%s): no reply on %s before the deadline: %w", kind, msg.Type, msg.ID, subject, err)
	case err != nil:
		return nil, platform.Errorf(execCode(kind), "%s %q (%s): request on %s: %w", kind, msg.Type, msg.ID, subject, err)
	}
	if code := resp.Header.Get(micro.ErrorCodeHeader); code != "" {
		var w wireError
		if len(resp.Data) > 0 && codec.Unmarshal(resp.Data, &w) == nil && w.Message != "" {
			return nil, fromWire(&w)
		}
		return nil, &platform.Error{Code: platform.Code(code), Message: resp.Header.Get(micro.ErrorHeader)}
	}
	return resp, nil
}

// outgoingRequest is a request's message, reused: nats.go has copied
// subject, headers and data into its write buffer by the time
// RequestMsgWithContext returns. Reuse saves the allocations of the
// message, its header map and its prefixed body, which on a process that
// waits in the poller between requests cost more than they do in a loop.
type outgoingRequest struct {
	msg  nats.Msg
	vals [6]string // backs the header values, one element each
	n    int
	data []byte // the prefix and the body
}

// The header map has room for our six headers and the trace context's two.
var outgoing = sync.Pool{New: func() any { return &outgoingRequest{msg: nats.Msg{Header: make(nats.Header, 8)}} }}

func (o *outgoingRequest) set(key, value string) {
	o.vals[o.n] = value
	o.msg.Header[key] = o.vals[o.n : o.n+1 : o.n+1]
	o.n++
}

func (o *outgoingRequest) release() {
	clear(o.msg.Header) // keeps the map's room
	o.vals, o.n = [6]string{}, 0
	o.msg.Subject, o.msg.Data = "", nil
	if cap(o.data) > 64<<10 { // a rare big command does not stay pinned in the pool
		o.data = nil
	}
	outgoing.Put(o)
}

// timeoutText formats the time a request has left, in milliseconds (the
// serving side's deadline is then up to 1 ms earlier than the caller's),
// and keeps the last text: requests sent with the same timeout format it
// once.
func (r *Remote) timeoutText(d time.Duration) string {
	if d > time.Millisecond {
		d = d.Truncate(time.Millisecond)
	}
	if t := r.lastTimeout.Load(); t != nil && t.d == d {
		return t.text
	}
	t := &durationText{d: d, text: d.String()}
	r.lastTimeout.Store(t)
	return t.text
}

type durationText struct {
	d    time.Duration
	text string
}

func titleKind(k Kind) string {
	if k == KindQuery {
		return "Query"
	}
	return "Command"
}

func execCode(k Kind) platform.Code {
	if k == KindQuery {
		return platform.CodeQueryExecution
	}
	return platform.CodeCommandExecution
}

// servedRequest is a request read by incoming.
type servedRequest struct {
	deadline *lazyDeadline   // the caller's; stop it when the request is answered
	ctx      context.Context // the deadline, trace context, correlation and causation
	codec    platform.Codec  // the header's, JSON for a JSON body (wire_json.go), else msgpack
	msg      Message         // without its body
	body     []byte
}

// incoming reads a served request: its ID and time left (from the prefix,
// or headers), codec, correlation, causation, idempotency key and trace
// context.
func (r *Remote) incoming(req micro.Request, typ string) (servedRequest, error) {
	h := nats.Header(req.Headers())
	id, timeLeft, body, prefixed, err := cutPrefix(req.Data())
	if !prefixed {
		id, timeLeft = h.Get(HeaderID), h.Get(HeaderTimeout)
	}
	d, field := r.opts.Timeout, "header "+HeaderTimeout // a sender that is not a lexigram bus may send no deadline
	if prefixed {
		field = "the request prefix's time left"
	}
	if err == nil && timeLeft != "" {
		if d, err = time.ParseDuration(timeLeft); err != nil {
			d, err = r.opts.Timeout, platform.Errorf(platform.CodeInvalidArgument, "%s %q is not a duration: send a Go duration such as \"1.5s\"", field, timeLeft)
		}
	}
	in := servedRequest{deadline: withLazyDeadline(r.base, time.Now().Add(d)), body: body}
	in.ctx = in.deadline
	// The codec first, so that every error is answered in it.
	var codecErr error
	in.codec, codecErr = requestCodec(h.Get(HeaderCodec), body)
	if err != nil {
		return in, err
	}
	if codecErr != nil {
		return in, codecErr
	}
	if _, traced := h[traceparent]; traced { // the propagator finds nothing without it
		in.ctx = r.propag.Extract(in.deadline, headerCarrier(h))
	}
	if tenant := h.Get(HeaderTenant); tenant != "" {
		if err := platform.ValidTenant(tenant); err != nil {
			return in, fmt.Errorf("header %s: %w", HeaderTenant, err)
		}
		in.ctx = platform.WithTenant(in.ctx, tenant)
	}
	in.msg = Message{ID: id, Type: typ, CorrelationID: h.Get(HeaderCorrelationID), CausationID: h.Get(HeaderCausationID),
		IdempotencyKey: h.Get(HeaderIdempotencyKey)}
	if in.msg.ID == "" {
		in.msg.ID = newID()
	}
	if in.msg.CorrelationID == "" {
		in.msg.CorrelationID = in.msg.ID
	}
	return in, nil
}

// respondError sends err with its code in the micro error headers and its
// whole chain in the body.
func (r *Remote) respondError(req micro.Request, codec platform.Codec, err error) {
	w := toWire(err)
	if codec == nil {
		codec = platform.Msgpack
	}
	data, mErr := codec.Marshal(w)
	if mErr != nil {
		data = nil
	}
	code := w.Code
	if code == "" {
		code = "500"
	}
	if rErr := req.Error(code, headerText(w.Message), data); rErr != nil {
		r.opts.Logger.Warn("handlers: could not send an error reply", "subject", req.Subject(), "error", rErr)
	}
}

func (r *Remote) respond(req micro.Request, data []byte) {
	if err := req.Respond(data); err != nil {
		r.opts.Logger.Warn("handlers: could not send a reply", "subject", req.Subject(), "error", err)
	}
}

func (r *Remote) String() string {
	return fmt.Sprintf("remote %s on %s", r.opts.Service, r.opts.Prefix)
}
