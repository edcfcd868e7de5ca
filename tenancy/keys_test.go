package tenancy_test

import (
	"bytes"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/encryption"
	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/tenancy"
)

// TestShreddingStaysInItsTenant: the same data subject (customer 7) and
// the same aggregate ID in two tenants are sealed with two keys in two
// buckets; forgetting the subject in acme shreds acme's events only:
// they read "[forgotten]", globex's read plainly, also in a process that
// opens the tenants afresh (no key cached), and the SubjectForgotten
// event lands in acme's stream alone.
func TestShreddingStaysInItsTenant(t *testing.T) {
	js, err := jetstream.New(embeddedtest.Conn(t, embeddedtest.Server(t)))
	must(t, err)
	master, err := encryption.NewStaticKeys("m1", map[string][]byte{"m1": bytes.Repeat([]byte{7}, encryption.MasterKeySize)})
	must(t, err)
	opts := tenancy.Options{Logger: embeddedtest.Logger(t), Keys: &tenancy.Keys{Provider: master, Register: register}}
	ts := tenancy.New(js, opts)
	t.Cleanup(func() { _ = ts.Close() })
	ctx := t.Context()
	id := platform.StreamID{Type: "customer", ID: "7"}
	emails := map[string]string{"acme": "ada@acme.example", "globex": "ada@globex.example"}
	for tenant, email := range emails {
		tn, err := ts.Open(ctx, tenant)
		must(t, err)
		_, err = tn.Store.Append(ctx, id, platform.NoStream(), []platform.Envelope{{Event: signedUp{Customer: "7", Email: email}}})
		must(t, err)
	}
	acme, err := ts.Open(ctx, "acme")
	must(t, err)
	globex, err := ts.Open(ctx, "globex")
	must(t, err)
	if acme.Keys.Bucket() == globex.Keys.Bucket() || acme.Registry == globex.Registry {
		t.Fatalf("the tenants share key bucket %s or a registry", acme.Keys.Bucket())
	}
	raw, err := js.Stream(ctx, ts.StreamOf("acme"))
	must(t, err)
	msg, err := raw.GetMsg(ctx, 1)
	must(t, err)
	if bytes.Contains(msg.Data, []byte(emails["acme"])) || msg.Header.Get("Lx-Key") == "" {
		t.Fatalf("acme's stored event is not sealed: %q, headers %v", msg.Data, msg.Header)
	}

	must(t, acme.Keys.Forget(ctx, "7"))

	read := func(ts *tenancy.Tenants, tenant string) platform.Envelope {
		t.Helper()
		tn, err := ts.Open(ctx, tenant)
		must(t, err)
		got := events(t, tn.Store.Read(ctx, id, platform.Revision{}))
		if len(got) != 1 {
			t.Fatalf("tenant %s's customer/7: %d events, want 1", tenant, len(got))
		}
		return got[0]
	}
	fresh := tenancy.New(js, opts)
	t.Cleanup(func() { _ = fresh.Close() })
	for name, from := range map[string]*tenancy.Tenants{"this process": ts, "a fresh process": fresh} {
		if e := read(from, "acme"); !e.Shredded || e.Event.(signedUp).Email != encryption.Placeholder || e.Event.(signedUp).Customer != "7" {
			t.Fatalf("%s: acme's event after forgetting customer 7: %+v (shredded %v), want the e-mail %q", name, e.Event, e.Shredded, encryption.Placeholder)
		}
		if e := read(from, "globex"); e.Shredded || e.Event.(signedUp).Email != emails["globex"] {
			t.Fatalf("%s: globex's event after acme forgot customer 7: %+v (shredded %v), want it plain", name, e.Event, e.Shredded)
		}
	}
	if got := events(t, acme.Store.ReadAll(ctx, 0)); len(got) != 2 || got[1].Type != encryption.ForgottenEventType {
		t.Fatalf("acme's stream after Forget: %+v, want its event and %s", got, encryption.ForgottenEventType)
	}
	if got := events(t, globex.Store.ReadAll(ctx, 0)); len(got) != 1 {
		t.Fatalf("globex's stream after acme's Forget: %d events, want its one", len(got))
	}

	// A tenant's keys need the application's types in its registry.
	broken := tenancy.New(js, tenancy.Options{Logger: embeddedtest.Logger(t), Keys: &tenancy.Keys{Provider: master}})
	if _, err := broken.Open(ctx, "initech"); err == nil {
		t.Fatal("Keys without Register opened a tenant")
	}
}
