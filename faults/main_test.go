//go:build faults

package faults_test

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/lexigram/events/faults"
)

var (
	// runSeed is the seed every scenario's schedule and writers come
	// from, printed so that a failed run can be replayed.
	runSeed uint64

	rowsMu       sync.Mutex
	rows         []faults.Row
	consumerRows []faults.ConsumerRow
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(childDirEnv); dir != "" {
		runChild(dir)
		return
	}
	seed, err := faults.Seed()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	runSeed = seed
	fmt.Printf("faults: seed %d (replay: %s=%d make test-faults)\n", seed, faults.SeedEnv, seed)
	code := m.Run()
	rowsMu.Lock()
	if len(rows) > 0 {
		fmt.Print("\n", faults.FormatTable(rows))
	}
	if len(consumerRows) > 0 {
		fmt.Print("\n", faults.FormatConsumerTable(consumerRows))
	}
	rowsMu.Unlock()
	if code != 0 {
		fmt.Printf("faults: failed with seed %d: replay with %s=%d make test-faults\n", seed, faults.SeedEnv, seed)
	}
	os.Exit(code)
}

func addRow(r faults.Row) {
	rowsMu.Lock()
	rows = append(rows, r)
	rowsMu.Unlock()
}

func addConsumerRow(r faults.ConsumerRow) {
	rowsMu.Lock()
	consumerRows = append(consumerRows, r)
	rowsMu.Unlock()
}
