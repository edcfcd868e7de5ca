package platform_test

import (
	"context"
	"fmt"

	"github.com/lexigram/events/platform"
)

// The versions of the worked example of docs/schema.md.
type (
	// OrderPlacedV1 is what release 1 stored.
	OrderPlacedV1 struct {
		Customer string
		Amount   int
	}
	// OrderPlacedV2 renamed Amount to Total.
	OrderPlacedV2 struct {
		Customer string
		Total    int
	}
	// OrderPlacedV3 is v2 split in two: the order, and its price in an
	// event of its own.
	OrderPlacedV3 struct{ Customer string }
	OrderPriced   struct{ Total int }
	// GiftWrapped is retired: nobody reads it any more.
	GiftWrapped struct{ Paper string }
)

// Events stored by an earlier release read as the current versions: v1
// upcast to v2 (a field renamed), v2 split into two events, a retired
// event read as nothing but still counting in the aggregate's version.
func Example_schemaEvolution() {
	ctx := context.Background()
	reg := platform.NewRegistry()
	store := platform.NewMemoryEventStore(platform.MemoryOptions{Registry: reg})
	order := platform.StreamID{Type: "order", ID: "o-1"}

	// Release 1 knew only the first versions, and stored two events.
	platform.MustRegister[OrderPlacedV1](reg, "order.placed", 1)
	platform.MustRegister[GiftWrapped](reg, "order.gift-wrapped", 1)
	_, err := store.Append(ctx, order, platform.NoStream(), []platform.Envelope{
		{Event: OrderPlacedV1{Customer: "ada", Amount: 12}},
		{Event: GiftWrapped{Paper: "red"}},
	})
	if err != nil {
		panic(err)
	}

	// Release 3 registers every version, each with a Go type of its own,
	// and an upcaster out of every version but the current one. (One
	// registry stands for both releases here; a process registers all of
	// it at start-up, then calls Check.)
	platform.MustRegister[OrderPlacedV2](reg, "order.placed", 2)
	platform.MustRegister[OrderPlacedV3](reg, "order.placed", 3)
	platform.MustRegister[OrderPriced](reg, "order.priced", 1)
	platform.MustUpcast(reg, func(e OrderPlacedV1) OrderPlacedV2 {
		return OrderPlacedV2{Customer: e.Customer, Total: e.Amount}
	})
	platform.MustUpcastMany(reg, func(e OrderPlacedV2) []any {
		return []any{OrderPlacedV3{Customer: e.Customer}, OrderPriced{Total: e.Total}}
	})
	platform.MustRetire[GiftWrapped](reg)
	if err := reg.Check(); err != nil {
		panic(err)
	}

	for e, err := range store.Read(ctx, order, platform.Revision{}) {
		if err != nil {
			panic(err)
		}
		if e.Retired() {
			fmt.Printf("version %d: retired (stored as %s v%d)\n", e.Version, e.Origin.Type, e.Origin.SchemaVersion)
			continue
		}
		fmt.Printf("version %d: %s v%d %+v (stored as %s v%d, part %d of %d)\n", e.Version, e.Type, e.SchemaVersion, e.Event,
			e.Origin.Type, e.Origin.SchemaVersion, e.Origin.Part, e.Origin.Parts)
	}
	// Appends write the current version only.
	_, err = store.Append(ctx, order, platform.Exact(2), []platform.Envelope{{Event: OrderPlacedV2{}}})
	fmt.Println(platform.CodeOf(err))
	// Output:
	// version 1: order.placed v3 {Customer:ada} (stored as order.placed v1, part 1 of 2)
	// version 1: order.priced v1 {Total:12} (stored as order.placed v1, part 2 of 2)
	// version 2: retired (stored as order.gift-wrapped v1)
	// LXE-001
}
