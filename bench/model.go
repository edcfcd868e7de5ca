package bench

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/lexigram/events/platform"
)

// BodySize is the msgpack size of every event the bench writes.
const BodySize = 256

const (
	depositedType = "bench.deposited"
	accountType   = "account"
)

// Deposited is the bench's event. Memo pads its msgpack body to BodySize.
type Deposited struct {
	Account string
	Amount  int64
	Memo    string
}

// memo is the padding that makes a Deposited BodySize bytes long; IDs
// from accountID all have the same length, so every event has that size.
// (newRunner checks the size.)
var memo = func() string {
	for n := range BodySize {
		m := strings.Repeat("m", n)
		if b, err := platform.Msgpack.Marshal(Deposited{Account: accountID(0), Amount: 100, Memo: m}); err == nil && len(b) >= BodySize {
			return m
		}
	}
	return ""
}()

func deposit(account string) Deposited {
	return Deposited{Account: account, Amount: 100, Memo: memo}
}

// accountID names aggregate i; the width is fixed so bodies keep their size.
func accountID(i int) string { return fmt.Sprintf("acct-%07d", i) }

func streamID(i int) platform.StreamID {
	return platform.StreamID{Type: accountType, ID: accountID(i)}
}

// events returns n envelopes of deposits to one account.
func events(account string, n int) []platform.Envelope {
	evs := make([]platform.Envelope, n)
	for i := range evs {
		evs[i].Event = deposit(account)
	}
	return evs
}

// Account is the aggregate the snapshot figure loads.
type Account struct {
	platform.AggregateRoot
	State AccountState
}

// AccountState is what an Account snapshot holds.
type AccountState struct {
	Deposits int
	Balance  int64
}

func newAccount() *Account { return &Account{} }

func (a *Account) AggregateType() string { return accountType }

func (a *Account) Apply(event any) {
	if d, ok := event.(Deposited); ok {
		a.State.Deposits++
		a.State.Balance += d.Amount
	}
}

func (a *Account) SnapshotState() any         { return &a.State }
func (a *Account) SnapshotSchemaVersion() int { return 1 }

var _ platform.Snapshotter = (*Account)(nil)

// percentile returns the p-th percentile (0 < p <= 100) of sorted
// durations by the nearest-rank method.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[max(0, min(rank-1, len(sorted)-1))]
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// pairedRatio is the median of the rounds' ours/raw ratios. Each round
// runs both sides back to back, so a ratio within a round cancels the
// machine's drift between rounds, which on a shared two-core machine is
// larger than the difference being measured.
func pairedRatio(ours, raw []float64) float64 {
	ratios := make([]float64, 0, len(ours))
	for i := range min(len(ours), len(raw)) {
		if raw[i] > 0 {
			ratios = append(ratios, ours[i]/raw[i])
		}
	}
	return median(ratios)
}
