package bridges

import (
	"hash/fnv"
	"strconv"
	"time"

	"github.com/lexigram/events/platform"
)

// validName checks a bridge name: it is a consumer name, a metric label
// and a subject token of the dead-letter subject.
func validName(name string) error {
	if name == "" || len(name) > 64 {
		return platform.Errorf(platform.CodeInvalidArgument, "bridge name %q: use 1 to 64 letters, digits, '-' and '_', e.g. \"orders-to-rabbitmq\"", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return platform.Errorf(platform.CodeInvalidArgument, "bridge name %q has %q: use letters, digits, '-' and '_', e.g. \"orders-to-rabbitmq\"", name, c)
		}
	}
	return nil
}

func orDefault[T int | time.Duration](v, d T) T {
	if v == 0 {
		return d
	}
	return v
}

// shard spreads keys over n workers; one key always lands on one worker,
// which keeps its messages in order.
func shard(key string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(n))
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
