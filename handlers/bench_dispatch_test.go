package handlers_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/embedded"
	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/handlers"
)

// BenchmarkDispatchInProcess is a command without an idempotency key
// through the default middleware to a no-op handler in the same process:
// what every command pays. With the Idempotency middleware in the
// pipeline, and in a process that has set a key in some context, it must
// pay next to nothing more.
func BenchmarkDispatchInProcess(b *testing.B) {
	for _, c := range []struct {
		name        string
		idempotency bool
		contextKeys bool
	}{{"default", false, false}, {"idempotency", true, false}, {"idempotency-after-a-context-key", true, true}} {
		b.Run(c.name, func(b *testing.B) {
			o := handlers.Options{Registry: reg, Logger: quiet()}
			if c.idempotency {
				mw := handlers.DefaultMiddleware(o)
				// No bucket: a command without a key never reaches it, and
				// no server runs beside the measure.
				o.Middleware = append([]handlers.Middleware{mw[0], handlers.Idempotency(nil, handlers.IdempotencyOptions{})}, mw[1:]...)
			}
			handlers.ForgetContextKeys()
			if c.contextKeys {
				_ = handlers.WithIdempotencyKey(context.Background(), "k")
			}
			bus := handlers.NewCommandBus(o)
			must(b, handlers.HandleCommand(bus, func(context.Context, Fail) error { return nil }))
			var cmd any = Fail{What: "ok"}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bus.Dispatch(ctx, cmd); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	handlers.ForgetContextKeys()
}

// BenchmarkDispatchIdempotent is a command with a key, in memory storage:
// a first dispatch (look, claim, look again, run, remember) and a repeat
// (look, decode).
func BenchmarkDispatchIdempotent(b *testing.B) {
	kv := benchBucket(b)
	o := handlers.Options{Registry: reg, Logger: quiet()}
	mw := handlers.DefaultMiddleware(o)
	o.Middleware = append([]handlers.Middleware{mw[0], handlers.Idempotency(kv, handlers.IdempotencyOptions{})}, mw[1:]...)
	bus := handlers.NewCommandBus(o)
	must(b, handlers.HandleCommand(bus, func(context.Context, Charge) error { return nil }))
	ctx := context.Background()
	i := 0 // keys stay new across the runs of "first"
	b.Run("first", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			i++
			if _, err := bus.Dispatch(ctx, Charge{Account: "ada", Key: "first-" + strconv.Itoa(i)}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("repeat", func(b *testing.B) {
		var cmd any = Charge{Account: "ada", Key: "repeat"}
		if _, err := bus.Dispatch(ctx, cmd); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := bus.Dispatch(ctx, cmd); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDispatchRemote is a command without a key sent by a bus on one
// connection to a no-op handler served on another: the request's round
// trip.
func BenchmarkDispatchRemote(b *testing.B) {
	srv := embeddedtest.Server(b, func(o *embedded.Options) { o.Logger = quiet() })
	served := handlers.NewCommandBus(handlers.Options{Registry: reg, Logger: quiet(), Remote: benchRemote(b, embeddedtest.Conn(b, srv))})
	must(b, handlers.HandleCommand(served, func(context.Context, Fail) error { return nil }))
	bus := handlers.NewCommandBus(handlers.Options{Registry: reg, Logger: quiet(), Remote: benchRemote(b, embeddedtest.Conn(b, srv))})
	var cmd any = Fail{What: "ok"}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bus.Dispatch(ctx, cmd); err != nil {
			b.Fatal(err)
		}
	}
}

func benchRemote(b *testing.B, nc *nats.Conn) *handlers.Remote {
	r, err := handlers.NewRemote(nc, handlers.RemoteOptions{Prefix: "b", Logger: quiet()})
	must(b, err)
	b.Cleanup(func() { _ = r.Close() })
	return r
}

func benchBucket(b *testing.B) jetstream.KeyValue {
	srv := embeddedtest.Server(b, func(o *embedded.Options) { o.Logger = quiet() })
	js, err := jetstream.New(embeddedtest.Conn(b, srv))
	must(b, err)
	kv, err := handlers.OpenIdempotencyBucket(b.Context(), js, handlers.IdempotencyBucketOptions{Storage: jetstream.MemoryStorage})
	must(b, err)
	return kv
}
