package encryption_test

import (
	"fmt"
	"testing"

	"github.com/lexigram/events/encryption"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// BenchmarkRead reads a 1,000-event aggregate from the memory store,
// plain and sealed: the CPU cost of opening, without the network.
// (The figure with the network is codec.encrypted in lexigram bench.)
func BenchmarkRead(b *testing.B) {
	e := newEnvTB(b)
	for _, c := range []struct {
		name string
		mode encryption.Mode
		seal bool
	}{{"plain", 0, false}, {"fields", encryption.ModeFields, true}, {"whole", encryption.ModeWhole, true}} {
		reg := newRegistryTB(b)
		if c.seal {
			ring, err := encryption.Open(b.Context(), e.js, e.keys, encryption.Options{Registry: reg, Mode: c.mode})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = ring.Close() })
		}
		mem := platform.NewMemoryEventStore(platform.MemoryOptions{Registry: reg})
		evs := make([]platform.Envelope, 1000)
		for i := range evs {
			evs[i].Event = customerRegistered{Name: "Ada Lovelace", Email: "ada@example.com", Age: 36, Plan: "gold-plan"}
		}
		if _, err := mem.Append(b.Context(), ada, platform.NoStream(), evs); err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				n := 0
				for ev, err := range mem.Read(b.Context(), ada, platform.Revision{}) {
					if err != nil || ev.Event.(customerRegistered).Name != "Ada Lovelace" {
						b.Fatal(err, ev)
					}
					n++
				}
				if n != 1000 {
					b.Fatal(n)
				}
			}
		})
	}
}

// BenchmarkReadJetStream is BenchmarkRead on the JetStream store, the
// embedded server in this process.
func BenchmarkReadJetStream(b *testing.B) {
	e := newEnvTB(b)
	for i, c := range []struct {
		name string
		mode encryption.Mode
		seal bool
	}{{"plain", 0, false}, {"fields", encryption.ModeFields, true}, {"whole", encryption.ModeWhole, true}} {
		reg := newRegistryTB(b)
		if c.seal {
			ring, err := encryption.Open(b.Context(), e.js, e.keys, encryption.Options{Registry: reg, Mode: c.mode})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = ring.Close() })
		}
		st, err := lxjs.New(b.Context(), e.js, lxjs.Options{Registry: reg})
		if err != nil {
			b.Fatal(err)
		}
		stream := platform.StreamID{Type: "customer", ID: fmt.Sprint("c-", i)}
		evs := make([]platform.Envelope, 1000)
		for i := range evs {
			evs[i].Event = customerRegistered{Name: "Ada Lovelace", Email: "ada@example.com", Age: 36, Plan: "gold-plan"}
		}
		if _, err := st.Append(b.Context(), stream, platform.NoStream(), evs); err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				n := 0
				for ev, err := range st.Read(b.Context(), stream, platform.Revision{}) {
					if err != nil || ev.Event.(customerRegistered).Name != "Ada Lovelace" {
						b.Fatal(err, ev)
					}
					n++
				}
				if n != 1000 {
					b.Fatal(n)
				}
			}
		})
	}
}
