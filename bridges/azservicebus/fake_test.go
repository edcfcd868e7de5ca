package azservicebus

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	sb "github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/go-amqp"
)

// fakeNS is an in-memory Service Bus namespace that behaves like the real
// one where the adapter relies on it:
//
//   - peek-lock: a received message is locked for its entity's lock
//     duration; completing, abandoning or dead-lettering it needs the lock
//     (CodeLockLost otherwise); an abandoned message, or one whose lock ran
//     out, is available again, before later ones, with its delivery count
//     grown; past MaxDeliveryCount deliveries it moves to the dead-letter
//     sub-queue (reason MaxDeliveryCountExceeded);
//   - a receiver's Close leaves its locks in place until they run out, as
//     Service Bus keeps peek-locks on the server;
//   - sessions: AcceptNextSession locks a session with available messages
//     for one receiver at a time, which gets them in order; the session's
//     lock covers its messages and is renewed with RenewSessionLock;
//     closing the session receiver, or the lock running out, frees the
//     session and makes its locked messages available again; a non-session
//     receiver of a session entity, or a message without a SessionId sent
//     to one, is refused (amqp:not-allowed);
//   - duplicate detection: with a window, a message whose MessageId was
//     seen within it is accepted and dropped;
//   - batches: as many messages as fit in MaxBatchBytes, sb.ErrMessageTooLarge
//     past that;
//   - topics copy each message to every subscription;
//   - an outage (down): every call fails with CodeConnectionLost, every
//     lock is dropped, sessions receivers accepted before it are lost for
//     good (CodeLockLost), while senders and plain receivers work again
//     after it, as the SDK recovers its links.
//
// failNext injects errors into the next calls of one operation.
type fakeNS struct {
	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every change
	entities map[string]*fakeEntity
	topics   map[string][]string // topic → its subscriptions' paths
	down     bool
	tokens   uint64
	faults   map[string][]fault
	calls    map[string]int
	rejected int // calls failed by an outage
	// maxLocked is the most messages of one entity locked at once.
	maxLocked map[string]int
	sent      []sentMsg // every message stored, in order
}

type sentMsg struct{ Entity, ID, Session string }

type fault struct {
	err     error
	applied bool // the send happens, then the call fails (a lost acknowledgement)
}

type entityConfig struct {
	Sessions         bool
	LockDuration     time.Duration // default 2s
	MaxDeliveryCount int           // default 10
	DupWindow        time.Duration // 0: no duplicate detection
	MaxBatchBytes    int           // default 256 KiB
}

type fakeEntity struct {
	path     string
	cfg      entityConfig
	seq      int64
	msgs     []*fakeMsg // active, by sequence number
	dlq      []*fakeMsg
	seen     map[string]time.Time
	sessions map[string]*fakeSession
}

type fakeMsg struct {
	seq        int64
	msg        sb.Message
	raw        *sb.AMQPAnnotatedMessageBody // an odd body, for tests
	deliveries uint32
	lock       *fakeLock
	reason     string
	desc       string
}

type fakeLock struct {
	token  [16]byte
	until  time.Time
	holder *fakeSessionReceiver // with sessions: the session's receiver
}

type fakeSession struct {
	holder *fakeSessionReceiver
	until  time.Time
}

func newFakeNS() *fakeNS {
	return &fakeNS{changed: make(chan struct{}), entities: map[string]*fakeEntity{}, topics: map[string][]string{}, faults: map[string][]fault{}, calls: map[string]int{}, maxLocked: map[string]int{}}
}

// queue creates a queue.
func (ns *fakeNS) queue(name string, cfg entityConfig) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	ns.entities[name] = newEntity(name, cfg)
}

// topic creates a topic with subscriptions of one configuration.
func (ns *fakeNS) topic(name string, cfg entityConfig, subscriptions ...string) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	for _, s := range subscriptions {
		p := name + "/Subscriptions/" + s
		ns.entities[p] = newEntity(p, cfg)
		ns.topics[name] = append(ns.topics[name], p)
	}
}

func newEntity(path string, cfg entityConfig) *fakeEntity {
	if cfg.LockDuration == 0 {
		cfg.LockDuration = 2 * time.Second
	}
	if cfg.MaxDeliveryCount == 0 {
		cfg.MaxDeliveryCount = 10
	}
	if cfg.MaxBatchBytes == 0 {
		cfg.MaxBatchBytes = 256 << 10
	}
	return &fakeEntity{path: path, cfg: cfg, seen: map[string]time.Time{}, sessions: map[string]*fakeSession{}}
}

// client is a client of one entity, as the adapter opens them.
func (ns *fakeNS) client(queue, topic, subscription string) *fakeClient {
	return &fakeClient{ns: ns, queue: queue, topic: topic, sub: subscription}
}

func (ns *fakeNS) failNext(op string, err error, n int) { ns.inject(op, fault{err: err}, n) }

// script sets what the next calls of op do: a nil error lets a call pass.
func (ns *fakeNS) script(op string, errs ...error) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	ns.faults[op] = nil
	for _, err := range errs {
		ns.faults[op] = append(ns.faults[op], fault{err: err})
	}
}

// loseAck makes the next n sends happen and fail anyway.
func (ns *fakeNS) loseAck(err error, n int) { ns.inject("send", fault{err: err, applied: true}, n) }

func (ns *fakeNS) inject(op string, f fault, n int) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	for range n {
		ns.faults[op] = append(ns.faults[op], f)
	}
}

func (ns *fakeNS) count(op string) int {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	return ns.calls[op]
}

// setDown starts or ends an outage.
func (ns *fakeNS) setDown(down bool) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	ns.down = down
	if down {
		for _, e := range ns.entities {
			for _, m := range e.msgs {
				m.lock = nil
			}
			for _, s := range e.sessions {
				if s.holder != nil {
					s.holder.lost = true
					s.holder = nil
				}
			}
		}
	}
	ns.wake()
}

func (ns *fakeNS) outageSeen() int {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	return ns.rejected
}

// wake tells waiting receivers that something changed. ns.mu is held.
func (ns *fakeNS) wake() {
	close(ns.changed)
	ns.changed = make(chan struct{})
}

// begin counts a call and returns the error it must fail with: an
// injected one, or the outage's. ns.mu is held.
func (ns *fakeNS) begin(op string) (fault, bool) {
	ns.calls[op]++
	if fs := ns.faults[op]; len(fs) > 0 {
		ns.faults[op] = fs[1:]
		if fs[0].err != nil { // a fault without an error lets one call pass
			return fs[0], true
		}
	}
	if ns.down {
		ns.rejected++
		return fault{err: &sb.Error{Code: sb.CodeConnectionLost}}, true
	}
	return fault{}, false
}

func (ns *fakeNS) entity(path string) (*fakeEntity, error) {
	e := ns.entities[path]
	if e == nil {
		return nil, &sb.Error{Code: sb.CodeNotFound}
	}
	return e, nil
}

// expire frees the locks that ran out, at now. ns.mu is held.
func (e *fakeEntity) expire(now time.Time) {
	for id, s := range e.sessions {
		if s.holder != nil && now.After(s.until) {
			s.holder.lost = true
			s.holder = nil
		}
		if s.holder == nil {
			delete(e.sessions, id)
		}
	}
	for _, m := range e.msgs {
		if m.lock == nil {
			continue
		}
		if m.lock.holder != nil {
			if m.lock.holder.lost {
				m.lock = nil
			}
			continue
		}
		if now.After(m.lock.until) {
			m.lock = nil
		}
	}
}

// nextExpiry is the earliest lock end, zero when nothing is locked.
func (e *fakeEntity) nextExpiry() time.Time {
	var t time.Time
	consider := func(u time.Time) {
		if t.IsZero() || u.Before(t) {
			t = u
		}
	}
	for _, s := range e.sessions {
		if s.holder != nil {
			consider(s.until)
		}
	}
	for _, m := range e.msgs {
		if m.lock != nil && m.lock.holder == nil {
			consider(m.lock.until)
		}
	}
	return t
}

// take locks up to n available messages (of one session when session is
// not nil) and returns what the receiver gets. ns.mu is held.
func (ns *fakeNS) take(e *fakeEntity, n int, holder *fakeSessionReceiver, now time.Time) []*sb.ReceivedMessage {
	var out []*sb.ReceivedMessage
	kept := e.msgs[:0]
	for _, m := range e.msgs {
		if len(out) >= n || m.lock != nil || (holder != nil && (m.msg.SessionID == nil || *m.msg.SessionID != holder.id)) {
			kept = append(kept, m)
			continue
		}
		if int(m.deliveries) >= e.cfg.MaxDeliveryCount {
			m.reason, m.desc = "MaxDeliveryCountExceeded", fmt.Sprintf("delivered %d times", m.deliveries)
			e.dlq = append(e.dlq, m)
			continue
		}
		m.deliveries++
		ns.tokens++
		l := &fakeLock{until: now.Add(e.cfg.LockDuration), holder: holder}
		binary.BigEndian.PutUint64(l.token[8:], ns.tokens)
		if holder != nil {
			l.until = e.sessions[holder.id].until
		}
		m.lock = l
		kept = append(kept, m)
		out = append(out, m.received())
	}
	clear(e.msgs[len(kept):])
	e.msgs = kept
	locked := 0
	for _, m := range e.msgs {
		if m.lock != nil {
			locked++
		}
	}
	ns.maxLocked[e.path] = max(ns.maxLocked[e.path], locked)
	return out
}

func (ns *fakeNS) mostLocked(path string) int {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	return ns.maxLocked[path]
}

func (ns *fakeNS) sentLog() []sentMsg {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	return slices.Clone(ns.sent)
}

func (m *fakeMsg) received() *sb.ReceivedMessage {
	until, seq := m.lock.until, m.seq
	rm := &sb.ReceivedMessage{
		MessageID:             deref(m.msg.MessageID),
		SessionID:             m.msg.SessionID,
		Subject:               m.msg.Subject,
		ContentType:           m.msg.ContentType,
		ApplicationProperties: maps.Clone(m.msg.ApplicationProperties),
		Body:                  slices.Clone(m.msg.Body),
		DeliveryCount:         m.deliveries,
		LockToken:             m.lock.token,
		LockedUntil:           &until,
		SequenceNumber:        &seq,
		RawAMQPMessage:        &sb.AMQPAnnotatedMessage{Body: sb.AMQPAnnotatedMessageBody{Data: [][]byte{slices.Clone(m.msg.Body)}}},
	}
	if m.raw != nil {
		rm.Body = nil
		rm.RawAMQPMessage.Body = *m.raw
	}
	return rm
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// enqueue stores a sent message in an entity; false when duplicate
// detection dropped it. ns.mu is held.
func (e *fakeEntity) enqueue(m sb.Message, now time.Time) bool {
	if e.cfg.DupWindow > 0 && m.MessageID != nil {
		if at, ok := e.seen[*m.MessageID]; ok && now.Sub(at) < e.cfg.DupWindow {
			return false
		}
		e.seen[*m.MessageID] = now
	}
	e.seq++
	m.ApplicationProperties = maps.Clone(m.ApplicationProperties)
	m.Body = slices.Clone(m.Body)
	e.msgs = append(e.msgs, &fakeMsg{seq: e.seq, msg: m})
	return true
}

// put stores a message with an odd body straight in an entity.
func (ns *fakeNS) put(path, id string, raw sb.AMQPAnnotatedMessageBody) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	e := ns.entities[path]
	e.enqueue(sb.Message{MessageID: &id}, time.Now())
	e.msgs[len(e.msgs)-1].raw = &raw
	ns.wake()
}

// fakeView is what a test sees of a stored message.
type fakeView struct {
	ID, Session, Subject, ContentType string
	Props                             map[string]any
	Body                              string
	Deliveries                        uint32
	Locked                            bool
	Reason, Desc                      string
}

func view(m *fakeMsg) fakeView {
	return fakeView{ID: deref(m.msg.MessageID), Session: deref(m.msg.SessionID), Subject: deref(m.msg.Subject), ContentType: deref(m.msg.ContentType),
		Props: maps.Clone(m.msg.ApplicationProperties), Body: string(m.msg.Body), Deliveries: m.deliveries, Locked: m.lock != nil, Reason: m.reason, Desc: m.desc}
}

// active lists an entity's messages (locks that ran out freed first).
func (ns *fakeNS) active(path string) []fakeView {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	e := ns.entities[path]
	e.expire(time.Now())
	out := make([]fakeView, len(e.msgs))
	for i, m := range e.msgs {
		out[i] = view(m)
	}
	return out
}

// deadLetters lists an entity's dead-letter sub-queue.
func (ns *fakeNS) deadLetters(path string) []fakeView {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	e := ns.entities[path]
	out := make([]fakeView, len(e.dlq))
	for i, m := range e.dlq {
		out[i] = view(m)
	}
	return out
}

// fakeClient opens links of one entity; Close closes them all, as
// sb.Client.Close does.
type fakeClient struct {
	ns                *fakeNS
	queue, topic, sub string
	mu                sync.Mutex
	links             []interface{ shut() }
	closed            bool
}

func (c *fakeClient) path() string {
	if c.queue != "" {
		return c.queue
	}
	return c.topic + "/Subscriptions/" + c.sub
}

func (c *fakeClient) add(l interface{ shut() }) {
	c.mu.Lock()
	c.links = append(c.links, l)
	c.mu.Unlock()
}

func (c *fakeClient) NewSender() (sendLink, error) {
	target := c.queue
	if target == "" {
		target = c.topic
	}
	s := &fakeSender{ns: c.ns, target: target}
	c.add(s)
	return s, nil
}

func (c *fakeClient) NewReceiver() (messageReceiver, error) {
	c.ns.mu.Lock()
	c.ns.calls["new-receiver"]++
	c.ns.mu.Unlock()
	r := &fakeReceiver{ns: c.ns, path: c.path()}
	c.add(r)
	return r, nil
}

func (c *fakeClient) AcceptNextSession(ctx context.Context) (sessionReceiver, error) {
	ns := c.ns
	for {
		ns.mu.Lock()
		if f, bad := ns.begin("accept"); bad {
			ns.mu.Unlock()
			return nil, f.err
		}
		e, err := ns.entity(c.path())
		if err != nil {
			ns.mu.Unlock()
			return nil, err
		}
		if !e.cfg.Sessions {
			ns.mu.Unlock()
			return nil, &amqp.Error{Condition: amqp.ErrCondNotAllowed, Description: "the entity does not require sessions"}
		}
		now := time.Now()
		e.expire(now)
		var best *fakeMsg
		for _, m := range e.msgs {
			if m.lock == nil && m.msg.SessionID != nil && e.sessions[*m.msg.SessionID] == nil && (best == nil || m.seq < best.seq) {
				best = m
			}
		}
		if best != nil {
			r := &fakeSessionReceiver{fakeReceiver: fakeReceiver{ns: ns, path: e.path}, id: *best.msg.SessionID}
			r.session = r
			e.sessions[r.id] = &fakeSession{holder: r, until: now.Add(e.cfg.LockDuration)}
			ns.mu.Unlock()
			c.add(r)
			return r, nil
		}
		ch, next := ns.changed, e.nextExpiry()
		ns.mu.Unlock()
		if err := wait(ctx, ch, next); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return nil, &sb.Error{Code: sb.CodeTimeout}
			}
			return nil, err
		}
	}
}

// wait waits for a change, the next lock end or ctx.
func wait(ctx context.Context, ch <-chan struct{}, next time.Time) error {
	var timer <-chan time.Time
	if !next.IsZero() {
		t := time.NewTimer(time.Until(next) + time.Millisecond)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-ch:
	case <-timer:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

func (c *fakeClient) Close(context.Context) error {
	c.mu.Lock()
	links := c.links
	c.links, c.closed = nil, true
	c.mu.Unlock()
	for _, l := range links {
		l.shut()
	}
	c.ns.mu.Lock()
	c.ns.calls["client-close"]++
	c.ns.mu.Unlock()
	return nil
}

// fakeSender sends to a queue or a topic.
type fakeSender struct {
	ns     *fakeNS
	target string
	closed bool // under ns.mu
}

type fakeBatch struct {
	max, size int
	msgs      []sb.Message
}

func (b *fakeBatch) AddMessage(m *sb.Message, _ *sb.AddMessageOptions) error {
	n := 100 + len(m.Body) + len(deref(m.MessageID)) + len(deref(m.SessionID)) + len(deref(m.Subject)) + len(deref(m.ContentType))
	for k, v := range m.ApplicationProperties {
		n += len(k) + len(fmt.Sprint(v))
	}
	if b.size+n > b.max {
		return sb.ErrMessageTooLarge
	}
	b.size += n
	b.msgs = append(b.msgs, *m)
	return nil
}

func (b *fakeBatch) NumMessages() int32 { return int32(len(b.msgs)) }

func (s *fakeSender) targets() ([]*fakeEntity, error) {
	if subs, ok := s.ns.topics[s.target]; ok {
		out := make([]*fakeEntity, len(subs))
		for i, p := range subs {
			out[i] = s.ns.entities[p]
		}
		return out, nil
	}
	e, err := s.ns.entity(s.target)
	if err != nil {
		return nil, err
	}
	return []*fakeEntity{e}, nil
}

func (s *fakeSender) NewBatch(context.Context) (messageBatch, error) {
	ns := s.ns
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if s.closed {
		return nil, &sb.Error{Code: sb.CodeClosed}
	}
	if f, bad := ns.begin("newbatch"); bad {
		return nil, f.err
	}
	es, err := s.targets()
	if err != nil {
		return nil, err
	}
	return &fakeBatch{max: es[0].cfg.MaxBatchBytes}, nil
}

func (s *fakeSender) SendBatch(ctx context.Context, mb messageBatch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b := mb.(*fakeBatch)
	ns := s.ns
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if s.closed {
		return &sb.Error{Code: sb.CodeClosed}
	}
	f, bad := ns.begin("send")
	if bad && !f.applied {
		return f.err
	}
	es, err := s.targets()
	if err != nil {
		return err
	}
	for _, e := range es {
		if e.cfg.Sessions {
			for _, m := range b.msgs {
				if m.SessionID == nil {
					return &amqp.Error{Condition: amqp.ErrCondNotAllowed, Description: "the SessionId was not set on a message, and it cannot be sent to the entity"}
				}
			}
		}
	}
	now := time.Now()
	for _, e := range es {
		for _, m := range b.msgs {
			if e.enqueue(m, now) {
				ns.sent = append(ns.sent, sentMsg{Entity: e.path, ID: deref(m.MessageID), Session: deref(m.SessionID)})
			}
		}
	}
	ns.calls["sent"] += len(b.msgs)
	ns.wake()
	if bad {
		return f.err
	}
	return nil
}

func (s *fakeSender) Close(context.Context) error {
	s.shut()
	return nil
}

func (s *fakeSender) shut() {
	s.ns.mu.Lock()
	s.closed = true
	s.ns.mu.Unlock()
}

// fakeReceiver receives from an entity without sessions.
type fakeReceiver struct {
	ns        *fakeNS
	path      string
	closed    bool                 // under ns.mu
	session   *fakeSessionReceiver // set on session receivers
	receiving bool
}

func (r *fakeReceiver) ReceiveMessages(ctx context.Context, n int, _ *sb.ReceiveMessagesOptions) ([]*sb.ReceivedMessage, error) {
	ns := r.ns
	ns.mu.Lock()
	if r.receiving {
		ns.mu.Unlock()
		return nil, errors.New("receiver is already receiving messages. ReceiveMessages() cannot be called concurrently")
	}
	r.receiving = true
	ns.mu.Unlock()
	defer func() {
		ns.mu.Lock()
		r.receiving = false
		ns.mu.Unlock()
	}()
	for {
		ns.mu.Lock()
		if err := r.usable("receive"); err != nil {
			ns.mu.Unlock()
			return nil, err
		}
		e, err := ns.entity(r.path)
		if err != nil {
			ns.mu.Unlock()
			return nil, err
		}
		if e.cfg.Sessions && r.session == nil {
			ns.mu.Unlock()
			return nil, &amqp.Error{Condition: amqp.ErrCondNotAllowed, Description: "it is not possible for an entity that requires sessions to create a non-sessionful message receiver"}
		}
		now := time.Now()
		e.expire(now)
		if r.session != nil && r.session.lost {
			ns.mu.Unlock()
			return nil, &sb.Error{Code: sb.CodeLockLost}
		}
		if got := ns.take(e, n, r.session, now); len(got) > 0 {
			ns.mu.Unlock()
			return got, nil
		}
		ch, next := ns.changed, e.nextExpiry()
		ns.mu.Unlock()
		if err := wait(ctx, ch, next); err != nil {
			return nil, err
		}
	}
}

// usable counts a call and fails it as the link's state says. ns.mu is held.
func (r *fakeReceiver) usable(op string) error {
	if r.closed {
		return &sb.Error{Code: sb.CodeClosed}
	}
	if f, bad := r.ns.begin(op); bad {
		return f.err
	}
	if r.session != nil && r.session.lost {
		return &sb.Error{Code: sb.CodeLockLost}
	}
	return nil
}

// locked finds the message m's lock token holds, or fails with
// CodeLockLost. ns.mu is held.
func (r *fakeReceiver) locked(m *sb.ReceivedMessage) (*fakeEntity, int, error) {
	e, err := r.ns.entity(r.path)
	if err != nil {
		return nil, 0, err
	}
	e.expire(time.Now())
	for i, fm := range e.msgs {
		if fm.lock != nil && fm.lock.token == m.LockToken && fm.lock.holder == r.session {
			return e, i, nil
		}
	}
	return nil, 0, &sb.Error{Code: sb.CodeLockLost}
}

func (r *fakeReceiver) settle(op string, m *sb.ReceivedMessage, f func(e *fakeEntity, i int)) error {
	ns := r.ns
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if err := r.usable(op); err != nil {
		return err
	}
	e, i, err := r.locked(m)
	if err != nil {
		return err
	}
	f(e, i)
	ns.wake()
	return nil
}

func (r *fakeReceiver) CompleteMessage(_ context.Context, m *sb.ReceivedMessage, _ *sb.CompleteMessageOptions) error {
	return r.settle("complete", m, func(e *fakeEntity, i int) { e.msgs = slices.Delete(e.msgs, i, i+1) })
}

func (r *fakeReceiver) AbandonMessage(_ context.Context, m *sb.ReceivedMessage, _ *sb.AbandonMessageOptions) error {
	return r.settle("abandon", m, func(e *fakeEntity, i int) { e.msgs[i].lock = nil })
}

func (r *fakeReceiver) DeadLetterMessage(_ context.Context, m *sb.ReceivedMessage, o *sb.DeadLetterOptions) error {
	return r.settle("deadletter", m, func(e *fakeEntity, i int) {
		fm := e.msgs[i]
		fm.lock = nil
		if o != nil {
			fm.reason, fm.desc = deref(o.Reason), deref(o.ErrorDescription)
		}
		e.dlq = append(e.dlq, fm)
		e.msgs = slices.Delete(e.msgs, i, i+1)
	})
}

func (r *fakeReceiver) RenewMessageLock(_ context.Context, m *sb.ReceivedMessage, _ *sb.RenewMessageLockOptions) error {
	ns := r.ns
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if err := r.usable("renew"); err != nil {
		return err
	}
	e, i, err := r.locked(m)
	if err != nil {
		return err
	}
	until := time.Now().Add(e.cfg.LockDuration)
	e.msgs[i].lock.until = until
	m.LockedUntil = &until
	return nil
}

func (r *fakeReceiver) Close(context.Context) error {
	r.shut()
	return nil
}

// shut closes the link; its message locks stay until they run out.
func (r *fakeReceiver) shut() {
	r.ns.mu.Lock()
	defer r.ns.mu.Unlock()
	r.closed = true
	r.ns.wake()
}

// fakeSessionReceiver holds one session.
type fakeSessionReceiver struct {
	fakeReceiver
	id   string
	lost bool // under ns.mu
}

func (r *fakeSessionReceiver) SessionID() string { return r.id }

func (r *fakeSessionReceiver) LockedUntil() time.Time {
	r.ns.mu.Lock()
	defer r.ns.mu.Unlock()
	if s := r.ns.entities[r.path].sessions[r.id]; s != nil && s.holder == r {
		return s.until
	}
	return time.Time{}
}

func (r *fakeSessionReceiver) RenewSessionLock(context.Context, *sb.RenewSessionLockOptions) error {
	ns := r.ns
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if err := r.usable("renew-session"); err != nil {
		return err
	}
	e := ns.entities[r.path]
	e.expire(time.Now())
	s := e.sessions[r.id]
	if s == nil || s.holder != r {
		return &sb.Error{Code: sb.CodeLockLost}
	}
	s.until = time.Now().Add(e.cfg.LockDuration)
	for _, m := range e.msgs {
		if m.lock != nil && m.lock.holder == r {
			m.lock.until = s.until
		}
	}
	return nil
}

func (r *fakeSessionReceiver) Close(context.Context) error {
	r.shut()
	return nil
}

// shut closes the session's link, which frees the session and its
// locked messages.
func (r *fakeSessionReceiver) shut() {
	ns := r.ns
	ns.mu.Lock()
	defer ns.mu.Unlock()
	r.closed = true
	if e := ns.entities[r.path]; e != nil {
		if s := e.sessions[r.id]; s != nil && s.holder == r {
			delete(e.sessions, r.id)
		}
		for _, m := range e.msgs {
			if m.lock != nil && m.lock.holder == r {
				m.lock = nil
			}
		}
	}
	ns.wake()
}

// sessionsHeld lists the sessions locked now, sorted.
func (ns *fakeNS) sessionsHeld(path string) []string {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	e := ns.entities[path]
	e.expire(time.Now())
	var out []string
	for id, s := range e.sessions {
		if s.holder != nil {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

var sbConnLost = sb.Error{Code: sb.CodeConnectionLost}
