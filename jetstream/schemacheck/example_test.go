package schemacheck_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/embedded"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/jetstream/schemacheck"
	"github.com/lexigram/events/platform"
)

type (
	OrderPlacedV1 struct{ Amount int }
	OrderPlacedV2 struct{ Total int }
)

// The deploy gate in an application's CI: connect to the cluster the
// release will run against (here an embedded server the last release
// wrote v1 events to), then check the stream with the registry the new
// release fills. A failure fails the build.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "lexigram-schemacheck-example")
	defer os.RemoveAll(dir)
	srv, err := embedded.Start(ctx, embedded.Options{DontListen: true, DataDir: dir})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Shutdown(ctx)
	nc, err := srv.Connect()
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)

	// What the last release wrote.
	old := platform.NewRegistry()
	platform.MustRegister[OrderPlacedV1](old, "order.placed", 1)
	store, err := lxjs.New(ctx, js, lxjs.Options{Registry: old})
	if err != nil {
		log.Fatal(err)
	}
	for i := range 3 {
		id := platform.StreamID{Type: "order", ID: fmt.Sprint(i)}
		if _, err := store.Append(ctx, id, platform.NoStream(), []platform.Envelope{{Event: OrderPlacedV1{Amount: i}}}); err != nil {
			log.Fatal(err)
		}
	}

	// The new release: v2 renames Amount to Total.
	reg := platform.NewRegistry()
	platform.MustRegister[OrderPlacedV1](reg, "order.placed", 1)
	platform.MustRegister[OrderPlacedV2](reg, "order.placed", 2)
	platform.MustUpcast(reg, func(e OrderPlacedV1) OrderPlacedV2 { return OrderPlacedV2{Total: e.Amount} })

	rep, err := schemacheck.Check(ctx, js, reg, schemacheck.Options{Sample: 1000, Compat: schemacheck.CompatBackward})
	if err != nil {
		log.Fatal(err)
	}
	for _, t := range rep.Types {
		fmt.Printf("%s v%d (%s): %d events, %d checked, %d failed, reads as %s\n", t.Type, t.SchemaVersion, t.Codec, t.Count, t.Checked, t.Failures, t.ReadsAs)
	}
	for _, f := range rep.Failures {
		fmt.Println(f)
	}
	fmt.Println("clean:", rep.Clean())
	// Output:
	// order.placed v1 (msgpack): 3 events, 3 checked, 0 failed, reads as order.placed v2
	// clean: true
}
