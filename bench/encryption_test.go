package bench

import (
	"bytes"
	"testing"
)

// The codec.encrypted figures run, in --quick too, and their loads check
// that the personal fields came back and that the events were sealed.
func TestRunEncrypted(t *testing.T) {
	var out bytes.Buffer
	figs, err := Run(t.Context(), Options{Quick: true, Filter: "codec.encrypted", Out: &out})
	t.Log(out.String())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"codec.encrypted.append": ">= 0.85", "codec.encrypted.load": "<= 1.30", "codec.encrypted.load/whole": "<= 1.30"}
	if len(figs) != len(want) {
		t.Fatalf("want %d figures, got %+v", len(want), figs)
	}
	for _, f := range figs {
		if target, ok := want[f.Name]; !ok || f.Target != target || f.Ours <= 0 || f.Raw <= 0 || f.Ratio <= 0 {
			t.Errorf("bad figure %+v", f)
		}
	}
}
