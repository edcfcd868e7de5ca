package bench

import (
	"bytes"
	"testing"
)

// The codec.upcast figure runs, in --quick too, and its loads check what
// they load: v1 events that were not upcast to v3 fail the run.
func TestRunUpcast(t *testing.T) {
	var out bytes.Buffer
	figs, err := Run(t.Context(), Options{Quick: true, Filter: "codec.upcast", Out: &out})
	t.Log(out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(figs) != 1 || figs[0].Name != "codec.upcast" {
		t.Fatalf("want only codec.upcast, got %+v", figs)
	}
	f := figs[0]
	if f.Ours <= 0 || f.Raw <= 0 || f.Ratio <= 0 || f.Unit != "ms" || f.Target != "<= 1.30" {
		t.Fatalf("bad figure %+v", f)
	}
}
