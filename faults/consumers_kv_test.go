//go:build faults

package faults_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/projections"
)

// kvValuesBucket holds the at-least-once read model: per aggregate, the
// set of its values, one key each.
const kvValuesBucket = "faults_values"

// kvValues is the at-least-once projection's handler: it puts the key
// "<aggregate id>.<value>", so that applying an event again (after a
// checkpoint that trailed the writes) writes the same key again and the
// set stays the same: idempotent, as projections.Handler requires.
type kvValues struct {
	kv    jetstream.KeyValue
	calls *calls
}

func (h *kvValues) Handle(ctx context.Context, _ projections.Generation, e platform.Envelope) error {
	v := valueOf(e)
	h.calls.add(v)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := h.kv.Put(ctx, e.Stream.ID+"."+v, []byte(strconv.FormatUint(e.Position, 10))); err != nil {
		return fmt.Errorf("put value %q of %s: %w", v, e.Stream, err)
	}
	return nil
}

// kvSet reads the set back: value -> the aggregates whose set holds it.
func kvSet(ctx context.Context, kv jetstream.KeyValue) (map[string][]string, error) {
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list the keys of bucket %s: %w", kvValuesBucket, err)
	}
	defer func() { _ = lister.Stop() }()
	out := map[string][]string{}
	for k := range lister.Keys() {
		agg, v, ok := strings.Cut(k, ".")
		if !ok {
			return nil, fmt.Errorf("bucket %s: key %q is not <aggregate>.<value>", kvValuesBucket, k)
		}
		out[v] = append(out[v], agg)
	}
	// The lister ends early, without an error, when ctx does.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list the keys of bucket %s: %w", kvValuesBucket, err)
	}
	return out, nil
}
