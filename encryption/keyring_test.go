package encryption_test

import (
	"crypto/rand"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/lexigram/events/encryption"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// TestWrongMasterKey: a key ring opened with other key material under the
// same master key ID, or without the master key that wrapped the data
// keys, fails at start with an error naming the key and the fix.
func TestWrongMasterKey(t *testing.T) {
	e := newEnv(t)
	appendOne(t, e.store, ada, stored[0].event)

	for _, c := range []struct {
		name  string
		keys  encryption.KeyProvider
		wants []string
	}{
		{"other key material", masterKey(t, "m1"), []string{`master key "m1" does not open its key check`, "restore the original key"}},
		{"key lost", masterKey(t, "m2"), []string{`wrapped by master key "m1", which the key provider does not hold`, `add "m1" back`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := encryption.Open(t.Context(), e.js, c.keys, encryption.Options{Registry: platform.NewRegistry()})
			if !errors.Is(err, platform.ErrConfigConflict) {
				t.Fatalf("Open: %v, want LXE-011", err)
			}
			for _, w := range c.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Open: %v\ndoes not say %q", err, w)
				}
			}
		})
	}
}

// TestRingsFromFileAndEnvironment: both providers read the same key and
// open the same bucket; malformed input is refused with the fix.
func TestRingsFromFileAndEnvironment(t *testing.T) {
	key := make([]byte, 32)
	rand.Read(key)
	line := "m1:" + b64(key)
	path := t.TempDir() + "/master.keys"
	writeFile(t, path, "# master keys, current first\n"+line+"\n")
	fromFile, err := encryption.FileKeys(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("TEST_LEXIGRAM_KEYS", line)
	fromEnv, err := encryption.EnvKeys("TEST_LEXIGRAM_KEYS")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	for _, p := range []encryption.KeyProvider{fromFile, fromEnv} {
		// newEnv's ring made the key check with another "m1": both must fail.
		if _, err := encryption.Open(t.Context(), e.js, p, encryption.Options{Registry: platform.NewRegistry()}); !errors.Is(err, platform.ErrConfigConflict) {
			t.Fatalf("Open with another m1: %v", err)
		}
	}
	wrapped, err := fromFile.Wrap(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := fromEnv.Unwrap(t.Context(), "m1", wrapped); err != nil || string(got) != string(key) {
		t.Fatalf("the environment's key does not unwrap what the file's wrapped: %v", err)
	}
	for _, bad := range []string{"m1", "m1:not-base64!", "m1:" + b64(key[:16]), "bad id:" + b64(key)} {
		t.Setenv("TEST_LEXIGRAM_KEYS", bad)
		if _, err := encryption.EnvKeys("TEST_LEXIGRAM_KEYS"); !errors.Is(err, platform.ErrInvalidArgument) {
			t.Errorf("EnvKeys(%q): %v, want LXE-001", bad, err)
		}
	}
}

// TestConcurrentFirstAppends: key rings in several "processes" append the
// first events of one aggregate at once; they agree on one data key, and
// every ring reads every event.
func TestConcurrentFirstAppends(t *testing.T) {
	e := newEnv(t)
	const n = 8
	stores := make([]*lxjs.EventStore, n)
	for i := range stores {
		reg := newRegistry(t)
		e.open(t, reg, nil)
		st, err := lxjs.New(t.Context(), e.js, lxjs.Options{Registry: reg})
		if err != nil {
			t.Fatal(err)
		}
		stores[i] = st
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i, st := range stores {
		wg.Go(func() {
			_, err := st.Append(t.Context(), ada, platform.Any(), []platform.Envelope{{Event: customerRegistered{Name: "Ada", Age: i}}})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	kv, err := e.js.KeyValue(t.Context(), encryption.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.ListKeysFiltered(t.Context(), "data.>")
	if err != nil {
		t.Fatal(err)
	}
	var data []string
	for k := range keys.Keys() {
		data = append(data, k)
	}
	if len(data) != 1 {
		t.Fatalf("the bucket holds data keys %v, want one", data)
	}
	for i, st := range stores {
		got := readStream(t, st, ada)
		ages := map[int]bool{}
		for _, ev := range got {
			ages[ev.Event.(customerRegistered).Age] = true
		}
		if len(got) != n || len(ages) != n {
			t.Fatalf("store %d reads %d events (%d distinct), want %d", i, len(got), len(ages), n)
		}
	}
}
