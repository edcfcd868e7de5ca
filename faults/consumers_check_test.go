//go:build faults

package faults_test

import (
	"strings"
	"testing"

	"github.com/lexigram/events/faults"
)

// TestCheckEffectsClean: every event once, some called twice (at least
// once delivery), is clean, and the extra calls are redeliveries.
func TestCheckEffectsClean(t *testing.T) {
	res := faults.CheckEffects(faults.Effects{
		Want:    map[string]string{"a": "value a", "b": "value b", "c": "value c"},
		Present: map[string]int{"a": 1, "b": 1, "c": 1},
		Calls:   map[string]int{"a": 1, "b": 3, "c": 2},
	})
	if !res.Clean() {
		t.Fatalf("not clean: %q", res.Problems)
	}
	if res.Events != 3 || res.Applied != 6 || res.Redelivered != 3 {
		t.Fatalf("events %d, applied %d, redelivered %d; want 3, 6, 3", res.Events, res.Applied, res.Redelivered)
	}
}

// TestCheckEffectsFindsProblems: an event without effect, one applied
// three times and one the stream does not hold are each found, and
// named.
func TestCheckEffectsFindsProblems(t *testing.T) {
	res := faults.CheckEffects(faults.Effects{
		Want:    map[string]string{"a": "value a at 1", "b": "value b at 2", "c": "value c at 3"},
		Present: map[string]int{"a": 1, "c": 3, "z": 1},
		Calls:   map[string]int{"a": 1, "c": 3, "z": 1},
	})
	if res.Clean() {
		t.Fatal("clean, with a skip, a triple effect and a phantom")
	}
	if res.Skipped != 1 || res.Duplicated != 2 || res.Phantoms != 1 {
		t.Fatalf("skipped %d, duplicated %d, phantoms %d; want 1, 2, 1: %q", res.Skipped, res.Duplicated, res.Phantoms, res.Problems)
	}
	all := strings.Join(res.Problems, "\n")
	for _, want := range []string{"value b at 2 has no effect", "value c at 3 took effect 3 times", `"z" took effect 1 times`} {
		if !strings.Contains(all, want) {
			t.Errorf("problems %q do not say %q", res.Problems, want)
		}
	}
	row := faults.NewConsumerRow("s", "c", 1, res)
	if row.Problems != 4 || row.Skipped != 1 || row.Duplicated != 2 {
		t.Errorf("row %+v: want 4 problems, 1 skipped, 2 duplicated", row)
	}
	res.Problem(&res.Other, "in the DLQ: %d", 7)
	if faults.NewConsumerRow("s", "c", 1, res).Problems != 5 {
		t.Error("a problem the caller adds is not counted in the row")
	}
}
