package jetstream

import (
	"context"
	"errors"
	"iter"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

// DirectRead yields the messages of stream on subject (a filter,
// wildcards allowed), oldest first, a page of batched direct gets at a
// time (server 2.11+, the stream allowing direct gets): a listing that
// creates no consumer, as operators' screens and the dead-letter queues
// need. Any replica may answer, so on a replicated stream the newest
// messages may be missing from it.
func DirectRead(ctx context.Context, js jetstream.JetStream, stream, subject string, page int) iter.Seq2[*jetstream.RawStreamMsg, error] {
	return func(yield func(*jetstream.RawStreamMsg, error) bool) {
		for start, more := uint64(1), true; more; {
			msgs, err := jetstreamext.GetBatch(ctx, js, stream, page, jetstreamext.GetBatchSeq(start), jetstreamext.GetBatchSubject(subject))
			if err != nil {
				yield(nil, err)
				return
			}
			more = false
			for m, err := range msgs {
				if errors.Is(err, jetstreamext.ErrNoMessages) {
					return
				}
				if err != nil {
					yield(nil, err)
					return
				}
				start, more = m.Sequence+1, m.Header.Get("Nats-Num-Pending") != "0"
				if !yield(m, nil) {
					return
				}
			}
		}
	}
}
