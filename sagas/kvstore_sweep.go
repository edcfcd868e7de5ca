package sagas

import (
	"context"
	"errors"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// position is the bucket's last revision: the end of the next window of
// unsavedCreates.
func (s *KVStore) position(ctx context.Context) (uint64, error) {
	info, err := s.stream.Info(ctx)
	if err != nil {
		return 0, kvErr(err, "read the last revision of bucket %q", s.bucket)
	}
	return info.State.LastSeq, nil
}

// unsavedCreates returns the IDs of the instances whose record at a
// revision in (after, upTo] is the one Create wrote: never saved since.
// The bucket keeps one record per instance, so of the records written in
// that window only the last of each instance is left, and a save writes
// its record expecting the revision before it, a create expecting none.
// It reads only those records' headers.
func (s *KVStore) unsavedCreates(ctx context.Context, after, upTo uint64) ([]string, error) {
	if upTo <= after {
		return nil, nil
	}
	prefix := "$KV." + s.bucket + "." + kvRecordKey("")
	cons, err := s.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{prefix + ">"},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    after + 1,
		HeadersOnly:    true,
	})
	if err != nil {
		return nil, kvErr(err, "read the records of bucket %q written after revision %d", s.bucket, after)
	}
	var ids []string
	for {
		batch, err := cons.FetchNoWait(500)
		if err != nil {
			return ids, kvErr(err, "read the records of bucket %q written after revision %d", s.bucket, after)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			md, err := msg.Metadata()
			if err != nil {
				continue
			}
			if md.Sequence.Stream > upTo {
				return ids, nil
			}
			if msg.Headers().Get(jetstream.ExpectedLastSubjSeqHeader) == "0" {
				ids = append(ids, strings.TrimPrefix(msg.Subject(), prefix))
			}
			if md.NumPending == 0 {
				return ids, nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return ids, kvErr(err, "read the records of bucket %q written after revision %d", s.bucket, after)
		}
		if n == 0 {
			return ids, nil // nothing left after the window's start
		}
	}
}
