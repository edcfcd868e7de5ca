package eventio

import (
	"bufio"
	"context"
	"encoding/json"
	"io"

	"github.com/nats-io/nats.go/jetstream"
)

// Export writes the events f picks to w, one JSON Line each, and returns
// how many it wrote. progress, if not nil, is called with the count as it
// grows (every 1,000 events) and at the end.
func Export(ctx context.Context, js jetstream.JetStream, src Source, f Filter, w io.Writer, progress func(written int)) (int, error) {
	f.Follow = false
	bw := bufio.NewWriterSize(w, 256<<10)
	enc := json.NewEncoder(bw)
	n := 0
	for l, err := range Read(ctx, js, src, f) {
		if err != nil {
			return n, err
		}
		if err := enc.Encode(l); err != nil {
			return n, err
		}
		n++
		if progress != nil && n%1000 == 0 {
			progress(n)
		}
	}
	if progress != nil {
		progress(n)
	}
	return n, bw.Flush()
}
