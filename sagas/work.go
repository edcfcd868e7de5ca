package sagas

import (
	"context"
	"errors"
	"hash/fnv"
	"strings"
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
// manager that registered it.
func ensureWorkStream(ctx context.Context, js jetstream.JetStream, o Options) (jetstream.Stream, error) {
	want := jetstream.StreamConfig{
		Name:       o.Stream,
		Subjects:   []string{o.SubjectPrefix + ".>"},
		Retention:  jetstream.WorkQueuePolicy,
		Replicas:   o.Replicas,
		Storage:    o.Storage,
		Duplicates: 2 * time.Minute,
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
	return kick(ctx, m.js, m.opts.SubjectPrefix, in, why)
}

// kick publishes the message that moves an instance on. The message ID
// names the instance's revision, so kicks of one state are stored once.
func kick(ctx context.Context, js jetstream.JetStream, prefix string, in Instance, why string) error {
	msg := nats.NewMsg(prefix + ".run." + in.Type + "." + in.ID)
	msg.Header.Set(jetstream.MsgIDHeader, in.ID+"."+why+"."+uitoa(in.Revision))
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		return platform.Errorf(platform.CodeStoreUnavailable, "saga %s (%s): send it on: %w (it is stored; it moves on when a manager starts)", in.ID, in.Type, err)
	}
	return nil
}

// workers spread instances over Concurrency goroutines by ID, so one
// instance's messages are handled one at a time in this process.
type workers struct {
	consumes  []jetstream.ConsumeContext
	listeners []*durable.Handler
	queues    []chan jetstream.Msg
	wg        sync.WaitGroup
}

func (m *Manager) consume(ctx context.Context, w *workers) error {
	w.queues = make([]chan jetstream.Msg, m.opts.Concurrency)
	for i := range w.queues {
		q := make(chan jetstream.Msg, 8)
		w.queues[i] = q
		w.wg.Go(func() {
			for msg := range q {
				m.handle(ctx, msg)
			}
		})
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
		cc, err := cons.Consume(func(msg jetstream.Msg) {
			h := fnv.New32a()
			_, _ = h.Write([]byte(msg.Subject()))
			w.queues[h.Sum32()%uint32(len(w.queues))] <- msg
		}, jetstream.PullMaxMessages(2*m.opts.Concurrency))
		if err != nil {
			return platform.Errorf(platform.CodeStoreUnavailable, "sagas: consume saga type %q: %w", name, err)
		}
		w.consumes = append(w.consumes, cc)
	}
	return nil
}

// stop stops pulling and waits for the instances being advanced.
func (w *workers) stop() {
	for _, h := range w.listeners {
		_ = h.Stop(context.Background())
	}
	for _, cc := range w.consumes {
		cc.Drain()
		<-cc.Closed()
	}
	for _, q := range w.queues {
		close(q)
	}
	w.wg.Wait()
}

// handle moves the instance a message names on, until it rests.
func (m *Manager) handle(ctx context.Context, msg jetstream.Msg) {
	id := msg.Subject()[strings.LastIndexByte(msg.Subject(), '.')+1:]
	stop := heartbeat(msg, m.opts.AckWait/2)
	defer stop()
	// Steps run to their end even when the manager is stopping: ctx
	// ending stops the pulling, not a step half done.
	next := m.advance(context.WithoutCancel(ctx), id)
	switch {
	case next.retryIn > 0:
		_ = msg.NakWithDelay(next.retryIn)
	default:
		_ = msg.Ack()
	}
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
