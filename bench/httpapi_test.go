package bench

import (
	"bytes"
	"testing"
)

// The node.http.command figure runs, in --quick too; every POST of both
// sides must answer 200, or the run fails.
func TestRunHTTPCommand(t *testing.T) {
	var out bytes.Buffer
	figs, err := Run(t.Context(), Options{Quick: true, Filter: "node.http.command", Out: &out})
	t.Log(out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(figs) != 1 || figs[0].Name != "node.http.command" {
		t.Fatalf("want only node.http.command, got %+v", figs)
	}
	if f := figs[0]; f.Ours <= 0 || f.Raw <= 0 || f.Ratio <= 0 || f.Unit != "commands/s" || f.Target != ">= 0.80" {
		t.Fatalf("bad figure %+v", f)
	}
}
