package platform_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/lexigram/events/platform"
)

type (
	regA struct {
		Name string
		N    int
	}
	regB struct{ X string }
	regC struct{ Y []int }
)

// mustFail fails unless err matches want and its message contains every
// one of parts.
func mustFail(t *testing.T, what string, err, want error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want %v", what, want)
	}
	if !errors.Is(err, want) {
		t.Fatalf("%s: %q (code %q) does not match %v", what, err, platform.CodeOf(err), want)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("%s: %q does not mention %q", what, err, p)
		}
	}
}

// catch runs f and returns what it panicked with, or nil.
func catch(f func()) (p any) {
	defer func() { p = recover() }()
	f()
	return nil
}

func TestRegisterAndLookup(t *testing.T) {
	reg := platform.NewRegistry()
	if err := platform.Register[regA](reg, "test.a", 2); err != nil {
		t.Fatal(err)
	}
	et, ok := reg.Lookup("test.a")
	if !ok || et.Name != "test.a" || et.SchemaVersion != 2 {
		t.Fatalf("Lookup(test.a) = %+v, %v", et, ok)
	}
	if _, ok := reg.Lookup("test.b"); ok {
		t.Fatal("Lookup of an unregistered name succeeded")
	}
	got, err := reg.TypeOf(regA{})
	if err != nil || got != et {
		t.Fatalf("TypeOf(regA{}) = %+v, %v; want %+v", got, err, et)
	}
	// A registry is its own: another one knows nothing of test.a.
	if _, ok := platform.NewRegistry().Lookup("test.a"); ok {
		t.Fatal("a new registry knows a type registered in another")
	}
}

func TestRegisterDuplicateName(t *testing.T) {
	reg := platform.NewRegistry()
	platform.MustRegister[regA](reg, "test.a", 1)
	err := platform.Register[regB](reg, "test.a", 1)
	mustFail(t, "Register of a second type under a taken name", err, platform.ErrInvalidArgument, "test.a", "regA", "regB")
	if _, err := reg.TypeOf(regB{}); !errors.Is(err, platform.ErrUnknownEventType) {
		t.Fatalf("the failed registration registered regB: TypeOf = %v", err)
	}
	if et, _ := reg.Lookup("test.a"); et.SchemaVersion != 1 {
		t.Fatal("the failed registration changed test.a")
	}
}

func TestRegisterDuplicateType(t *testing.T) {
	reg := platform.NewRegistry()
	platform.MustRegister[regA](reg, "test.a", 1)
	err := platform.Register[regA](reg, "test.other", 1)
	mustFail(t, "Register of a type a second time", err, platform.ErrInvalidArgument, "test.a", "regA")
	if _, ok := reg.Lookup("test.other"); ok {
		t.Fatal("the failed registration registered test.other")
	}
	if p := catch(func() { platform.MustRegister[regA](reg, "test.again", 1) }); p == nil {
		t.Fatal("MustRegister of a registered type did not panic")
	}
}

func TestRegisterPointer(t *testing.T) {
	reg := platform.NewRegistry()
	err := platform.Register[*regA](reg, "test.a", 1)
	mustFail(t, "Register of a pointer type", err, platform.ErrInvalidArgument, "Register[platform_test.regA]", "*platform_test.regA")
	if _, ok := reg.Lookup("test.a"); ok {
		t.Fatal("the pointer type was registered")
	}
}

// Register of an interface type must return an error like a pointer type
// does, not panic: its message calls t.Elem(), which panics for interfaces.
func TestRegisterInterfaceType(t *testing.T) {
	reg := platform.NewRegistry()
	for name, register := range map[string]func() error{
		"any":          func() error { return platform.Register[any](reg, "test.any", 1) },
		"error":        func() error { return platform.Register[error](reg, "test.error", 1) },
		"fmt.Stringer": func() error { return platform.Register[fmt.Stringer](reg, "test.stringer", 1) },
	} {
		var err error
		if p := catch(func() { err = register() }); p != nil {
			t.Errorf("Register[%s] panicked: %v", name, p)
			continue
		}
		if !errors.Is(err, platform.ErrInvalidArgument) {
			t.Errorf("Register[%s] = %v, want ErrInvalidArgument", name, err)
		}
	}
}

func TestRegisterBadNames(t *testing.T) {
	reg := platform.NewRegistry()
	for _, name := range []string{"", "a b", "ä", "x\n", "a*", ">", "a,b", "a\x00", strings.Repeat("n", platform.MaxTypeNameLen+1)} {
		err := platform.Register[regA](reg, name, 1)
		mustFail(t, fmt.Sprintf("Register(%q)", name), err, platform.ErrInvalidArgument)
	}
	if _, err := reg.TypeOf(regA{}); err == nil {
		t.Fatal("a failed registration registered the type")
	}
	// Every kind of allowed byte, and the longest name.
	for i, name := range []string{"order.item-added", "a:b/c_D-1.2", strings.Repeat("n", platform.MaxTypeNameLen)} {
		var err error
		switch i {
		case 0:
			err = platform.Register[regA](reg, name, 1)
		case 1:
			err = platform.Register[regB](reg, name, 1)
		case 2:
			err = platform.Register[regC](reg, name, 1)
		}
		if err != nil {
			t.Fatalf("Register(%q): %v", name, err)
		}
	}
}

func TestRegisterSchemaVersion(t *testing.T) {
	reg := platform.NewRegistry()
	for _, v := range []int{0, -1} {
		err := platform.Register[regA](reg, "test.a", v)
		mustFail(t, fmt.Sprintf("Register with schema version %d", v), err, platform.ErrInvalidArgument, fmt.Sprint(v))
	}
	if _, ok := reg.Lookup("test.a"); ok {
		t.Fatal("a bad schema version was registered")
	}
}

func TestTypeOf(t *testing.T) {
	reg := platform.NewRegistry()
	platform.MustRegister[regA](reg, "test.a", 1)

	_, err := reg.TypeOf(&regA{})
	// The pointer error names the value type to raise and its name.
	mustFail(t, "TypeOf(&regA{})", err, platform.ErrInvalidArgument, "pointer", "platform_test.regA", "test.a")
	if errors.Is(err, platform.ErrUnknownEventType) {
		t.Fatalf("TypeOf(&regA{}) says the type is unknown: %v", err)
	}

	_, err = reg.TypeOf(regB{})
	mustFail(t, "TypeOf(regB{})", err, platform.ErrUnknownEventType, "platform_test.regB", "Register")
	_, err = reg.TypeOf(&regB{})
	mustFail(t, "TypeOf(&regB{})", err, platform.ErrUnknownEventType, "regB")

	var nilErr error
	if p := catch(func() { _, nilErr = reg.TypeOf(nil) }); p != nil || nilErr == nil {
		t.Fatalf("TypeOf(nil) = %v, panic %v; want an error", nilErr, p)
	}
}

func TestDecode(t *testing.T) {
	reg := platform.NewRegistry()
	platform.MustRegister[regA](reg, "test.a", 1)
	for _, c := range []platform.Codec{platform.Msgpack, platform.JSON} {
		data, err := c.Marshal(regA{Name: "x", N: 7})
		if err != nil {
			t.Fatal(err)
		}
		v, err := reg.Decode(c, "test.a", data)
		if err != nil {
			t.Fatalf("%s: Decode: %v", c.Name(), err)
		}
		if got, ok := v.(regA); !ok || got != (regA{Name: "x", N: 7}) {
			t.Fatalf("%s: Decode = %#v, want the value regA{x 7}", c.Name(), v)
		}

		_, err = reg.Decode(c, "test.unknown", data)
		mustFail(t, c.Name()+": Decode of an unknown name", err, platform.ErrUnknownEventType, "test.unknown")

		corrupt := map[string][]byte{"msgpack": {0xc1}, "json": []byte(`{"Name": `)}[c.Name()]
		_, err = reg.Decode(c, "test.a", corrupt)
		mustFail(t, c.Name()+": Decode of corrupt data", err, platform.ErrCorruptEvent, "test.a", c.Name())
		if errors.Unwrap(err) == nil {
			t.Fatalf("%s: the corrupt-data error %q lost the codec's error", c.Name(), err)
		}

		wrongShape, _ := c.Marshal(map[string]any{"N": "not a number"})
		_, err = reg.Decode(c, "test.a", wrongShape)
		mustFail(t, c.Name()+": Decode of data of another shape", err, platform.ErrCorruptEvent, "test.a")
	}
}

func TestCodecByName(t *testing.T) {
	for name, want := range map[string]platform.Codec{"": platform.Msgpack, "msgpack": platform.Msgpack, "json": platform.JSON} {
		if c, err := platform.CodecByName(name); err != nil || c != want {
			t.Fatalf("CodecByName(%q) = %v, %v", name, c, err)
		}
	}
	_, err := platform.CodecByName("gob")
	mustFail(t, "CodecByName(gob)", err, platform.ErrInvalidArgument, "gob")
}

// Registrations while other goroutines look types up: the race detector
// checks the lock-free reads.
func TestRegistryConcurrentUse(t *testing.T) {
	reg := platform.NewRegistry()
	platform.MustRegister[regA](reg, "test.a", 1)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	wg.Go(func() {
		if err := platform.Register[regB](reg, "test.b", 1); err != nil {
			errs <- err
		}
		if err := platform.Register[regC](reg, "test.c", 1); err != nil {
			errs <- err
		}
	})
	for range 4 {
		wg.Go(func() {
			for range 1000 {
				if _, err := reg.TypeOf(regA{}); err != nil {
					errs <- err
					return
				}
				reg.Lookup("test.b")
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, name := range []string{"test.a", "test.b", "test.c"} {
		if _, ok := reg.Lookup(name); !ok {
			t.Fatalf("%s is not registered after the concurrent registrations", name)
		}
	}
}
