package sagas

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/handlers/durable"
	"github.com/lexigram/events/platform"
)

// The work stream holds one subject per instance,
// <prefix>.run.<type>.<id>: a message there tells the managers to move
// the instance on. Its retention is WorkQueue, so what was handled is
// gone, and each saga type has one durable consumer shared by every
// manager that registered it. It is in memory unless DurableWork: an
// existing stream is used with the storage it has.
func ensureWorkStream(ctx context.Context, js jetstream.JetStream, o Options) (jetstream.Stream, error) {
	want := jetstream.StreamConfig{
		Name:       o.Stream,
		Subjects:   []string{o.SubjectPrefix + ".>"},
		Retention:  jetstream.WorkQueuePolicy,
		Replicas:   o.Replicas,
		Storage:    jetstream.MemoryStorage,
		Duplicates: 2 * time.Minute,
	}
	if o.DurableWork {
		want.Storage = o.Storage
	}
	s, err := js.Stream(ctx, o.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = js.CreateStream(ctx, want)
	}
	if err != nil {
		return nil, platform.Errorf(platform.CodeStoreUnavailable, "sagas: open the work stream %s: %w", o.Stream, err)
	}
	got := s.CachedInfo().Config
	if got.Retention != jetstream.WorkQueuePolicy || len(got.Subjects) != 1 || got.Subjects[0] != want.Subjects[0] {
		return nil, platform.Errorf(platform.CodeConfigConflict,
			"sagas: stream %s exists with retention %s and subjects %q, not a work queue on %q: delete it, or set sagas.Options.Stream and SubjectPrefix to another",
			o.Stream, got.Retention, got.Subjects, want.Subjects[0])
	}
	return s, nil
}

// kick asks the managers to move the instance on.
func (m *Manager) kick(ctx context.Context, in Instance, why string) error {
	if m.mover != nil {
		return m.mover(ctx, in, why)
	}
	err := kick(ctx, m.js, m.opts.SubjectPrefix, in, why)
	if err != nil {
		m.checkWork() // perhaps the server lost the stream
	}
	return err
}

// checkWork asks watchWork to check the work stream, without waiting.
func (m *Manager) checkWork() {
	select {
	case m.restore <- struct{}{}:
	default:
	}
}

// watchWork keeps the work stream and its consumers, until ctx ends.
// A memory stream does not outlive its server's restart, and with it go
// the messages of instances waiting for a retry or not yet taken: when
// the connection comes back, or a consumer or a kick fails, it checks
// that the stream is the one the consumers were made on, and if not
// makes it and them again and moves every unfinished instance on.
func (m *Manager) watchWork(ctx context.Context, w *workers) {
	status := m.js.Conn().StatusChanged(nats.CONNECTED)
	defer m.js.Conn().RemoveStatusListener(status)
	created := m.stream.CachedInfo().Created
	// Checked again a second after a check that could not tell (the
	// server back but its JetStream not yet ready, say).
	again := time.NewTimer(time.Hour)
	again.Stop()
	defer again.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-status:
		case <-m.restore:
		case <-again.C:
		}
		switch lost, err := m.restoreWork(ctx, w, created); {
		case err != nil && ctx.Err() == nil:
			m.log.DebugContext(ctx, "sagas: check the work stream; checking again in a second", "stream", m.opts.Stream, "error", err)
			again.Reset(time.Second)
		case lost != nil:
			created = *lost
		}
	}
}

// restoreWork makes the work stream and its consumers again if the
// stream is not the one created at created, and then moves every
// unfinished instance on; it returns the new stream's creation time.
func (m *Manager) restoreWork(ctx context.Context, w *workers, created time.Time) (*time.Time, error) {
	// Short: a check under way as the server goes would otherwise hold
	// up the one its return brings.
	check, cancel := context.WithTimeout(ctx, 2*time.Second)
	s, err := m.js.Stream(check, m.opts.Stream)
	cancel()
	if err == nil && s.CachedInfo().Created.Equal(created) {
		return nil, nil
	}
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, err
	}
	if s, err = ensureWorkStream(ctx, m.js, m.opts); err != nil {
		return nil, err
	}
	m.log.WarnContext(ctx, "sagas: the work stream was lost (the server restarted?): made it again; moving every unfinished instance on", "stream", m.opts.Stream)
	m.stream = s
	w.stopConsuming()
	if err := m.consume(ctx, w); err != nil {
		return nil, err // the stream is there now: made again on the next check
	}
	if err := m.resumeAll(ctx); err != nil && ctx.Err() == nil {
		m.log.WarnContext(ctx, "sagas: could not move on every unfinished instance; each moves on its next message", "error", err)
	}
	t := s.CachedInfo().Created
	return &t, nil
}

// startLease is the lease owner of an instance as Start creates it: its
// first run is counted, and it is the start message's to run.
const startLease = "start"

// revisionHeader carries the revision of the instance a start message
// holds.
const revisionHeader = "Lexigram-Saga-Revision"

// kick publishes the message that moves an instance on, and waits for
// the server to store it.
func kick(ctx context.Context, js jetstream.JetStream, prefix string, in Instance, why string) error {
	msg, err := workMessage(prefix, in, why)
	if err != nil {
		return err
	}
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		return platform.Errorf(platform.CodeStoreUnavailable, "saga %s (%s): send it on: %w (it is stored; it moves on when a manager starts)", in.ID, in.Type, err)
	}
	return nil
}

// workMessage is the message that moves an instance on. Its ID names the
// instance's revision, so kicks of one state are stored once. The start
// message holds the instance as created, so that the manager taking it
// need not read it back.
func workMessage(prefix string, in Instance, why string) (*nats.Msg, error) {
	msg := nats.NewMsg(prefix + ".run." + in.Type + "." + in.ID)
	msg.Header.Set(jetstream.MsgIDHeader, in.ID+"."+why+"."+uitoa(in.Revision))
	if why == "start" && in.Owner == startLease {
		data, err := json.Marshal(in)
		if err != nil {
			return nil, platform.Errorf(platform.CodeInvalidArgument, "saga %s (%s): encode its start message: %w", in.ID, in.Type, err)
		}
		msg.Data = data
		msg.Header.Set(revisionHeader, uitoa(in.Revision))
	}
	return msg, nil
}

// sendStart publishes a new instance's start message without waiting for
// the server: Start returns once the instance is stored, which is what
// makes it durable. A message the server refuses, or does not acknowledge
// within AckWait, is sent again, waiting (its ID makes a second copy of
// one that was stored a duplicate). If that fails too, or the process
// dies first, the start sweep (sweep.go) sends the instance on. Not
// waiting measured 0.04 of saga.steps' ratio (1.49 against 1.53, medians
// of six alternating runs).
func (m *Manager) sendStart(ctx context.Context, in Instance) error {
	if m.mover != nil {
		return m.mover(ctx, in, "start")
	}
	msg, err := workMessage(m.opts.SubjectPrefix, in, "start")
	if err != nil {
		return err
	}
	ack, err := m.js.PublishMsgAsync(msg)
	if err != nil {
		return m.kick(ctx, in, "start") // too many in flight, say: wait for this one
	}
	go func() {
		timeout := time.NewTimer(m.opts.AckWait)
		defer timeout.Stop()
		select {
		case <-ack.Ok():
			return
		case err = <-ack.Err():
		case <-timeout.C:
			err = errors.New("no acknowledgement within AckWait")
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.opts.AckWait)
		defer cancel()
		if kerr := m.kick(ctx, in, "start"); kerr != nil {
			m.log.WarnContext(ctx, "sagas: the start message was not stored; the start sweep sends the instance on within two AckWaits", "id", in.ID, "type", in.Type, "first", err, "again", kerr)
		}
	}()
	return nil
}

// workers are Concurrency goroutines taking work messages from one
// dispatch, so one instance's messages are handled one at a time in this
// process.
type workers struct {
	nc        *nats.Conn
	consumes  []jetstream.ConsumeContext // of timer fires
	work      []jetstream.ConsumeContext // of the work stream, one per type
	listeners []*durable.Handler
	queue     *dispatch
	wg        sync.WaitGroup
}

// consume starts the workers (the first time) and the work stream's
// consumers.
func (m *Manager) consume(ctx context.Context, w *workers) error {
	if w.queue == nil {
		w.queue = newDispatch(2 * m.opts.Concurrency)
		for range m.opts.Concurrency {
			w.wg.Go(func() {
				for {
					msg, id, ok := w.queue.take()
					if !ok {
						return
					}
					m.handle(ctx, msg, id)
					w.queue.release(id)
				}
			})
		}
	}
	for _, k := range m.registered() {
		name := k.name
		cons, err := m.stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
			Durable:       "saga-" + name,
			FilterSubject: m.opts.SubjectPrefix + ".run." + name + ".>",
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       m.opts.AckWait,
			MaxDeliver:    -1, // the instance's own attempts bound its retries
			MaxAckPending: 10_000,
		})
		if err != nil {
			return platform.Errorf(platform.CodeStoreUnavailable, "sagas: the consumer of saga type %q: %w", name, err)
		}
		cc, err := cons.Consume(w.queue.push, jetstream.PullMaxMessages(2*m.opts.Concurrency), jetstream.ConsumeErrHandler(func(jetstream.ConsumeContext, error) {
			m.checkWork() // missed heartbeats, no responders: perhaps the stream is gone
		}))
		if err != nil {
			return platform.Errorf(platform.CodeStoreUnavailable, "sagas: consume saga type %q: %w", name, err)
		}
		w.work = append(w.work, cc)
	}
	return nil
}

// stopConsuming stops pulling from the work stream and waits until
// every message pulled is handed to a worker.
func (w *workers) stopConsuming() {
	for _, cc := range w.work {
		w.end(cc)
	}
	w.work = nil
}

// end drains cc and waits for it, or, with the connection down, stops it:
// a drain would wait 10 s for the server's answer to its flush.
func (w *workers) end(cc jetstream.ConsumeContext) {
	if w.nc.IsConnected() {
		cc.Drain()
	} else {
		cc.Stop()
	}
	<-cc.Closed()
}

// stop stops pulling and waits for the instances being advanced.
func (w *workers) stop() {
	for _, h := range w.listeners {
		_ = h.Stop(context.Background())
	}
	w.stopConsuming()
	for _, cc := range w.consumes {
		w.end(cc)
	}
	if w.queue != nil {
		w.queue.close()
	}
	w.wg.Wait()
}

// handle moves the instance a message names on, until it rests.
func (m *Manager) handle(ctx context.Context, msg jetstream.Msg, id string) {
	stop := heartbeat(msg, m.opts.AckWait/2)
	defer stop()
	// Steps run to their end even when the manager is stopping: ctx
	// ending stops the pulling, not a step half done.
	next := m.advance(context.WithoutCancel(ctx), id, startOf(msg))
	switch {
	case next.retryIn > 0:
		_ = msg.NakWithDelay(next.retryIn)
	default:
		_ = msg.Ack()
	}
}

// startOf returns the instance a start message holds, on its first
// delivery: the run it counted is this delivery's. A start message
// delivered again has lost its lease (its first taker died or gave up),
// so the instance is read and its run counted again.
func startOf(msg jetstream.Msg) *Instance {
	if len(msg.Data()) == 0 {
		return nil
	}
	md, err := msg.Metadata()
	if err != nil || md.NumDelivered != 1 {
		return nil
	}
	rev, err := strconv.ParseUint(msg.Headers().Get(revisionHeader), 10, 64)
	if err != nil {
		return nil
	}
	var in Instance
	if json.Unmarshal(msg.Data(), &in) != nil || in.Owner != startLease {
		return nil
	}
	in.Revision = rev
	return &in
}

// heartbeat tells the server the message is still being worked on, every
// interval, until stop is called.
func heartbeat(msg jetstream.Msg, every time.Duration) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				_ = msg.InProgress()
			case <-done:
				return
			}
		}
	}()
	return func() { close(done) }
}
